import Collectives

/// How the step sums the parameter gradient over ranks while the backward still runs
/// (Docs/distributed.md, Overlap), as PyTorch's DDP and Horovod do: the gradient is cut into
/// buckets at the points where the network reports its gradients final, and each bucket's
/// allreduce starts as soon as it is full.
public struct GradientOverlap: Sendable, Equatable {
    /// A bucket's allreduce starts once at least this many bytes of final gradient wait.
    public var bucketBytes: Int
    /// Call `test()` on the started buckets at every notification of the backward: MPI
    /// initialised single-threaded moves a started collective only inside MPI calls. On by
    /// default: on a slow link it took the overlap's gain from 22% to 25% of the step at 2
    /// ranks and from 12% to 32% at 4 (Docs/performance.md, Overlap).
    public var pollsBetweenLayers: Bool

    public static let defaultBucketBytes = 1 << 20

    public init(bucketBytes: Int = GradientOverlap.defaultBucketBytes, pollsBetweenLayers: Bool = true) {
        precondition(bucketBytes >= 1, "gradient bucket size must be positive, got \(bucketBytes)")
        self.bucketBytes = bucketBytes
        self.pollsBetweenLayers = pollsBetweenLayers
    }
}

/// One step's bucketed allreduce of the flat gradient. Buckets are contiguous, disjoint and
/// together cover the whole gradient, so every element is summed exactly once, by one
/// allreduce, over the same ranks' values as the single allreduce after the backward: the
/// result is the same sum element by element (bit for bit with simulated ranks, one process
/// and 2 MPI ranks; see `Communicator.startAllreduceSum`).
final class GradientBuckets {
    private let comm: Communicator
    private let gradients: UnsafeMutableBufferPointer<Float>
    private let bucketCount: Int
    private let polls: Bool
    /// gradients[final...] are final; gradients[final..<unsent] wait for their bucket.
    private var final: Int
    private var unsent: Int
    private var pending: [PendingCollective] = []
    /// The buckets of the last step in the order they were started (high offsets first).
    private(set) var startedBuckets: [Range<Int>] = []

    init(comm: Communicator, gradients: UnsafeMutableBufferPointer<Float>, overlap: GradientOverlap) {
        self.comm = comm
        self.gradients = gradients
        bucketCount = max(1, overlap.bucketBytes / MemoryLayout<Float>.stride)
        polls = overlap.pollsBetweenLayers
        final = gradients.count
        unsent = gradients.count
    }

    /// Before the backward.
    func begin() {
        final = gradients.count
        unsent = gradients.count
        pending.removeAll(keepingCapacity: true)
        startedBuckets.removeAll(keepingCapacity: true)
    }

    /// The backward's notification (`EmbeddingNetwork.backward(gradientsFinal:)`).
    func gradientsFinal(from offset: Int) throws {
        precondition((0...final).contains(offset),
                     "gradientsFinal(from: \(offset)) after \(final): a network must report decreasing offsets within its gradient")
        final = offset
        if unsent - final >= bucketCount { try start(final..<unsent) }
        if polls {
            for collective in pending { _ = try collective.test() }
        }
    }

    /// After the backward: starts what is left (all of it when the network never reported)
    /// and waits for every bucket; the gradient is then summed over ranks.
    func finish() throws {
        if unsent > 0 { try start(0..<unsent) }
        for collective in pending { try collective.wait() }
        pending.removeAll(keepingCapacity: true)
    }

    private func start(_ bucket: Range<Int>) throws {
        pending.append(try comm.startAllreduceSum(UnsafeMutableBufferPointer(rebasing: gradients[bucket])))
        startedBuckets.append(bucket)
        unsent = bucket.lowerBound
    }
}
