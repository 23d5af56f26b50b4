import Collectives
import Foundation
import XBMData
import XBMKernels
import XBMModel

/// `xbm-dist bench step` (README.md, Docs/performance.md): the real distributed step — forward, allgather,
/// memory enqueue, batch and memory loss terms, allreduces, backward, optimizer — timed after
/// warm-up.
///
/// Labels follow the PyTorch reference's speed mode, `i / K + 1000 · (iteration mod 50)`: 50
/// batches of B/K classes each, cycling, so both compute the same kind of pairs. Samples are
/// class-structured rather than pure noise: sample = 0.6 · prototype(label) + 0.4 · noise, with
/// one fixed random prototype per class, so that a trained network separates the classes.
///
/// With a memory the timing must be of what training sees, not of a memory of strangers: a
/// memory of labels that never occur in a batch holds no positive and few active negatives,
/// and every loss would take its cheapest path. So the network first trains `pretrain` steps
/// (memory off), then the memory is filled with its embeddings (inference mode, shared over
/// the ranks as `--xbm-init fill` does) of the batches that follow in the label cycle, and the
/// timed steps go on from there with the memory in use. The result reports the fraction of
/// the b × M memory pairs that were active, to compare with a real run's metrics.jsonl.
public enum StepBenchmark {
    public struct Result: Codable, Sendable {
        /// Global images per second (summed over ranks) from the median step, and from the
        /// total time of the timed steps: the PyTorch reference prints the same two, under the
        /// same names, so a comparison can use one statistic for both sides.
        public var imagesPerSecondMedianStep: Double
        public var imagesPerSecond: Double
        public var medianStepSeconds: Double
        public var steps: Int
        public var batch: Int
        public var ranks: Int
        public var threads: Int
        public var model: String
        public var loss: String
        public var xbmSize: Int
        /// Training steps before the memory was filled (0 without a memory).
        public var pretrainSteps: Int
        /// Over the timed steps: active memory pairs / (B · M), and the active positives among
        /// them; nil without a memory.
        public var memoryActiveFraction: Double?
        public var memoryActivePositiveFraction: Double?
        /// OpenBLAS' kernel family (see `BLASKernels`).
        public var blasKernels: String
        /// The memory term's computation in the timed steps (`MemoryTermPath`: "fp32 one-pass",
        /// "screened bf16 (AVX512-BF16)", "GEMM", …); nil without a memory.
        public var memoryPath: String?
        /// Over the timed steps, the mean share of the memory rows × groups of 16 anchors that
        /// the memory term computed in fp32 (1 unscreened; the rows the screen kept); nil on GEMM.
        public var memoryRecomputedFraction: Double?
        /// The CPU's vector features as /proc/cpuinfo names them (`CPUFeatures.detected`).
        public var cpuFeatures: String
        /// The communicator's name, with the emulated latency when there is one ("mpi+200us").
        public var backend: String
        /// K with `--deterministic` (the chunks of the global batch), else nil.
        public var deterministicChunks: Int?
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
        /// Mean milliseconds per timed step in each phase of the step (the names the step
        /// reports to its watchdog; "the loss" holds the enqueue and both loss terms).
        public var phaseMilliseconds: [String: Double]

        enum CodingKeys: String, CodingKey {
            case imagesPerSecondMedianStep = "images_per_second_median_step", imagesPerSecond = "images_per_second"
            case medianStepSeconds = "median_step_seconds", steps, batch, ranks, threads, model, loss
            case xbmSize = "xbm_size", pretrainSteps = "pretrain_steps"
            case memoryActiveFraction = "memory_active_fraction", memoryActivePositiveFraction = "memory_active_positive_fraction"
            case blasKernels = "blas_kernels", memoryPath = "memory_path", memoryRecomputedFraction = "memory_recomputed_fraction", cpuFeatures = "cpu_features"
            case backend, deterministicChunks = "deterministic_chunks"
            case bucketBytes = "bucket_bytes", pollsBetweenLayers = "polls_between_layers"
            case collectivesPerStep = "collectives_per_step", replicaChecksum = "replica_checksum"
            case communicationSeconds = "communication_seconds", phaseMilliseconds = "phase_milliseconds"
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

