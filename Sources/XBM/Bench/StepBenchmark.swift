import Collectives
import Foundation

/// `xbm-dist bench step` (README.md, Docs/performance.md): the real distributed step — forward, allgather,
/// memory enqueue, batch and memory loss terms, allreduces, backward, optimizer — on random
/// data, timed after warm-up. Labels follow the PyTorch reference's speed mode
/// (`arange(B) // K + 1000 · (iteration mod 50)`), so both compute the same kind of pairs.
/// With a memory the memory is filled with random unit embeddings first, so the timing is
/// of the steady state (a full memory), not of the first, cheaper iterations.
public enum StepBenchmark {
    public struct Result: Codable, Sendable {
        /// Global images per second (summed over ranks).
        public var imagesPerSecond: Double
        public var medianStepSeconds: Double
        public var steps: Int
        public var batch: Int
        public var ranks: Int
        public var threads: Int
        public var model: String
        public var loss: String
        public var xbmSize: Int
        /// OpenBLAS' kernel family (see `BLASKernels`).
        public var blasKernels: String
        /// The communicator's name, with the emulated latency when there is one ("mpi+200us").
        public var backend: String
        /// The gradient's bucket size when its allreduce overlaps the backward, else nil.
        public var bucketBytes: Int?
        public var pollsBetweenLayers: Bool
        /// What one step sends through each collective (the last timed step's), per rank.
        public var collectivesPerStep: [String: CollectiveCount]
        /// Median time of the last step's collectives replayed alone, without the step's
        /// computation (`CollectiveTally.replay`), the slowest rank's: what the cost model of
        /// Docs/performance.md predicts.
        public var communicationSeconds: Double
        /// `DistributedStep.replicaChecksum()` after the last step, in hex: equal across runs
        /// that computed the same parameters (the overlap's bit-for-bit check under mpirun).
        public var replicaChecksum: String

        enum CodingKeys: String, CodingKey {
            case imagesPerSecond = "images_per_second", medianStepSeconds = "median_step_seconds"
            case steps, batch, ranks, threads, model, loss, xbmSize = "xbm_size", blasKernels = "blas_kernels"
            case backend, bucketBytes = "bucket_bytes", pollsBetweenLayers = "polls_between_layers"
            case collectivesPerStep = "collectives_per_step", replicaChecksum = "replica_checksum"
            case communicationSeconds = "communication_seconds"
        }

        public var jsonLine: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
        }
    }

    /// Calls of one collective in a step and the bytes each rank contributes to each.
    public struct CollectiveCount: Codable, Sendable, Equatable {
        public var calls: Int
        public var bytes: Int
        /// Bytes of each call, in call order.
        public var sizes: [Int]
    }

    public static func run(config: TrainingConfig, sampleShape: [Int], steps: Int, warmup: Int = 5,
                           gradientOverlap: GradientOverlap? = nil, comm: Communicator) throws -> Result {
        precondition(steps >= 1, "bench step needs at least one timed step, got \(steps)")
        let counting = CountingCommunicator(wrapping: comm)
        let components = try TrainingComponents(config: config, sampleShape: sampleShape,
                                                isImages: sampleShape.count == 3, comm: counting)
        let step = components.step
        step.gradientOverlap = gradientOverlap
        step.memoryStart = 0
        try step.initializeParameters(seed: config.run.seed)
        let b = step.localBatch, B = config.optimization.batch, d = config.model.dim
        var random = RandomSource.derived(seed: config.run.seed, stream: UInt64(1000 + comm.rank))
        let sampleSize = sampleShape.reduce(1, *)
        let input = FlatBuffer<Float>(count: b * sampleSize)
        for i in 0..<input.count { input[i] = random.nextUniform() }
        var labels = [Int32](repeating: 0, count: B)

        if let memory = step.memory {
            var shared = RandomSource(seed: config.run.seed &+ 77)   // identical on every rank
            let rows = FlatBuffer<Float>(count: B * d)
            var rowLabels = [Int32](repeating: 0, count: B)
            while memory.count < memory.capacity {
                for r in 0..<B {
                    var norm: Float = 0
                    for j in 0..<d { let v = Float(shared.nextNormal()); rows[r * d + j] = v; norm += v * v }
                    let scale = 1 / norm.squareRoot()
                    for j in 0..<d { rows[r * d + j] *= scale }
                    rowLabels[r] = Int32(100_000 + shared.nextInt(below: 5000))
                }
                _ = try rowLabels.withUnsafeBufferPointer { try memory.enqueue(embeddings: rows.pointer, labels: $0.baseAddress!, count: B) }
            }
        }

        var times: [Double] = []
        for iteration in 0..<(warmup + steps) {
            for i in 0..<B { labels[i] = Int32(i / config.optimization.instances + 1000 * (iteration % 50)) }
            try comm.barrier()
            counting.reset()
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try labels.withUnsafeBufferPointer {
                try step.run(input: input.pointer, labels: $0.baseAddress!, iteration: (config.memoryStartIteration ?? 0) + iteration,
                             learningRate: Float(config.optimization.lr), stopRequested: false)
            }
            if iteration >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
        }
        let tally = counting.tally
        var replays: [Double] = []
        for _ in 0..<5 {
            try comm.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try tally.replay(on: comm)
            replays.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        // The slowest rank sets the pace: take the maximum over ranks of each rank's median.
        times.sort()
        replays.sort()
        var median = [times[times.count / 2], replays[replays.count / 2]]
        try comm.allreduceMax(&median)
        return Result(imagesPerSecond: Double(B) / median[0], medianStepSeconds: median[0], steps: steps, batch: B,
                      ranks: comm.size, threads: BLASThreads.current, model: components.modelKind.rawValue,
                      loss: config.loss.kind.rawValue, xbmSize: config.memory.size, blasKernels: BLASKernels.current,
                      backend: comm.backendName, bucketBytes: gradientOverlap?.bucketBytes,
                      pollsBetweenLayers: gradientOverlap?.pollsBetweenLayers ?? false,
                      collectivesPerStep: Dictionary(uniqueKeysWithValues: CollectiveOperation.allCases.map { operation in
                          let entry = tally[operation]
                          return (operation.rawValue, CollectiveCount(calls: entry.calls, bytes: entry.bytes, sizes: entry.sizes))
                      }),
                      communicationSeconds: median[1],
                      replicaChecksum: String(step.replicaChecksum(), radix: 16))
    }
}
