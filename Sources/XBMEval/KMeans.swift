import Collectives
import Foundation
import XBMKernels

// k-means of an embedding matrix for NMI and AMI (Docs/evaluation.md, Clustering).
//
// Letters: n points of dimension d (every rank holds all of them, as the evaluation's
// allgather leaves them), k clusters, B = blockRows. The rows are cut into blocks of B at fixed
// places and each rank takes a contiguous run of blocks; the squared distance
// ‖x‖² − 2 x·c + ‖c‖² of a block's rows comes from one gemm (B, d) · (d, k), so a row's
// distances do not depend on how many ranks there are. What the ranks add up is made exact:
// point coordinates are rounded to integer multiples of a power of two small enough that every
// sum of them stays below 2⁵² (`exactScale`), so Double adds them without rounding, in any
// order. Rank 0 seeds alone. Seeds, assignments, centroids and the iteration count are
// therefore the same on any number of ranks, bit for bit.

/// k-means (Lloyd's iterations) from k-means++ seeding (Arthur, Vassilvitskii, "k-means++: the
/// advantages of careful seeding", SODA 2007), distributed over ranks.
public enum KMeans {
    public struct Result: Sendable, Equatable {
        /// The cluster of each point, (n), in 0..<k.
        public var assignments: [Int32]
        /// The centroids, (k, d) row major.
        public var centroids: [Float]
        /// Assignment steps run, the last included.
        public var iterations: Int
        /// False when `maxIterations` ended the run before the centroids settled.
        public var converged: Bool
    }

    /// Rows per matrix product: bounds the distance workspace at B × k floats.
    public static let blockRows = 256
    /// Lloyd iterations at most.
    public static let defaultMaxIterations = 100
    /// Converged when the centroids move by Σ_j ‖c_j' − c_j‖² ≤ tolerance × the points' mean
    /// variance per dimension (scikit-learn's `tol` and its scale), or no point changes cluster.
    public static let defaultTolerance = 1e-4

    /// Clusters the n rows of `points` (n, d) into k groups. Seeding: the first centroid is a
    /// uniform random point, each next one a point drawn with probability D(x)² / Σ D², D(x)
    /// its distance to the nearest centroid so far. Each iteration assigns every point to its
    /// nearest centroid (ties: the lower index) and moves each centroid to the mean of its
    /// points; a cluster left empty takes the point farthest from its own centroid (ties:
    /// the lower index), as scikit-learn does. Every rank must call it with the same points.
    public static func cluster(points: UnsafePointer<Float>, count n: Int, dimension d: Int, clusters k: Int,
                               seed: UInt64, maxIterations: Int = defaultMaxIterations,
                               tolerance: Double = defaultTolerance, comm: Communicator) throws -> Result {
        precondition(n >= 1 && d >= 1, "k-means needs points, got \(n) of dimension \(d)")
        precondition(k >= 1 && k <= n, "k-means needs 1 ≤ k ≤ n, got k = \(k) for \(n) points")
        precondition(maxIterations >= 1, "k-means needs at least one iteration, got \(maxIterations)")
        var work = KMeansWork(points: points, count: n, dimension: d, clusters: k, comm: comm)
        var random = RandomSource.derived(seed: seed, stream: 0x6B6D_6561_6E73)      // "kmeans"
        try work.seed(random: &random)

        let settled = tolerance * work.meanVariance()
        var iterations = 0, converged = false
        while true {
            iterations += 1
            let changed = try work.assign()
            if changed == 0 { converged = true; break }
            if iterations == maxIterations { break }
            let shift = try work.update()
            if shift <= settled {
                // Assign once more, so that the clusters are those of the final centroids.
                iterations += 1
                _ = try work.assign()
                converged = true
                break
            }
        }
        return Result(assignments: try work.gatherAssignments(), centroids: work.centroids,
                      iterations: iterations, converged: converged)
    }

    /// The largest power of two s with count · bound · s ≤ 2⁵²: integers below 2⁵³ are exact in
    /// Double, so sums of up to `count` values v·s rounded to integers, |v| ≤ bound, are exact.
    static func exactScale(count: Int, bound: Double) -> Double {
        guard bound > 0 else { return 1 }
        return exp2(floor(log2(exp2(52) / (Double(count) * bound))))
    }
}

/// The state of one rank's share of a k-means run.
private struct KMeansWork {
    let points: UnsafePointer<Float>                  // (n, d), the same on every rank
    let n: Int, d: Int, k: Int
    let comm: Communicator
    /// This rank's rows: whole blocks of `KMeans.blockRows`, contiguous.
    let rows: Range<Int>
    /// ‖x_i‖², (n).
    let squaredNorms: [Float]
    /// `exactScale` of the coordinates, |x_it| ≤ their largest magnitude.
    let coordinateScale: Double
    /// (k, d) row major.
    var centroids: [Float]
    /// Cluster and squared distance to its centroid of each row of `rows`, (rows.count).
    var assignments: [Int32]
    var distances: [Float]
    /// (B, k) products of a block with the centroids.
    let products: FlatBuffer<Float>