    /// - Parameters:
    ///   - pretrain: training steps before the memory is filled; ignored without a memory.
    ///   - gradientOverlap: buckets of the gradient's allreduce started during the backward.
    public static func run(config: TrainingConfig, sampleShape: [Int], steps: Int, warmup: Int = 5,
                           pretrain: Int = 100, gradientOverlap: GradientOverlap? = nil, comm: Communicator) throws -> Result {
        precondition(steps >= 1, "bench step needs at least one timed step, got \(steps)")
        let counting = CountingCommunicator(wrapping: comm)
        let components = try TrainingComponents(config: config, sampleShape: sampleShape,
                                                isImages: sampleShape.count == 3, comm: counting)
        let step = components.step
        step.gradientOverlap = gradientOverlap
        try step.initializeParameters(seed: config.run.seed)
        let b = step.localBatch, B = config.optimization.batch
        let batches = BenchBatches(sampleShape: sampleShape, globalBatch: B, instances: config.optimization.instances,
                                   rows: GlobalBatch.localRows(rank: comm.rank, ranks: comm.size, batchSize: B),
                                   seed: config.run.seed)
        let input = FlatBuffer<Float>(count: b * batches.sampleSize)
        var labels = [Int32](repeating: 0, count: B)
        var iteration = 0
        let learningRate = Float(config.optimization.lr)

        func train(_ count: Int, timed: Bool, record: (Double, DistributedStep.Result) -> Void) throws {
            for _ in 0..<count {
                batches.fill(iteration: iteration, input: input.pointer, labels: &labels)
                try comm.barrier()
                counting.reset()   // so the tally holds the last step's collectives
                let start = DispatchTime.now().uptimeNanoseconds
                let result = try labels.withUnsafeBufferPointer {
                    try step.run(input: input.pointer, labels: $0.baseAddress!, iteration: iteration,
                                 learningRate: learningRate, stopRequested: false)
                }
                if timed { record(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, result) }
                iteration += 1
            }
        }

        var pretrainSteps = 0
        if let memory = step.memory {
            step.memoryStart = Int.max
            pretrainSteps = pretrain
            try train(pretrain, timed: false) { _, _ in }
            iteration = try fill(memory, step: step, network: components.inferenceNetwork, batches: batches,
                                 from: iteration, input: input, comm: comm)
            step.memoryStart = 0
        }

        var times: [Double] = [], active = 0.0, activePositive = 0.0, pairs = 0.0, recomputed = 0.0, recomputedSteps = 0
        try train(warmup, timed: false) { _, _ in }
        let phases = PhaseClock()
        step.phaseObserver = { phases.enter($0) }
        try train(steps, timed: true) { seconds, result in
            phases.enter(nil)
            times.append(seconds)
            if let statistics = result.memoryStatistics, let memory = step.memory {
                active += Double(statistics.activePositives + statistics.activeNegatives)
                activePositive += Double(statistics.activePositives)
                pairs += Double(B * memory.count)
                if let fraction = step.loss.memoryTermRecomputedFraction {
                    recomputed += fraction
                    recomputedSteps += 1
                }
            }
        }
        // The last timed step's collectives replayed alone: the communication the cost model predicts.
        let tally = counting.tally
        var replays: [Double] = []
        for _ in 0..<5 {
            try comm.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try tally.replay(on: comm)
            replays.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        // The slowest rank sets the pace: the maximum over ranks of each rank's median and total.
        let total = times.reduce(0, +)
        times.sort()
        replays.sort()
        var slowest = [times[times.count / 2], total, replays[replays.count / 2]]
        try comm.allreduceMax(&slowest)
        return Result(imagesPerSecondMedianStep: Double(B) / slowest[0], imagesPerSecond: Double(B * steps) / slowest[1],
                      medianStepSeconds: slowest[0], steps: steps, batch: B, ranks: comm.size, threads: BLASThreads.current,
                      model: components.modelKind.rawValue, loss: config.loss.kind.rawValue, xbmSize: config.memory.size,
                      pretrainSteps: pretrainSteps,
                      memoryActiveFraction: pairs > 0 ? active / pairs : nil,
                      memoryActivePositiveFraction: pairs > 0 ? activePositive / pairs : nil,
                      blasKernels: BLASKernels.current,
                      memoryPath: step.memory == nil ? nil : step.loss.memoryTermPath?.description,
                      memoryRecomputedFraction: recomputedSteps > 0 ? recomputed / Double(recomputedSteps) : nil,
                      cpuFeatures: CPUFeatures.detected().description,
                      backend: comm.backendName, deterministicChunks: step.deterministicChunks,
                      bucketBytes: gradientOverlap?.bucketBytes,
                      pollsBetweenLayers: gradientOverlap?.pollsBetweenLayers ?? false,
                      collectivesPerStep: Dictionary(uniqueKeysWithValues: CollectiveOperation.allCases.map { operation in
                          let entry = tally[operation]
                          return (operation.rawValue, CollectiveCount(calls: entry.calls, bytes: entry.bytes, sizes: entry.sizes))
                      }),
                      communicationSeconds: slowest[2],
                      replicaChecksum: String(step.replicaChecksum(), radix: 16),
                      phaseMilliseconds: phases.seconds.mapValues { $0 * 1e3 / Double(steps) })
    }

    /// Fills `memory` with the inference-mode embeddings of the batches from iteration `from`
    /// on: each rank embeds its rows of every batch and the batches are allgathered, so the
    /// replicas are identical. Returns the iteration after the last batch embedded, where the
    /// timed steps go on (so they meet their classes in the memory, not their own samples).
    private static func fill(_ memory: CrossBatchMemory, step: DistributedStep, network: EmbeddingNetwork,
                             batches: BenchBatches, from first: Int, input: FlatBuffer<Float>, comm: Communicator) throws -> Int {
        let b = step.localBatch, B = step.globalBatch, d = step.dimension
        let embeddings = FlatBuffer<Float>(count: B * d)
        var labels = [Int32](repeating: 0, count: B)
        var iteration = first
        while memory.count < memory.capacity {
            batches.fill(iteration: iteration, input: input.pointer, labels: &labels)
            let local = try network.forward(input: input.pointer, count: b, parameters: step.parameters.pointer,
                                            state: step.state.pointer, mode: .inference)
            try comm.allgather(UnsafeBufferPointer(start: local, count: b * d), into: embeddings.buffer)
            try memory.enqueue(embeddings: embeddings.pointer, labels: labels, count: B)
            iteration += 1
        }
        return iteration
    }
}

/// Time spent in each named phase: `enter` ends the current phase and starts the next (nil: none).
private final class PhaseClock {
    private(set) var seconds: [String: Double] = [:]
    private var current: (name: String, start: UInt64)?

