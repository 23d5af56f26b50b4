import ArgumentParser
import Foundation
import XBMModel
import XBMTraining

/// The options of `train` (and of `bench step`), one group per group of `TrainingConfig`.
/// Every value is optional here: the effective value is the command line's, else the
/// `--config` file's, else the default (shown in help).
struct TrainOptions: ParsableArguments {
    @Option(help: "YAML or JSON config file keyed by option names without dashes; the command line overrides it.")
    var config: String?
    @OptionGroup(title: "Data and model") var model: ModelArguments
    @OptionGroup(title: "Loss") var loss: LossArguments
    @OptionGroup(title: "Batch, optimiser and schedule") var optimization: OptimizationArguments
    @OptionGroup(title: "Cross-batch memory") var memory: MemoryArguments
    @OptionGroup(title: "Evaluation") var evaluation: EvaluationArguments
    @OptionGroup(title: "Logging and outputs") var run: RunArguments

    /// Command line over config file over defaults. `base` stands in for `--config` when none
    /// is given (the run directory's own config.json on `--resume`).
    func configuration(base: URL? = nil) throws -> TrainingConfig {
        var c = try (config.map { URL(fileURLWithPath: $0) } ?? base).map(TrainingConfig.load(file:)) ?? TrainingConfig()
        for override in model.overrides { override.apply(&c.model) }
        for override in loss.overrides { override.apply(&c.loss) }
        for override in optimization.overrides { override.apply(&c.optimization) }
        for override in memory.overrides { override.apply(&c.memory) }
        for override in evaluation.overrides { override.apply(&c.evaluation) }
        for override in run.overrides { override.apply(&c.run) }
        return c
    }
}

/// One value of the command line and the config field it replaces when it was given.
struct Override<Config> {
    let apply: (inout Config) -> Void

    init<Value>(_ value: Value?, _ field: WritableKeyPath<Config, Value>) {
        apply = { config in if let value { config[keyPath: field] = value } }
    }

    /// A field whose absence means something (`margin`: the loss' own default).
    init<Value>(_ value: Value?, _ field: WritableKeyPath<Config, Value?>) {
        apply = { config in if let value { config[keyPath: field] = value } }
    }
}

/// The defaults that help texts show.
private let defaults = TrainingConfig()

struct ModelArguments: ParsableArguments {
    /// The values given on the command line, each with the field it sets.
    var overrides: [Override<ModelConfig>] {
        [.init(data, \.data), .init(model, \.model), .init(augment, \.augment), .init(dim, \.dim), .init(hidden, \.hidden),
         .init(bn, \.bn), .init(initFrom, \.initFrom), .init(initFromChecksum, \.initFromChecksum),
         .init(redrawHead, \.redrawHead)]
    }

    @Option(help: "Dataset directory (Docs/data.md). Default: the built-in hanzi benchmark in data/hanzi, built on first use.")
    var data: String?
    @Option(help: "Network: auto is glyphnet for images, mlp for features (default \(defaults.model.model.rawValue)).")
    var model: ModelChoice?
    @Option(help: "Training augmentation: glyph (shifts of ±2 px), photo (random resized crop and horizontal flip) or none; auto is glyph for one-channel images, photo for colour, none for features (default \(defaults.model.augment.rawValue)).")
    var augment: AugmentationChoice?
    @Option(help: "Embedding size d (default \(defaults.model.dim)).") var dim: Int?
    @Option(help: "Hidden width of the mlp (default \(defaults.model.hidden)).") var hidden: Int?
    @Option(help: "Batch-norm statistics over all ranks (sync) or per rank (local) (default \(defaults.model.bn.rawValue)).")
    var bn: BatchNormStatistics?
    @Option(help: "Start a new run from trained weights: a run directory, its checkpoint.xbm, or a .safetensors state dict as `export` writes (Docs/finetuning.md). The optimiser, schedule and memory start afresh.")
    var initFrom: String?
    @Option(help: "FNV-1a checksum (16 hex digits) that the --init-from file must have; a run records it in config.json.")
    var initFromChecksum: String?
    @Flag(inversion: .prefixedNo, help: "With --init-from: draw the embedding head (the last linear layer) afresh instead of loading it (default off).")
    var redrawHead: Bool?
}

struct LossArguments: ParsableArguments {
    /// The values given on the command line, each with the field it sets.
    var overrides: [Override<LossConfig>] {
        [.init(loss, \.kind), .init(margin, \.margin), .init(epsilon, \.epsilon), .init(msAlpha, \.msAlpha),
         .init(msBeta, \.msBeta), .init(msLambda, \.msLambda), .init(msMu, \.msMu),
         .init(temperature, \.temperature)]
    }

