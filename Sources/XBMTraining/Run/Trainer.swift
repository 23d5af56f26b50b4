import Collectives
import Foundation
import XBMData
import XBMEval
import XBMKernels
import XBMModel

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
    /// What the last step of `run()` returned (nil before it).
    public private(set) var lastStepResult: DistributedStep.Result?
    /// Print progress and tables (rank 0 only in any case).
    public var verbose = true
    /// Asked once per step whether this rank wants the run to stop (a signal arrived). The
    /// answer rides on the step's allreduce, so one rank asking stops every rank at the same
    /// iteration, after a checkpoint.
    public var stopRequested: () -> Bool = { false }

    public private(set) var sampler: PKSampler
    /// What varies the training images (`--augment` resolved for the data).
    public let augmentation: Augmentation
    private var batch: GlobalBatch
    /// This rank's photo crops of the current batch (`--augment photo`; empty otherwise).
    private var crops: [PhotoCrop]
    private let input: FlatBuffer<Float>
    private let runDirectory: RunDirectory?
    /// The drift probe (`--drift-every` > 0).
    public let drift: DriftMonitor?
    private var iteration = 0
    private let dataFingerprint: UInt64
    /// Watches the current `run()` for phases that never end.
    private var watchdog: Watchdog?
    /// What `--resume` changed on purpose, for the header.
    private var resumeNotes: [String] = []
    /// Whether the memory term's path has been printed (once, at its first evaluation).
    private var announcedMemoryTerm = false
    /// `--bn local`: rank 0's running statistics, for the inference passes (`inferenceState`).
    private lazy var rankZeroState = FlatBuffer<Float>(count: components.step.state.count)

    /// Builds the run; with `resume`, restores the run directory's checkpoint (which must
    /// exist) — also under a different number of ranks — after checking that `config` does not
    /// change what the run computes beyond the keys named in `resumeOverrides` (`ResumePolicy`).
    public init(config requested: TrainingConfig, comm: Communicator, resume: Bool = false,
                resumeOverrides: Set<String> = [], writeOutputs: Bool = true) throws {
        self.comm = comm
        guard !requested.model.data.isEmpty else { throw ConfigError("--data is required: a dataset directory (see `xbm-dist data --help`)") }
        dataset = try Dataset.load(directory: URL(fileURLWithPath: requested.model.data, isDirectory: true))
        dataFingerprint = dataset.fingerprint()
        var checkpoint: TrainingCheckpoint?
        var fallback: Int?      // the generation resumed from when newer checkpoints did not load
        var config = requested
        if resume {
            let newest = try TrainingCheckpoint.readNewest(in: RunDirectory(path: requested.run.directory), comm: comm)
            if let warning = newest.warning {
                if comm.rank == 0 { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
                fallback = newest.generation
            }
            let saved = newest.checkpoint
            let outcome = try ResumePolicy.reconcile(requested: requested, saved: saved.config, overrides: resumeOverrides,
                                                     savedData: saved.dataFingerprint, currentData: dataFingerprint)
            config = outcome.config
            resumeNotes = outcome.notes
            checkpoint = saved
        }
        // A new run from trained weights: read them first, so config.json records their checksum.
        var initialWeights: InitialWeights?
        if !resume, let source = config.model.initFrom {
            let weights = try InitialWeights.load(source, comm: comm)
            let checksum = FNV1a64.hex(weights.checksum)
            if let expected = config.model.initFromChecksum, expected.lowercased() != checksum {
                throw ConfigError("--init-from \(source): the file's checksum is \(checksum), but --init-from-checksum is \(expected): "
                                  + "it is not the file the configuration was made with. Pass the right file, or drop "
                                  + "init-from-checksum to start from this one")
            }
            config.model.initFromChecksum = checksum
            initialWeights = weights
        }
        self.config = config
        components = try TrainingComponents(config: config, sampleShape: dataset.sampleShape,
                                            isImages: dataset.isImages, comm: comm)
        augmentation = try config.model.augment.resolved(for: dataset.kind)
        sampler = try PKSampler(labels: dataset.labels, indices: dataset.indices(.train), batchSize: config.optimization.batch,
                                instances: config.optimization.instances, seed: config.run.seed, augment: augmentation == .glyph)
        batch = GlobalBatch(batchSize: config.optimization.batch)
        crops = Array(repeating: .whole(height: 1, width: 1), count: augmentation == .photo ? components.step.localBatch : 0)
        input = FlatBuffer(count: components.step.localBatch * dataset.sampleSize)
        runDirectory = writeOutputs && comm.rank == 0 ? RunDirectory(path: config.run.directory) : nil
        drift = config.memory.driftEvery > 0
            ? DriftMonitor(trainingIndices: dataset.indices(.train), probeSize: config.memory.driftProbe,
                           dimension: config.model.dim, seed: config.run.seed)
            : nil

        if let checkpoint {
            try checkpoint.restore(into: components.step, sampler: &sampler, drift: drift, config: config)
            iteration = checkpoint.iteration
        } else {
            try components.step.initializeParameters(seed: config.run.seed)
            if let initialWeights {
                let network = components.network, step = components.step
                try initialWeights.apply(to: step.parameters.pointer, layout: network.parameterLayout,
                                         keeping: config.model.redrawHead ? Set(network.headParameterNames) : [])
                try initialWeights.apply(to: step.state.pointer, layout: network.stateLayout)
            }
        }
        if let fallback { try runDirectory?.promoteCheckpoint(generation: fallback) }
        try runDirectory?.prepare(resumingAt: resume ? iteration : nil)
        try runDirectory?.writeConfig(config)
    }

    /// Trains from the current iteration to `--iters`.
    public func run() throws -> Outcome {
        let step = components.step
        let rows = GlobalBatch.localRows(rank: comm.rank, ranks: comm.size, batchSize: config.optimization.batch)
        var outcome = Outcome(firstIteration: iteration)
        let progress = ProgressLine(totalIterations: config.optimization.iters)
        let talk = verbose && comm.rank == 0
        if talk { printHeader() }

        // Abort is the one call a communicator takes from any thread: it ends the process.
        nonisolated(unsafe) let aborting = comm
        let watchdog = Watchdog(timeout: config.run.stepTimeout) { message in
            // MPI_Abort from the watchdog's thread; should it not end the process, exit anyway.
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) { _exit(124) }
            aborting.abort(message: message, exitCode: 124)
        }
        defer { watchdog.stop() }
        self.watchdog = watchdog
        step.phaseObserver = { [unowned watchdog] phase in watchdog.enter(phase) }
        defer { step.phaseObserver = nil }

        var windowSeconds = 0.0, windowSteps = 0, averageStep = 0.0
        while iteration < config.optimization.iters {
            if let drift, iteration % config.memory.driftEvery == 0 {
                watchdog.enter("a drift measurement", iteration: iteration)
                try measureDrift(drift)
            }
            if iteration == step.memoryStart, config.memory.initialization == .fill, let memory = step.memory {
                watchdog.enter("the memory fill", iteration: iteration)
                try fillMemory(memory)
            }
            let started = DispatchTime.now().uptimeNanoseconds
            watchdog.enter("loading the batch", iteration: iteration)
            sampler.next(into: &batch)
            loadBatch(rows: rows)
            let learningRate = components.schedule.rate(at: iteration)
            let result = try batch.labels.withUnsafeBufferPointer { labels in
                try batch.indices.withUnsafeBufferPointer { samples in
                    try step.run(input: input.pointer, labels: labels.baseAddress!, samples: samples.baseAddress!,
                                 iteration: iteration, learningRate: learningRate, stopRequested: stopRequested())
                }
            }
            lastStepResult = result
            if talk, !announcedMemoryTerm, let path = step.loss.memoryTermPath {
                // Which kernel the memory term took (Docs/performance.md, "Exact screening"): the
                // paths give the same results up to the GEMM's rounding, at different speeds.
                print("the memory term takes the \(path) path (from iteration \(iteration))")
                announcedMemoryTerm = true
            }
            if config.memory.refresh > 0, let memory = step.memory, iteration >= step.memoryStart, memory.count > 0 {
                watchdog.enter("the memory refresh", iteration: iteration)
                try refreshMemory(memory)
            }
            if config.run.checkReplicas {
                watchdog.enter("the replica check")
                try step.checkReplicas(iteration: iteration)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
            windowSeconds += seconds
            windowSteps += 1
            averageStep = averageStep == 0 ? seconds : 0.9 * averageStep + 0.1 * seconds
            outcome.losses.append(result.loss)
            iteration += 1

            let last = iteration == config.optimization.iters || result.stopRequested
            if iteration % config.run.logEvery == 0 || iteration == 1 || last {
                let imagesPerSecond = Double(windowSteps * config.optimization.batch) / max(windowSeconds, 1e-9)
                if talk {
                    let fill = step.memory.map { ($0.count, $0.capacity) }
                    progress.emit(progress.format(iteration: iteration, loss: result.loss, learningRate: Double(learningRate),
                                                  imagesPerSecond: imagesPerSecond,
                                                  secondsLeft: averageStep * Double(config.optimization.iters - iteration),
                                                  memoryFill: fill), final: !progress.isTerminal || last)
                }
                var record = MetricsRecord(iteration: iteration)
                record.loss = result.loss
                record.batchLoss = result.batchTerm
                record.memoryLoss = result.memoryTerm
                record.learningRate = Double(learningRate)
                record.imagesPerSecond = imagesPerSecond
                record.memoryCount = step.memory?.count ?? 0
                Self.addDiagnostics(of: result, to: &record)
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
            if config.run.checkpointEvery > 0, iteration % config.run.checkpointEvery == 0, !last { try saveCheckpoint() }
            if config.evaluation.every > 0, iteration % config.evaluation.every == 0, !last {
                if talk { progress.breakLine() }
                _ = try evaluate(final: false)
            }
        }
        outcome.iterationsDone = iteration
        if !outcome.stopped {
            try saveCheckpoint()
            if evaluateAtEnd { outcome.finalMetrics = try evaluate(final: true) }
        }
        try runDirectory?.writePlot(title: "\(dataset.name): \(config.loss.kind.rawValue), memory \(config.memory.size)")
        return outcome
    }

    /// This rank's rows of the sampled global batch into `input`, augmented (Docs/data.md).
    private func loadBatch(rows: Range<Int>) {
        batch.indices.withUnsafeBufferPointer { all in
            let indices = UnsafeBufferPointer(rebasing: all[rows])
            switch augmentation {
            case .photo:
                guard case let .images(_, height, width) = dataset.kind else { preconditionFailure("photo augmentation of features") }
                crops.withUnsafeMutableBufferPointer { crops in
                    PhotoAugmentation.drawCrops(into: crops, seed: config.run.seed, iteration: iteration,
                                                batchSize: config.optimization.batch, rows: rows, height: height, width: width)
                    dataset.fill(indices: indices, crops: UnsafeBufferPointer(crops), into: input.pointer)
                }
            case .glyph, .none:
                // The sampler drew the shifts (all zero without augmentation).
                batch.shifts.withUnsafeBufferPointer { shifts in
                    dataset.fill(indices: indices, shifts: UnsafeBufferPointer(rebasing: shifts[(2 * rows.lowerBound)..<(2 * rows.upperBound)]),
                                 into: input.pointer)
                }
            }
        }
    }

    /// The per-iteration pair diagnostics of metrics.jsonl (Docs/losses.md, Diagnostics): the
    /// memory's only when the memory term ran, a hardest similarity only when some anchor had
    /// such a pair, the active negatives' age only when there was one.
    static func addDiagnostics(of result: DistributedStep.Result, to record: inout MetricsRecord) {
        func diagnostics(_ statistics: PairStatistics) -> MetricsRecord.PairDiagnostics {
            var d = MetricsRecord.PairDiagnostics()
            d.activePositives = statistics.meanActivePositives
            d.activeNegatives = statistics.meanActiveNegatives
            d.hardestNegative = statistics.meanHardestNegative
            d.hardestPositive = statistics.meanHardestPositive
            return d
        }
        record.batch = diagnostics(result.batchStatistics)
        if let memory = result.memoryStatistics {
            record.memory = diagnostics(memory)
            record.memoryAge = result.memoryAge
            record.memoryActiveNegativeAge = memory.meanActiveNegativeAge
        }
    }

    /// The running statistics every inference pass uses (evaluation, the memory's fill and
    /// refresh, the drift measurements), so that every rank embeds with the same model and the
    /// result does not depend on the number of ranks. With synchronised batch norm they agree
    /// on every rank already; with `--bn local` each rank's differ, and rank 0's are broadcast
    /// into a copy (as DistributedDataParallel's buffer broadcast does), leaving each rank's
    /// own to its training. Rank 0's are also the ones a checkpoint saves.
    private func inferenceState() throws -> UnsafeMutablePointer<Float> {
        let state = components.step.state
        guard config.model.bn == .local, comm.size > 1 else { return state.pointer }
        if comm.rank == 0 { rankZeroState.pointer.update(from: state.pointer, count: state.count) }
        try comm.broadcast(rankZeroState.buffer, root: 0)
        return rankZeroState.pointer
    }

    /// The final evaluation adds NMI and AMI (k-means seeded with `--seed`; Docs/evaluation.md,
    /// Clustering).
    private func evaluate(final: Bool) throws -> RetrievalMetrics {
        watchdog?.enter("an evaluation")
        let step = components.step
        let started = Date()
        let metrics = try Evaluation.retrieval(dataset: dataset, network: components.inferenceNetwork,
                                               parameters: step.parameters.pointer, state: try inferenceState(),
                                               ks: config.evaluation.recallCutoffs(for: dataset),
                                               clusteringSeed: final ? config.run.seed : nil, comm: comm)
        if let runDirectory {
            try runDirectory.append(MetricsRecord(iteration: iteration, retrieval: metrics,
                                                  seconds: Date().timeIntervalSince(started)))
            if final { try runDirectory.writeFinalMetrics(metrics, iteration: iteration) }
        }
        if verbose && comm.rank == 0 {
            print(final ? "\nfinal retrieval at iteration \(iteration):" : "retrieval at iteration \(iteration):")
            print(metrics.table)
        }
        return metrics
    }

    private func saveCheckpoint() throws {
        watchdog?.enter("a checkpoint")
        let step = components.step
        // Never replace the last good checkpoint with diverged weights (identical on every
        // rank, so every rank stops here together).
        if let index = firstNonFinite(step.parameters.pointer, count: step.parameters.count) {
            let name = step.network.parameterLayout.entries.last { $0.offset <= index }?.name ?? "?"
            throw TrainingError.nonFiniteParameters(iteration: iteration, name: name)
        }
        guard let runDirectory else { return }
        let checkpoint = TrainingCheckpoint(step: components.step, sampler: sampler, drift: drift, iteration: iteration,
                                            config: config, dataFingerprint: dataFingerprint)
        try runDirectory.rotateCheckpoints(keep: config.run.keepCheckpoints)
        try checkpoint.write(to: runDirectory.checkpointURL)
    }

    /// Logs D(t, Δ) and, under `--xbm-start auto`, starts the memory at the first value below
    /// the threshold. Every rank measures the same value, so they decide together.
    private func measureDrift(_ drift: DriftMonitor) throws {
        let step = components.step
        let state = try inferenceState()
        guard let value = try drift.measure(dataset: dataset, network: components.inferenceNetwork,
                                            parameters: step.parameters.pointer, state: state, comm: comm)
        else { return }
        var record = MetricsRecord(iteration: iteration)
        record.drift = value
        if let memory = step.memory, memory.count > 0,
           let staleness = try MemoryDrift.measure(memory: memory, compensated: step.compensation?.compensated(memory),
                                                   rows: config.memory.driftProbe, dataset: dataset,
                                                   network: components.inferenceNetwork, parameters: step.parameters.pointer,
                                                   state: state, comm: comm) {
            record.memoryDrift = staleness.stored
            record.memoryDriftCompensated = staleness.compensated
            record.memoryDriftAge = staleness.age
        }
        try runDirectory?.append(record)
        if config.memory.start == .auto, step.memory != nil, step.memoryStart == Int.max,
           value < config.memory.driftThreshold {
            step.memoryStart = iteration
            if verbose && comm.rank == 0 {
                print(String(format: "drift %.4f < %.4f: memory starts at iteration %d", value, config.memory.driftThreshold, iteration))
            }
        }
    }

    /// `--xbm-refresh K` (Docs/losses.md, Drift compensation): after a step with the memory, the
    /// K rows with the oldest stamps are embedded again by the updated model (the next step's,
    /// so they are stamped with the memory's clock) in inference mode. Embedding is sharded over
    /// the ranks and allgathered, and every rank picks the same rows, so the replicas stay identical.
    private func refreshMemory(_ memory: CrossBatchMemory) throws {
        let rows = memory.oldestRows(config.memory.refresh)
        guard !rows.isEmpty else { return }
        let step = components.step, d = memory.dimension
        let embeddings = try Evaluation.embed(indices: rows.map { Int(memory.row($0).sample) }, dataset: dataset,
                                              network: components.inferenceNetwork, parameters: step.parameters.pointer,
                                              state: try inferenceState(), comm: comm)
        for (i, row) in rows.enumerated() { memory.overwrite(row: row, embedding: embeddings.pointer + i * d) }
    }

    /// `--xbm-init fill` (Docs/losses.md): at the start iteration, fill the memory with embeddings of
    /// random training samples computed by the current model. Every rank draws the same
    /// samples; each embeds its share of every round, and the rounds are allgathered and
    /// enqueued, so the replicas stay identical.
    private func fillMemory(_ memory: CrossBatchMemory) throws {
        let step = components.step, B = config.optimization.batch
        var random = RandomSource.derived(seed: config.run.seed, stream: 0xF111 &+ UInt64(iteration))
        let train = dataset.indices(.train), state = try inferenceState()
        for _ in 0..<((memory.capacity + B - 1) / B) {
            let rows = (0..<B).map { _ in train[random.nextInt(below: train.count)] }
            let labels = rows.map { dataset.labels[$0] }
            let embeddings = try Evaluation.embed(indices: rows, dataset: dataset, network: components.inferenceNetwork,
                                                  parameters: step.parameters.pointer, state: state, comm: comm)
            try memory.enqueue(embeddings: embeddings.pointer, labels: labels, samples: rows.map { Int32($0) }, count: B)
        }
        if verbose && comm.rank == 0 { print("memory filled with \(memory.count) embeddings at iteration \(iteration)") }
    }

    private func printHeader() {
        let c = config, o = c.optimization, m = c.memory, step = components.step
        print("xbm-dist: \(dataset.name) (\(dataset.count) samples, \(dataset.indices(.train).count) for training), "
              + "\(components.modelKind.rawValue) d=\(c.model.dim), \(step.network.parameterLayout.count) parameters, "
              + "augmentation \(augmentation.rawValue)")
        print("  \(comm.size) rank(s) [\(comm.backendName)], global batch \(o.batch) = \(o.batch / o.instances) classes × \(o.instances), "
              + "local batch \(step.localBatch), BN \(c.model.bn.rawValue), \(BLASThreads.current) BLAS thread(s) per rank (\(BLASKernels.current) kernels)")
        // The step's own start: on a resume it may differ from the configuration's (ResumePolicy.memoryStart).
        let start = step.memoryStart == Int.max ? "a drift below \(m.driftThreshold)" : "iteration \(step.memoryStart)"
        let memory = m.isEnabled
            ? "memory \(m.size) from \(start), weight \(m.weight), \(m.reduction.rawValue)\(m.initialization == .fill ? ", filled at start" : "")"
            : "no memory"
        let drops = o.schedule == .step ? " ×\(o.gamma) at \(o.milestoneIterations.map(String.init).joined(separator: ", "))" : ""
        print("  loss \(c.loss.kind.rawValue), \(memory); \(o.optimizer.rawValue) lr \(o.lr) \(o.schedule.rawValue)\(drops); "
              + "\(o.iters) iterations; run dir \(c.run.directory)")
        if let source = c.model.initFrom, iteration == 0 {
            print("  starting from the weights of \(source) (checksum \(c.model.initFromChecksum ?? "?"))"
                  + (c.model.redrawHead ? ", the embedding head drawn afresh" : ""))
        }
        if iteration > 0 { print("  resumed at iteration \(iteration)") }
        for note in resumeNotes { print("  resume: \(note)") }
        let trainCount = dataset.indices(.train).count
        if m.isEnabled, m.size > trainCount {
            print(String(format: "  note: the memory holds %d rows but the training split has %d samples, so each sample "
                         + "sits in a full memory about %.1f times (embedded by different models); --xbm-size %d or less avoids the repeats",
                         m.size, trainCount, Double(m.size) / Double(max(trainCount, 1)), trainCount))
        }
    }
}
