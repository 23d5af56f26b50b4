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
// point coordinates and k-means++ weights are rounded to integer multiples of a power of two
// small enough that every sum of them stays below 2⁵² (`exactScale`), so Double adds them
// without rounding, in any order. Seeding, assignments, centroids and the iteration count are
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

    /// k-means++: fills `centroids` with k points drawn as `KMeans.cluster` describes. The
    /// weights D(x)² are rounded to integers at `exactScale`, so that their sums, and the draw
    /// that walks them, are the same on every rank count. Per centroid: one allgather of the
    /// ranks' weight totals and one broadcast of the drawn index from the rank that holds it.
    mutating func seed(random: inout RandomSource) throws {
        // D² ≤ (2 max ‖x‖)², and a little more as Float computes it: bound it by 5 max ‖x‖².
        let scale = KMeans.exactScale(count: n, bound: 5 * Double(squaredNorms.max() ?? 0))
        var nearest = [Float](repeating: .infinity, count: rows.count)   // D(x)² of this rank's rows
        var chosen = random.nextInt(below: n)
        for centroid in 0..<k {
            (centroids.withUnsafeMutableBufferPointer { $0.baseAddress! } + centroid * d).update(from: points + chosen * d, count: d)
            if centroid == k - 1 { break }
            lowerNearest(&nearest, toward: chosen)
            let weights = nearest.map { (Double($0) * scale).rounded(.down) }
            let rankTotals = try comm.allgather([weights.reduce(0, +)])
            let total = rankTotals.reduce(0, +)
            let target = (random.nextUniformDouble() * total).rounded(.down)      // in [0, total)
            guard total > 0 else {
                // Every point sits on a centroid already: any point does.
                chosen = random.nextInt(below: n)
                continue
            }
            var owner = 0, before = 0.0
            while before + rankTotals[owner] <= target { before += rankTotals[owner]; owner += 1 }
            var drawn: [UInt64] = [0]
            if comm.rank == owner {
                var cumulative = before
                for (offset, weight) in weights.enumerated() {
                    if cumulative + weight > target { drawn[0] = UInt64(rows.lowerBound + offset); break }
                    cumulative += weight
                }
            }
            try comm.broadcast(&drawn, root: owner)
            chosen = Int(drawn[0])
            assert(chosen < n, "k-means++ drew row \(chosen) of \(n)")
        }
    }

    /// nearest[i] = min(nearest[i], ‖x_i − x_c‖²) over this rank's rows.
    private func lowerNearest(_ nearest: inout [Float], toward c: Int) {
        let centre = points + c * d
        for block in blocks {
            gemm(.none, .none, m: block.count, n: 1, k: d, a: points + block.lowerBound * d, lda: d,
                 b: centre, ldb: 1, c: products.pointer, ldc: 1)
            for row in block {
                let distance = max(0, squaredNorms[row] - 2 * products[row - block.lowerBound] + squaredNorms[c])
                nearest[row - rows.lowerBound] = min(nearest[row - rows.lowerBound], distance)
            }
        }
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