    @Option(help: "Pair loss (Docs/losses.md) (default \(defaults.loss.kind.rawValue)).") var loss: LossKind?
    @Option(help: "Margin of contrastive (default 0.5), triplet (0.1) or lifted (0.5).") var margin: Double?
    @Option(help: "Contrastive: positives with s ≥ 1 − ε are inactive (default \(defaults.loss.epsilon)).") var epsilon: Double?
    @Option(help: "Multi-similarity α (default \(defaults.loss.msAlpha)).") var msAlpha: Double?
    @Option(help: "Multi-similarity β (default \(defaults.loss.msBeta)).") var msBeta: Double?
    @Option(help: "Multi-similarity λ (default \(defaults.loss.msLambda)).") var msLambda: Double?
    @Option(help: "Multi-similarity mining margin μ (default \(defaults.loss.msMu)).") var msMu: Double?
    @Option(help: "N-pair temperature τ (default \(defaults.loss.temperature)).") var temperature: Double?
}

struct OptimizationArguments: ParsableArguments {
    /// The values given on the command line, each with the field it sets.
    var overrides: [Override<OptimizationConfig>] {
        [.init(batch, \.batch), .init(instances, \.instances), .init(iters, \.iters),
         .init(scheduleIters, \.scheduleIters), .init(optimizer, \.optimizer), .init(lr, \.lr), .init(weightDecay, \.weightDecay),
         .init(momentum, \.momentum), .init(schedule, \.schedule), .init(gamma, \.gamma),
         .init(warmup, \.warmup), .init(milestones.isEmpty ? nil : Array(milestones.joined()), \.milestones),
         .init(deterministic, \.deterministic), .init(deterministicChunks, \.deterministicChunks)]
    }

    @Option(help: "Global batch B; each rank takes B / ranks (default \(defaults.optimization.batch)).") var batch: Int?
    @Option(help: "Instances per class K in a batch (default \(defaults.optimization.instances)).") var instances: Int?
    @Option(help: "Training iterations (default \(defaults.optimization.iters)).") var iters: Int?
    @Option(help: "Length of the schedule that shares of it (75%) and cosine resolve against (default: --iters; a resumed run that raises --iters keeps its original length).")
    var scheduleIters: Int?
    @Option(help: "Optimiser (default \(defaults.optimization.optimizer.rawValue)).") var optimizer: OptimizerKind?
    @Option(help: "Base learning rate (default \(defaults.optimization.lr)).") var lr: Double?
    @Option(help: "Weight decay, on weights only (default \(defaults.optimization.weightDecay)).") var weightDecay: Double?
    @Option(help: "SGD momentum (default \(defaults.optimization.momentum)).") var momentum: Double?
    @Option(help: "Learning-rate schedule (default \(defaults.optimization.schedule.rawValue)).") var schedule: ScheduleKind?
    @Option(parsing: .singleValue,
            help: "Step schedule: where the rate is multiplied by --gamma, as iterations or shares of --iters (800, 75%; repeat or comma-separate) (default \(defaults.optimization.milestones.map(\.description).joined(separator: ","))).",
            transform: ListArgument.iterationPoints)
    var milestones: [[IterationPoint]] = []
    @Option(help: "Step schedule factor (default \(defaults.optimization.gamma)).") var gamma: Double?
    @Option(help: "Linear warm-up iterations (default \(defaults.optimization.warmup)).") var warmup: Int?
    @Flag(inversion: .prefixedNo, help: "Compute the same bits on every rank count that divides --deterministic-chunks and on any thread count: 1 rank, mpirun -np 4 and --simulate-ranks 2 train byte-identical weights, and a run resumes on another rank count without drifting (Docs/distributed.md) (default off).")
    var deterministic: Bool?
    @Option(help: "With --deterministic: chunks K of the global batch that every sum over samples is taken per; the guarantee covers the rank counts that divide K, and each rank's backward costs more with K / ranks (default \(defaults.optimization.deterministicChunks)).")
    var deterministicChunks: Int?
}

struct MemoryArguments: ParsableArguments {
    /// The values given on the command line, each with the field it sets.
    var overrides: [Override<MemoryConfig>] {
        [.init(xbmSize, \.size), .init(xbmStart, \.start), .init(xbmWeight, \.weight),
         .init(xbmReduce, \.reduction), .init(xbmInit, \.initialization), .init(driftEvery, \.driftEvery),
         .init(driftProbe, \.driftProbe), .init(driftThreshold, \.driftThreshold), .init(xbmCompensate, \.compensate),
         .init(xbmRefresh, \.refresh)]
    }

