import Collectives
import Foundation

/// A training run on one rank (every rank runs the same code): the distributed step of Docs/distributed.md in a loop,
/// with logging, periodic evaluation, checkpoints, exact resume and stop on signal.
public final class Trainer {
    public struct Outcome {
        /// L of every iteration this run executed, in order.
        public var losses: [Double] = []
        /// First iteration this run executed (0, or the resumed checkpoint's).
        public var firstIteration = 0
        /// Iterations completed in total (the next iteration to run).
        public var iterationsDone = 0
        /// The final evaluation, when the run reached its end with an evaluation split.
        public var finalMetrics: RetrievalMetrics?
        /// True when a signal stopped the run early (after checkpointing).
        public var stopped = false
    }

    public let config: TrainingConfig
    public let comm: Communicator
    public let dataset: Dataset
    public let components: TrainingComponents
    /// Evaluate at the end of the run (tests of the step switch it off).
    public var evaluateAtEnd = true
    /// Print progress and tables (rank 0 only in any case).
    public var verbose = true

    private var sampler: PKSampler
    private var batch: GlobalBatch
    private let input: FlatBuffer<Float>
    private let runDirectory: RunDirectory?
    private let drift: DriftMonitor?
    private var iteration = 0

    /// Builds the run; with `resume`, restores the run directory's checkpoint (which must
    /// exist) — also under a different number of ranks.
    public init(config: TrainingConfig, comm: Communicator, resume: Bool = false, writeOutputs: Bool = true) throws {
        self.config = config
        self.comm = comm
        guard !config.data.isEmpty else { throw ConfigError("--data is required: a dataset directory (see `xbm-dist data --help`)") }
        dataset = try Dataset.load(directory: URL(fileURLWithPath: config.data, isDirectory: true))
        components = try TrainingComponents(config: config, sampleShape: dataset.sampleShape,
                                            isImages: dataset.isImages, comm: comm)
        sampler = try PKSampler(labels: dataset.labels, indices: dataset.indices(.train), batchSize: config.batch,
                                instances: config.instances, seed: config.seed, augment: dataset.isImages)
        batch = GlobalBatch(batchSize: config.batch)
        input = FlatBuffer(count: components.step.localBatch * dataset.sampleSize)
        runDirectory = writeOutputs && comm.rank == 0 ? RunDirectory(path: config.runDir) : nil
        drift = config.driftEvery > 0
            ? DriftMonitor(trainingIndices: dataset.indices(.train), probeSize: config.driftProbe,
                           dimension: config.dim, seed: config.seed)
            : nil

        let checkpointURL = RunDirectory(path: config.runDir).checkpointURL
        if resume {
            let checkpoint = try TrainingCheckpoint.read(from: checkpointURL, comm: comm)
            try checkpoint.restore(into: components.step, sampler: &sampler, drift: drift, config: config)
            iteration = checkpoint.iteration
        } else {
            try components.step.initializeParameters(seed: config.seed)
        }
        try runDirectory?.prepare(resumingAt: resume ? iteration : nil)
        try runDirectory?.writeConfig(config)
    }