    func enter(_ name: String?) {
        let now = DispatchTime.now().uptimeNanoseconds
        if let current { seconds[current.name, default: 0] += Double(now - current.start) * 1e-9 }
        current = name.map { ($0, now) }
    }
}

/// The benchmark's batches: labels `i / K + 1000 · (iteration mod 50)` for i in 0..<B, and for
/// this rank's rows the samples 0.6 · prototype(label) + 0.4 · u, u uniform in [0, 1), each
/// prototype uniform in [0, 1) from a generator seeded by its label.
final class BenchBatches {
    let sampleSize: Int
    private let globalBatch: Int, instances: Int
    private let rows: Range<Int>
    private let seed: UInt64
    private var prototypes: [Int32: [Float]] = [:]

    init(sampleShape: [Int], globalBatch: Int, instances: Int, rows: Range<Int>, seed: UInt64) {
        sampleSize = sampleShape.reduce(1, *)
        self.globalBatch = globalBatch
        self.instances = instances
        self.rows = rows
        self.seed = seed
    }

    static func label(row: Int, iteration: Int, instances: Int) -> Int32 {
        Int32(row / instances + 1000 * (iteration % 50))
    }

    func fill(iteration: Int, input: UnsafeMutablePointer<Float>, labels: inout [Int32]) {
        for row in 0..<globalBatch { labels[row] = Self.label(row: row, iteration: iteration, instances: instances) }
        for (local, row) in rows.enumerated() {
            // One stream per (iteration, row): the same sample whichever rank draws it.
            var noise = RandomSource.derived(seed: seed, stream: UInt64(iteration) << 24 | UInt64(row))
            let prototype = self.prototype(labels[row])
            let sample = input + local * sampleSize
            for j in 0..<sampleSize { sample[j] = 0.6 * prototype[j] + 0.4 * noise.nextUniform() }
        }
    }

    private func prototype(_ label: Int32) -> [Float] {
        if let known = prototypes[label] { return known }
        var random = RandomSource.derived(seed: seed, stream: 0xC1A55 << 40 | UInt64(UInt32(bitPattern: label)))
        let made = (0..<sampleSize).map { _ in random.nextUniform() }
        prototypes[label] = made
        return made
    }
}