    @Option(help: "Cross-batch memory rows M; 0 disables the memory (default \(defaults.memory.size)).") var xbmSize: Int?
    @Option(help: "First iteration that uses the memory, as an iteration or a share of --iters (800, 75%), or auto: the first drift measurement below --drift-threshold (default \(defaults.memory.start)).")
    var xbmStart: MemoryStart?
    @Option(help: "Weight w of the memory term (default \(defaults.memory.weight)).") var xbmWeight: Double?
    @Option(help: "Memory term over its pairs: sum (the paper's), mean (per anchor, over the active pairs) or scaled (sum × batch / memory rows) (default \(defaults.memory.reduction.rawValue)).")
    var xbmReduce: MemoryReduction?
    @Option(help: "none, or fill: fill the memory with current embeddings at the start iteration (default \(defaults.memory.initialization.rawValue)).")
    var xbmInit: MemoryInit?
    @Option(help: "Drift compensation of the memory's rows: none, or moments: each row's per-dimension mean and deviation matched to the current model's (Docs/losses.md) (default \(defaults.memory.compensate.rawValue)).")
    var xbmCompensate: MemoryCompensation?
    @Option(help: "After each step with the memory, re-embed the N rows with the oldest stamps by the current model (N forward passes; Docs/losses.md); 0: none (default \(defaults.memory.refresh)).")
    var xbmRefresh: Int?
    @Option(help: "Measure feature drift on a fixed probe set every N iterations; 0: never (default \(defaults.memory.driftEvery)).")
    var driftEvery: Int?
    @Option(help: "Training samples in the drift probe set (default \(defaults.memory.driftProbe)).") var driftProbe: Int?
    @Option(help: "Mean drift below which --xbm-start auto starts the memory (default \(defaults.memory.driftThreshold)).")
    var driftThreshold: Double?
}

struct EvaluationArguments: ParsableArguments {
    /// The values given on the command line, each with the field it sets.
    var overrides: [Override<EvaluationConfig>] {
        [.init(evalEvery, \.every), .init(evalBatch, \.batch),
         .init(recallK.isEmpty ? nil : Array(Set(recallK.joined())).sorted(), \.recallK)]
    }

    @Option(help: "Evaluate every N iterations; 0: only at the end (default \(defaults.evaluation.every)).") var evalEvery: Int?
    @Option(help: "Samples per forward when embedding for evaluation (default \(defaults.evaluation.batch)).") var evalBatch: Int?
    @Option(parsing: .singleValue,
            help: "Recall@K cut-offs, repeat or comma-separate (default: the dataset's meta.json recall_k, else \(EvaluationConfig.defaultRecallK.map(String.init).joined(separator: ","))).",
            transform: ListArgument.recallCutoffs)
    var recallK: [[Int]] = []
}

struct RunArguments: ParsableArguments {
    /// The values given on the command line, each with the field it sets.
    var overrides: [Override<RunConfig>] {
        [.init(logEvery, \.logEvery), .init(checkpointEvery, \.checkpointEvery), .init(keepCheckpoints, \.keepCheckpoints),
         .init(runDir, \.directory),
         .init(seed, \.seed), .init(checkReplicas, \.checkReplicas), .init(stepTimeout, \.stepTimeout)]
    }

    @Option(help: "Progress line and metrics.jsonl every N iterations (default \(defaults.run.logEvery)).") var logEvery: Int?
    @Option(help: "Checkpoint every N iterations; 0: only at the end (default \(defaults.run.checkpointEvery)).")
    var checkpointEvery: Int?
    @Option(help: "Checkpoints to keep, newest first: checkpoint.xbm, checkpoint.1.xbm, …; --resume falls back on an older one when a newer one does not load (default \(defaults.run.keepCheckpoints)).")
    var keepCheckpoints: Int?
    @Option(help: "Directory for config.json, metrics, checkpoints and plots (default \(defaults.run.directory)).") var runDir: String?
    @Option(help: "Seed of initialisation, sampling and augmentation (default \(defaults.run.seed)).") var seed: UInt64?
    @Flag(inversion: .prefixedNo, help: "Compare parameter and memory checksums across ranks every step (default off).")
    var checkReplicas: Bool?
    @Option(help: "Seconds any one phase (a collective, an evaluation, a checkpoint) may take before the job is ended as stuck (default \(Int(defaults.run.stepTimeout))).")
    var stepTimeout: Double?
}