    /// Trains from the current iteration to `--iters`.
    public func run() throws -> Outcome {
        let step = components.step
        let rank = comm.rank, b = step.localBatch
        var outcome = Outcome(firstIteration: iteration)
        let progress = ProgressLine(totalIterations: config.iters)
        let talk = verbose && rank == 0
        if talk { printHeader() }

        var windowSeconds = 0.0, windowSteps = 0, averageStep = 0.0
        while iteration < config.iters {
            if let drift, iteration % config.driftEvery == 0 { try measureDrift(drift) }
            if iteration == step.memoryStart, config.xbmInit == "fill", let memory = step.memory {
                try fillMemory(memory)
            }
            let started = DispatchTime.now().uptimeNanoseconds
            sampler.next(into: &batch)
            batch.indices.withUnsafeBufferPointer { indices in
                batch.shifts.withUnsafeBufferPointer { shifts in
                    dataset.fill(indices: UnsafeBufferPointer(rebasing: indices[(rank * b)..<((rank + 1) * b)]),
                                 shifts: UnsafeBufferPointer(rebasing: shifts[(2 * rank * b)..<(2 * (rank + 1) * b)]),
                                 into: input.pointer)
                }
            }
            let learningRate = components.schedule.rate(at: iteration)
            let result = try batch.labels.withUnsafeBufferPointer { labels in
                try step.run(input: input.pointer, labels: labels.baseAddress!, iteration: iteration,
                             learningRate: learningRate, stopRequested: StopSignal.requested)
            }
            if config.checkReplicas { try step.checkReplicas(iteration: iteration) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
            windowSeconds += seconds
            windowSteps += 1
            averageStep = averageStep == 0 ? seconds : 0.9 * averageStep + 0.1 * seconds
            outcome.losses.append(result.loss)
            iteration += 1

            let last = iteration == config.iters || result.stopRequested
            if iteration % config.logEvery == 0 || iteration == 1 || last {
                let imagesPerSecond = Double(windowSteps * config.batch) / max(windowSeconds, 1e-9)
                if talk {
                    let fill = step.memory.map { ($0.count, $0.capacity) }
                    progress.emit(progress.format(iteration: iteration, loss: result.loss, learningRate: Double(learningRate),
                                                  imagesPerSecond: imagesPerSecond,
                                                  secondsLeft: averageStep * Double(config.iters - iteration),
                                                  memoryFill: fill), final: !progress.isTerminal || last)
                }
                var record: [String: Any] = [
                    "iter": iteration, "loss": result.loss, "batch_loss": result.batchTerm,
                    "memory_loss": result.memoryTerm, "lr": Double(learningRate),
                    "images_per_second": imagesPerSecond, "memory_count": step.memory?.count ?? 0,
                ]
                record.merge(Self.diagnostics(result)) { old, _ in old }
                try runDirectory?.append(record)
                windowSeconds = 0
                windowSteps = 0
            }
            if result.stopRequested {
                if talk { progress.breakLine(); print("stop requested: checkpointing at iteration \(iteration)") }
                try saveCheckpoint()
                outcome.stopped = true
                break
            }
            if config.checkpointEvery > 0, iteration % config.checkpointEvery == 0, !last { try saveCheckpoint() }
            if config.evalEvery > 0, iteration % config.evalEvery == 0, !last {
                if talk { progress.breakLine() }
                _ = try evaluate(final: false)
            }
        }
        outcome.iterationsDone = iteration
        if !outcome.stopped {
            try saveCheckpoint()
            if evaluateAtEnd { outcome.finalMetrics = try evaluate(final: true) }
        }
        try runDirectory?.writePlot(title: "\(dataset.name): \(config.loss), memory \(config.xbmSize)")
        return outcome
    }

    /// The per-iteration pair diagnostics of metrics.jsonl (Docs/losses.md, Diagnostics): the
    /// memory's keys only when the memory term ran, a hardest similarity only when some anchor
    /// had such a pair, the active negatives' age only when there was one.
    static func diagnostics(_ result: DistributedStep.Result) -> [String: Double] {
        var keys: [String: Double] = [:]
        func add(_ prefix: String, _ statistics: PairStatistics) {
            keys[prefix + "_active_pos"] = statistics.meanActivePositives
            keys[prefix + "_active_neg"] = statistics.meanActiveNegatives
            keys[prefix + "_hardest_neg"] = statistics.meanHardestNegative
            keys[prefix + "_hardest_pos"] = statistics.meanHardestPositive
        }
        add("batch", result.batchStatistics)
        if let memory = result.memoryStatistics {
            add("memory", memory)
            keys["memory_age"] = result.memoryAge
            keys["memory_active_neg_age"] = memory.meanActiveNegativeAge
        }
        return keys
    }

    /// Parameters and running statistics agree on every rank with synchronised batch norm;
    /// with `--bn local` rank 0's statistics are broadcast first, so every rank evaluates the
    /// same model (as DistributedDataParallel's buffer broadcast does).
    private func evaluate(final: Bool) throws -> RetrievalMetrics {
        let step = components.step
        if config.bn == "local" { try comm.broadcast(step.state.buffer, root: 0) }
        let started = Date()
        let metrics = try Evaluation.retrieval(dataset: dataset, network: components.inferenceNetwork,
                                               parameters: step.parameters.pointer, state: step.state.pointer,
                                               ks: config.recallK, comm: comm)
        if let runDirectory {
            var record: [String: Any] = metrics.jsonObject
            record["iter"] = iteration
            record["eval_seconds"] = Date().timeIntervalSince(started)
            try runDirectory.append(record)
            if final { try runDirectory.writeFinalMetrics(metrics, iteration: iteration) }
        }
        if verbose && comm.rank == 0 {
            print(final ? "\nfinal retrieval at iteration \(iteration):" : "retrieval at iteration \(iteration):")
            print(metrics.table)
        }
        return metrics
    }

    private func saveCheckpoint() throws {
        let step = components.step
        // Never replace the last good checkpoint with diverged weights (identical on every
        // rank, so every rank stops here together).
        if let index = firstNonFinite(step.parameters.pointer, count: step.parameters.count) {
            let name = step.network.parameterLayout.entries.last { $0.offset <= index }?.name ?? "?"
            throw TrainingError.nonFiniteParameters(iteration: iteration, name: name)
        }
        if config.bn == "local" { try comm.broadcast(step.state.buffer, root: 0) }
        guard let runDirectory else { return }
        try TrainingCheckpoint(step: components.step, sampler: sampler, drift: drift, iteration: iteration, config: config)
            .write(to: runDirectory.checkpointURL)
    }

    /// Logs D(t, Δ) and, under `--xbm-start auto`, starts the memory at the first value below
    /// the threshold. Every rank measures the same value, so they decide together.
    private func measureDrift(_ drift: DriftMonitor) throws {
        let step = components.step
        guard let value = try drift.measure(dataset: dataset, network: components.inferenceNetwork,
                                            parameters: step.parameters.pointer, state: step.state.pointer, comm: comm)
        else { return }
        try runDirectory?.append(["iter": iteration, "drift": value])
        if config.xbmStart == .auto, step.memory != nil, step.memoryStart == Int.max,
           value < config.driftThreshold {
            step.memoryStart = iteration
            if verbose && comm.rank == 0 {
                print(String(format: "drift %.4f < %.4f: memory starts at iteration %d", value, config.driftThreshold, iteration))
            }
        }
    }

    /// `--xbm-init fill` (Docs/losses.md): at the start iteration, fill the memory with embeddings of
    /// random training samples computed by the current model. Every rank draws the same
    /// samples; each embeds its share of every round, and the rounds are allgathered and
    /// enqueued, so the replicas stay identical.
    private func fillMemory(_ memory: CrossBatchMemory) throws {
        let step = components.step, network = components.inferenceNetwork
        let B = config.batch, b = step.localBatch, d = config.dim
        var random = RandomSource.derived(seed: config.seed, stream: 0xF111 &+ UInt64(iteration))
        let train = dataset.indices(.train)
        let rounds = (memory.capacity + B - 1) / B
        let gathered = FlatBuffer<Float>(count: B * d)
        var rows = [Int32](repeating: 0, count: B)
        var labels = [Int32](repeating: 0, count: B)
        let chunkInput = FlatBuffer<Float>(count: b * dataset.sampleSize)
        for _ in 0..<rounds {
            for i in 0..<B {
                rows[i] = Int32(train[random.nextInt(below: train.count)])
                labels[i] = dataset.labels[Int(rows[i])]
            }
            rows.withUnsafeBufferPointer { all in
                dataset.fill(indices: UnsafeBufferPointer(rebasing: all[(comm.rank * b)..<((comm.rank + 1) * b)]),
                             shifts: nil, into: chunkInput.pointer)
            }
            let output = try network.forward(input: chunkInput.pointer, count: b, parameters: step.parameters.pointer,
                                             state: step.state.pointer, mode: .inference)
            try comm.allgather(UnsafeBufferPointer(start: output, count: b * d), into: gathered.buffer)
            _ = try labels.withUnsafeBufferPointer { try memory.enqueue(embeddings: gathered.pointer, labels: $0.baseAddress!, count: B) }
        }
        if verbose && comm.rank == 0 { print("memory filled with \(memory.count) embeddings at iteration \(iteration)") }
    }

    private func printHeader() {
        let c = config, step = components.step
        print("xbm-dist: \(dataset.name) (\(dataset.count) samples, \(dataset.indices(.train).count) for training), "
              + "\(components.modelKind.rawValue) d=\(c.dim), \(step.network.parameterLayout.count) parameters")
        print("  \(comm.size) rank(s) [\(comm.backendName)], global batch \(c.batch) = \(c.batch / c.instances) classes × \(c.instances), "
              + "local batch \(step.localBatch), BN \(c.bn), \(BLASThreads.current) BLAS thread(s) per rank (\(BLASKernels.current) kernels)")
        let memory = c.xbmSize > 0
            ? "memory \(c.xbmSize) from \(c.memoryStartIteration.map { "iteration \($0)" } ?? "a drift below \(c.driftThreshold)"), weight \(c.xbmWeight), \(c.xbmReduce)\(c.xbmInit == "fill" ? ", filled at start" : "")"
            : "no memory"
        print("  loss \(c.loss), \(memory); \(c.optimizer) lr \(c.lr) \(c.schedule)\(c.schedule == "step" ? " ×\(c.gamma) at \(c.milestoneIterations.map(String.init).joined(separator: ", "))" : ""); \(c.iters) iterations; run dir \(c.runDir)")
        if iteration > 0 { print("  resumed at iteration \(iteration)") }
    }
}