    init(points: UnsafePointer<Float>, count n: Int, dimension d: Int, clusters k: Int, comm: Communicator) {
        self.points = points
        self.n = n; self.d = d; self.k = k
        self.comm = comm
        let blocks = (n + KMeans.blockRows - 1) / KMeans.blockRows
        let first = comm.rank * blocks / comm.size, last = (comm.rank + 1) * blocks / comm.size
        rows = min(first * KMeans.blockRows, n)..<min(last * KMeans.blockRows, n)
        squaredNorms = (0..<n).map { dot(count: d, points + $0 * d, points + $0 * d) }
        let largest = (0..<n * d).reduce(Float(0)) { max($0, abs(points[$1])) }
        coordinateScale = KMeans.exactScale(count: n, bound: Double(largest))
        centroids = [Float](repeating: 0, count: k * d)
        assignments = [Int32](repeating: -1, count: rows.count)
        distances = [Float](repeating: 0, count: rows.count)
        products = FlatBuffer<Float>(count: KMeans.blockRows * k)
    }

    /// The blocks of this rank's rows, as global row ranges.
    var blocks: [Range<Int>] {
        stride(from: rows.lowerBound, to: rows.upperBound, by: KMeans.blockRows).map { $0..<min($0 + KMeans.blockRows, rows.upperBound) }
    }

    /// k-means++: fills `centroids` with k points drawn as `KMeans.cluster` describes. Rank 0
    /// draws them alone over all n rows and broadcasts them: the draws are sequential in k,
    /// and two collectives per centroid, as a split over ranks needs, cost more than the
    /// arithmetic when ranks share cores (Docs/evaluation.md, Clustering).
    mutating func seed(random: inout RandomSource) throws {
        var chosen = [UInt64](repeating: 0, count: k)
        if comm.rank == 0 { chosen = Self.seedRows(points: points, squaredNorms: squaredNorms, count: n, dimension: d, clusters: k,
                                                   random: &random, products: products) }
        try comm.broadcast(&chosen, root: 0)
        for (centroid, row) in chosen.enumerated() {
            (centroids.withUnsafeMutableBufferPointer { $0.baseAddress! } + centroid * d).update(from: points + Int(row) * d, count: d)
        }
    }

    /// The k rows of k-means++ on one process. D(x)² of every row is kept up to date block by
    /// block (blocks of `KMeans.blockRows`, one gemm each) with the block totals, so a draw
    /// walks the block totals, then one block's rows.
    private static func seedRows(points: UnsafePointer<Float>, squaredNorms: [Float], count n: Int, dimension d: Int,
                                 clusters k: Int, random: inout RandomSource, products: FlatBuffer<Float>) -> [UInt64] {
        let blockRows = KMeans.blockRows, blockCount = (n + blockRows - 1) / blockRows
        var nearest = [Float](repeating: .infinity, count: n)             // D(x)², (n)
        var blockTotals = [Double](repeating: 0, count: blockCount)      // Σ D(x)² of each block
        var chosen = [UInt64(random.nextInt(below: n))]
        while chosen.count < k {
            let centre = Int(chosen.last!)
            for block in 0..<blockCount {
                let first = block * blockRows, rows = min(blockRows, n - first)
                gemm(.none, .none, m: rows, n: 1, k: d, a: points + first * d, lda: d,
                     b: points + centre * d, ldb: 1, c: products.pointer, ldc: 1)
                var total = 0.0
                for row in first..<(first + rows) {
                    let distance = max(0, squaredNorms[row] - 2 * products[row - first] + squaredNorms[centre])
                    nearest[row] = min(nearest[row], distance)
                    total += Double(nearest[row])
                }
                blockTotals[block] = total
            }
            let total = blockTotals.reduce(0, +)
            var target = random.nextUniformDouble() * total                    // in [0, total)
            guard total > 0 else {
                // Every point sits on a centroid already: any point does.
                chosen.append(UInt64(random.nextInt(below: n)))
                continue
            }
            // The row whose share [Σ_{r<row} D², Σ_{r≤row} D²) holds the target: the block first.
            var block = 0
            while block < blockCount - 1 && target >= blockTotals[block] { target -= blockTotals[block]; block += 1 }
            var row = block * blockRows
            let last = min(row + blockRows, n) - 1
            while row < last && target >= Double(nearest[row]) { target -= Double(nearest[row]); row += 1 }
            // Rounding can carry the walk past the last row with weight: step back to it.
            while nearest[row] == 0 && row > 0 { row -= 1 }
            chosen.append(UInt64(row))
        }
        return chosen
    }

