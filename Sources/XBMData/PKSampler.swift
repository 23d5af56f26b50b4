import Collectives
import XBMKernels
/// One global batch of B samples (Docs/data.md); rank r of N uses rows [r·b, (r+1)·b), b = B/N.
public struct GlobalBatch: Sendable {
    /// Dataset indices (B).
    public var indices: [Int32]
    /// Labels of those samples (B).
    public var labels: [Int32]
    /// Augmentation shifts (2B): dx, dy per sample, each in −2…2 (all zero for features).
    public var shifts: [Int8]

    public init(batchSize: Int) {
        indices = [Int32](repeating: 0, count: batchSize)
        labels = [Int32](repeating: 0, count: batchSize)
        shifts = [Int8](repeating: 0, count: 2 * batchSize)
    }

    /// Rows of rank `rank` among `ranks` (B must divide evenly).
    public static func localRows(rank: Int, ranks: Int, batchSize: Int) -> Range<Int> {
        precondition(ranks > 0 && batchSize % ranks == 0, "batch \(batchSize) does not split over \(ranks) ranks")
        let b = batchSize / ranks
        return (rank * b)..<((rank + 1) * b)
    }
}

/// Everything needed to resume a sampler exactly: generator words and iteration count.
public struct SamplerState: Codable, Equatable, Sendable {
    public var randomWords: [UInt64]
    public var iteration: Int
}

/// Why a sampler cannot be built; one line naming the numbers.
public enum SamplerError: SameOnEveryRankError, Equatable {
    case batchNotMultipleOfInstances(batch: Int, instances: Int)
    case tooFewClasses(classes: Int, needed: Int, batch: Int, instances: Int)

    public var description: String {
        switch self {
        case let .batchNotMultipleOfInstances(b, k):
            "--batch \(b) is not a positive multiple of --instances \(k); expected B = P·K"
        case let .tooFewClasses(classes, needed, b, k):
            "the training split has \(classes) class(es) but --batch \(b) / --instances \(k) needs \(needed) distinct classes (and at least 2)"
        }
    }
}

/// The global P×K sampler (Docs/data.md): every iteration picks P = B/K distinct classes uniformly,
/// then K instances of each (without replacement; with replacement only when the class has
/// fewer than K samples), then per-sample shifts; all from one `RandomSource` seeded by `seed`.
/// The global batch therefore depends only on (seed, iteration, B, K), never on the rank count.
public struct PKSampler: Sendable {
    public let batchSize: Int
    public let instances: Int
    public let augment: Bool
    /// Class members (dataset indices, ascending) in ascending label order.
    private let members: [[Int32]]
    private let classLabels: [Int32]
    private var random: RandomSource
    private var iteration: Int
    // Scratch for partial Fisher–Yates; reset each use, so it is not part of the state.
    private var classOrder: [Int]
    private var memberScratch: [Int32]

    public init(labels: [Int32], indices: [Int], batchSize: Int, instances: Int, seed: UInt64,
                augment: Bool = true) throws {
        guard batchSize > 0, instances > 0, batchSize % instances == 0 else {
            throw SamplerError.batchNotMultipleOfInstances(batch: batchSize, instances: instances)
        }
        var byClass: [Int32: [Int32]] = [:]
        for i in indices {
            precondition(i >= 0 && i < labels.count, "sampler index \(i) outside 0..<\(labels.count)")
            byClass[labels[i], default: []].append(Int32(i))
        }
        let needed = batchSize / instances
        guard byClass.count >= max(needed, 2) else {
            throw SamplerError.tooFewClasses(classes: byClass.count, needed: needed, batch: batchSize, instances: instances)
        }
        classLabels = byClass.keys.sorted()
        members = classLabels.map { byClass[$0]!.sorted() }
        self.batchSize = batchSize
        self.instances = instances
        self.augment = augment
        random = RandomSource(seed: seed)
        iteration = 0
        classOrder = Array(0..<classLabels.count)
        memberScratch = []
        memberScratch.reserveCapacity(members.map(\.count).max() ?? 0)
    }

    public init(labels: [Int32], indices: [Int], batchSize: Int, instances: Int, seed: UInt64,
                augment: Bool = true, state: SamplerState) throws {
        try self.init(labels: labels, indices: indices, batchSize: batchSize, instances: instances, seed: seed, augment: augment)
        restore(state)
    }

    public var state: SamplerState { SamplerState(randomWords: random.stateWords, iteration: iteration) }

    public mutating func restore(_ state: SamplerState) {
        random = RandomSource(stateWords: state.randomWords)
        iteration = state.iteration
    }

    /// Number of batches drawn so far.
    public var iterationsDone: Int { iteration }

    /// Draws the next global batch into `batch` (whose arrays are reused).
    public mutating func next(into batch: inout GlobalBatch) {
        precondition(batch.indices.count == batchSize && batch.labels.count == batchSize && batch.shifts.count == 2 * batchSize,
                     "GlobalBatch sized for \(batch.indices.count) samples, sampler batch is \(batchSize)")
        let classCount = classLabels.count
        for i in 0..<classCount { classOrder[i] = i }
        var row = 0
        for p in 0..<(batchSize / instances) {
            // Partial Fisher–Yates: position p receives a uniform pick among the remaining classes.
            let pick = p + random.nextInt(below: classCount - p)
            classOrder.swapAt(p, pick)
            let c = classOrder[p]
            let pool = members[c]
            if pool.count >= instances {
                memberScratch.removeAll(keepingCapacity: true)
                memberScratch.append(contentsOf: pool)
                for k in 0..<instances {
                    let m = k + random.nextInt(below: pool.count - k)
                    memberScratch.swapAt(k, m)
                    batch.indices[row] = memberScratch[k]
                    batch.labels[row] = classLabels[c]
                    row += 1
                }
            } else {
                for _ in 0..<instances {
                    batch.indices[row] = pool[random.nextInt(below: pool.count)]
                    batch.labels[row] = classLabels[c]
                    row += 1
                }
            }
        }
        for i in 0..<(2 * batchSize) {
            batch.shifts[i] = augment ? Int8(random.nextInt(below: 5) - 2) : 0
        }
        iteration += 1
    }
}