    /// Assigns this rank's rows to their nearest centroids; returns how many changed cluster,
    /// summed over the ranks.
    mutating func assign() throws -> Int {
        let centroidNorms = (0..<k).map { j in centroids.withUnsafeBufferPointer { dot(count: d, $0.baseAddress! + j * d, $0.baseAddress! + j * d) } }
        var changed = 0
        for block in blocks {
            centroids.withUnsafeBufferPointer { c in
                gemm(.none, .transposed, m: block.count, n: k, k: d, a: points + block.lowerBound * d, lda: d,
                     b: c.baseAddress!, ldb: d, c: products.pointer, ldc: k)
            }
            for row in block {
                // argmin_j ‖c_j‖² − 2 x·c_j, the lower j on ties; ‖x‖² is added after.
                let product = products.pointer + (row - block.lowerBound) * k
                var best = 0, bestValue = centroidNorms[0] - 2 * product[0]
                for j in 1..<k {
                    let value = centroidNorms[j] - 2 * product[j]
                    if value < bestValue { best = j; bestValue = value }
                }
                let slot = row - rows.lowerBound
                if assignments[slot] != Int32(best) { changed += 1; assignments[slot] = Int32(best) }
                distances[slot] = max(0, squaredNorms[row] + bestValue)
            }
        }
        var total = [Double(changed)]
        try comm.allreduceSum(&total)
        return Int(total[0])
    }

    /// Moves each centroid to the mean of its points (exact sums, one allreduce), refills
    /// empty clusters, and returns Σ_j ‖c_j' − c_j‖².
    mutating func update() throws -> Double {
        let scale = coordinateScale
        var sums = [Double](repeating: 0, count: k * d + k)          // (k, d) coordinate sums, then (k) counts
        for row in rows {
            let cluster = Int(assignments[row - rows.lowerBound])
            for t in 0..<d { sums[cluster * d + t] += (Double(points[row * d + t]) * scale).rounded() }
            sums[k * d + cluster] += 1
        }
        try comm.allreduceSum(&sums)
        try refillEmptyClusters(&sums, scale: scale)
        var shift = 0.0
        for j in 0..<k where sums[k * d + j] > 0 {
            for t in 0..<d {
                let moved = Float(sums[j * d + t] / sums[k * d + j] / scale)
                shift += Double(moved - centroids[j * d + t]) * Double(moved - centroids[j * d + t])
                centroids[j * d + t] = moved
            }
        }
        return shift
    }

    /// Gives each empty cluster one of the points farthest from their centroids, largest
    /// distance first (ties: the lower index), taking it out of its cluster's sums. Each rank
    /// offers its e farthest rows; one allgather of (distance, row, cluster) triples.
    private func refillEmptyClusters(_ sums: inout [Double], scale: Double) throws {
        let empty = (0..<k).filter { sums[k * d + $0] == 0 }
        guard !empty.isEmpty else { return }
        let e = empty.count
        let mine = distances.indices.map { Candidate(distance: distances[$0], row: rows.lowerBound + $0, cluster: Int(assignments[$0])) }
            .sorted(by: Candidate.isFarther).prefix(e)
        var offer = [Double](repeating: -1, count: 3 * e)             // (distance, row, cluster) × e; −1: none
        for (slot, candidate) in mine.enumerated() {
            offer[3 * slot] = Double(candidate.distance)
            offer[3 * slot + 1] = Double(candidate.row)
            offer[3 * slot + 2] = Double(candidate.cluster)
        }
        let offers = try comm.allgather(offer)
        var farthest: [Candidate] = []
        for slot in stride(from: 0, to: offers.count, by: 3) where offers[slot + 1] >= 0 {
            farthest.append(Candidate(distance: Float(offers[slot]), row: Int(offers[slot + 1]), cluster: Int(offers[slot + 2])))
        }
        farthest.sort(by: Candidate.isFarther)
        for (cluster, point) in zip(empty, farthest) {
            for t in 0..<d {
                let value = (Double(points[point.row * d + t]) * scale).rounded()
                sums[point.cluster * d + t] -= value
                sums[cluster * d + t] = value
            }
            sums[k * d + point.cluster] -= 1
            sums[k * d + cluster] = 1
        }
    }

    /// A point offered to an empty cluster.
    private struct Candidate {
        var distance: Float, row: Int, cluster: Int

        /// Farther first; the lower row on ties.
        static func isFarther(_ a: Candidate, _ b: Candidate) -> Bool {
            a.distance > b.distance || (a.distance == b.distance && a.row < b.row)
        }
    }

    /// The mean over dimensions of the points' variance (all points; the same on every rank).
    func meanVariance() -> Double {
        var total = 0.0
        for t in 0..<d {
            var sum = 0.0, squares = 0.0
            for row in 0..<n { let v = Double(points[row * d + t]); sum += v; squares += v * v }
            let mean = sum / Double(n)
            total += max(0, squares / Double(n) - mean * mean)
        }
        return total / Double(d)
    }

    /// Every rank's assignments, in row order: one allgather of equal, padded shares.
    func gatherAssignments() throws -> [Int32] {
        let blocks = (n + KMeans.blockRows - 1) / KMeans.blockRows
        let share = ((blocks + comm.size - 1) / comm.size) * KMeans.blockRows
        var padded = assignments
        padded += [Int32](repeating: -1, count: share - assignments.count)
        let all = try comm.allgather(padded)
        var result: [Int32] = []
        result.reserveCapacity(n)
        for rank in 0..<comm.size {
            let first = rank * blocks / comm.size, last = (rank + 1) * blocks / comm.size
            let count = min(last * KMeans.blockRows, n) - min(first * KMeans.blockRows, n)
            result += all[(rank * share)..<(rank * share + count)]
        }
        return result
    }
}
