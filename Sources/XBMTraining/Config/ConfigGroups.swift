import XBMData
import XBMKernels
import XBMModel
/// The six groups of `TrainingConfig`. Each property is one option; its coding key is the
/// option's name without dashes, and its default is the default of the option.

/// The data and the network that embeds it.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// `--data`: dataset directory (Docs/data.md); empty for the built-in hanzi benchmark.
    public var data = ""
    public var model = ModelChoice.auto
    /// `--augment`: what varies the training images (Docs/data.md).
    public var augment = AugmentationChoice.auto
    /// `--dim`: embedding size d.
    public var dim = 128
    /// `--hidden`: hidden width of the mlp.
    public var hidden = 512
    public var bn = BatchNormStatistics.sync
    /// `--init-from`: trained weights a new run starts from: a run directory, its
    /// checkpoint.xbm, or a .safetensors state dict (Docs/finetuning.md); nil starts from the
    /// seeded initialisation. A resumed run continues from its own checkpoint instead.
    public var initFrom: String?
    /// `--init-from-checksum`: FNV-1a of that file's bytes (16 hex digits). A new run records
    /// it; given, a file whose bytes differ is refused.
    public var initFromChecksum: String?
    /// `--redraw-head`: with `--init-from`, the embedding head (the last linear layer) keeps
    /// its seeded initialisation instead of the source's weights.
    public var redrawHead = false

    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable {
        case data, model, augment, dim, hidden, bn
        case initFrom = "init-from", initFromChecksum = "init-from-checksum", redrawHead = "redraw-head"
    }
    static let keys = CodingKeys.allCases.map(\.rawValue)

    /// The network for samples of `sampleShape`, for at most `maxBatch` samples per forward.
    /// Every network of the package is built here, so a checkpoint always meets the model it saved.
    public func makeNetwork(sampleShape: [Int], isImages: Bool, maxBatch: Int,
                            batchNorm: BatchNormSync) throws -> EmbeddingNetwork {
        do {
            return try XBMModel.makeNetwork(kind: model.resolved(isImages: isImages), inputShape: sampleShape,
                                       embeddingSize: dim, hiddenSize: hidden, maxBatch: maxBatch, batchNorm: batchNorm)
        } catch {
            throw ConfigError("\(error)")
        }
    }
}

/// `--model`: a network, or `auto` for glyphnet on images and mlp on features (Docs/numerics.md).
public enum ModelChoice: String, Codable, CaseIterable, Sendable {
    case auto, glyphnet, mlp

    public func resolved(isImages: Bool) -> ModelKind {
        switch self {
        case .auto: isImages ? .glyphnet : .mlp
        case .glyphnet: .glyphnet
        case .mlp: .mlp
        }
    }
}

/// `--augment`: a training augmentation, or `auto`: glyph shifts for one-channel images, photo
/// crops and flips for images of several channels, none for features (Docs/data.md).
public enum AugmentationChoice: String, Codable, CaseIterable, Sendable {
    case auto, glyph, photo, none

    /// The augmentation for a dataset of `kind`; glyph or photo on features is an error.
    public func resolved(for kind: Dataset.Kind) throws -> Augmentation {
        switch (self, kind) {
        case (.none, _), (.auto, .features): return .none
        case let (.auto, .images(channels, _, _)): return channels == 1 ? .glyph : .photo
        case (.glyph, .images): return .glyph
        case (.photo, .images): return .photo
        case (.glyph, .features), (.photo, .features):
            throw ConfigError("--augment \(rawValue) needs an image dataset, but the data holds feature vectors; use --augment none (or auto)")
        }
    }
}

/// What varies the training images (Docs/data.md); evaluation always sees them as they are.
public enum Augmentation: String, Sendable {
    /// Shifts of −2…2 pixels per axis with zero fill, drawn by the sampler (the hanzi recipe).
    case glyph
    /// A random resized crop back to H×W (bilinear) and a horizontal flip (`PhotoAugmentation`).
    case photo
    case none
}

/// `--bn`: batch-norm statistics over the global batch (`sync`, an allreduce per layer) or
/// over each rank's local batch (`local`, as DistributedDataParallel without SyncBatchNorm).
public enum BatchNormStatistics: String, Codable, CaseIterable, Sendable {
    case sync, local
}

/// The pair loss and its hyper-parameters (Docs/losses.md).
public struct LossConfig: Codable, Equatable, Sendable {
    /// `--loss`.
    public var kind = LossKind.contrastive
    /// `--margin` of contrastive, triplet or lifted; nil takes the chosen loss' own default.
    public var margin: Double?
    /// `--epsilon`: contrastive positives with s ≥ 1 − ε are inactive.
    public var epsilon = 1e-5
    /// Multi-similarity α, β, λ and mining margin μ.
    public var msAlpha = 2.0
    public var msBeta = 40.0
    public var msLambda = 0.5
    public var msMu = 0.1
    /// N-pair temperature τ.
    public var temperature = 0.1

    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind = "loss", margin, epsilon, msAlpha = "ms-alpha", msBeta = "ms-beta"
        case msLambda = "ms-lambda", msMu = "ms-mu", temperature
    }
    static let keys = CodingKeys.allCases.map(\.rawValue)

    /// Every loss' hyper-parameters; `--margin` applies to the loss chosen.
    public var options: LossOptions {
        var options = LossOptions()
        options.contrastiveEpsilon = epsilon
        options.msAlpha = msAlpha
        options.msBeta = msBeta
        options.msLambda = msLambda
        options.msMu = msMu
        options.npairTemperature = temperature
        if let margin {
            options.contrastiveMargin = margin
            options.tripletMargin = margin
            options.liftedMargin = margin
        }
        return options
    }
}

/// The global batch, the optimiser and the learning-rate schedule.
public struct OptimizationConfig: Codable, Equatable, Sendable {
    /// `--batch`: the global batch B; each of R ranks takes B / R.
    public var batch = 64
    /// `--instances`: K samples per class in a batch.
    public var instances = 4
    public var iters = 2400
    /// `--schedule-iters`: the length the schedule and the relative iteration points
    /// (milestones, memory start, cosine) resolve against; nil for `iters`. A resumed run that
    /// extends `iters` keeps its original length here unless told otherwise.
    public var scheduleIters: Int?
    public var optimizer = OptimizerKind.adam
    public var lr = 1e-3
    /// `--weight-decay`, on weights only.
    public var weightDecay = 0.0
    /// `--momentum` of SGD.
    public var momentum = 0.9
    public var schedule = ScheduleKind.step
    /// Where the step schedule multiplies the rate by `gamma` (iterations or shares of `iters`).
    public var milestones: [IterationPoint] = [.fraction(0.75)]
    public var gamma = 0.1
    /// `--warmup`: linear warm-up iterations.
    public var warmup = 0
    /// `--deterministic`: every sum over samples taken per chunk of the global batch and the
    /// chunks added exactly or in chunk order, so the run computes the same bits on any number
    /// of ranks and threads (Docs/distributed.md, "Deterministic training").
    public var deterministic = false
    /// `--deterministic-chunks`: K, the chunks of the global batch with `--deterministic`; the
    /// rank counts the guarantee covers are the divisors of K. Each rank's backward writes K / N
    /// gradients, so the cost grows with K (Docs/performance.md, "Deterministic training"):
    /// 4 covers 1, 2 and 4 ranks.
    public var deterministicChunks = 4

    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable {
        case batch, instances, iters, scheduleIters = "schedule-iters", optimizer, lr, weightDecay = "weight-decay", momentum
        case schedule, milestones, gamma, warmup, deterministic, deterministicChunks = "deterministic-chunks"
    }
    static let keys = CodingKeys.allCases.map(\.rawValue)

    /// What the schedule's length and shares of it resolve against.
    public var scheduleLength: Int { scheduleIters ?? iters }

    /// The step schedule's milestones as iterations of this run.
    public var milestoneIterations: [Int] { milestones.map { $0.resolved(iterations: scheduleLength) } }

    public func makeSchedule() -> LearningRateSchedule {
        LearningRateSchedule(kind: schedule, baseRate: Float(lr), warmupIterations: warmup,
                             milestones: milestoneIterations, gamma: Float(gamma), totalIterations: max(scheduleLength, 1))
    }

    public func makeOptimizer(layout: ParameterLayout) -> Optimizer {
        Optimizer(kind: optimizer, layout: layout,
                  weightDecay: Float(weightDecay), momentum: Float(momentum))
    }
}

/// The cross-batch memory and the drift measurements that can start it (Docs/losses.md):
/// L = (1/B) Σ_i [ℓ(e_i; E∖{i}) + w · ℓ(e_i; Mem∖{i})].
public struct MemoryConfig: Codable, Equatable, Sendable {
    /// `--xbm-size`: M rows; 0 disables the memory.
    public var size = 16384
    /// `--xbm-start`: the first iteration that enqueues and uses the memory (an iteration or
    /// a share of `iters`), or `auto`: the first drift measurement below `driftThreshold`.
    public var start = MemoryStart.at(.fraction(0.75))
    /// `--xbm-weight`: w.
    public var weight = 1.0
    /// `--xbm-reduce` (Docs/results.md: `mean` is the default, `sum` swamps the batch term).
    public var reduction = MemoryReduction.mean
    /// `--xbm-init`.
    public var initialization = MemoryInit.none
    /// `--xbm-compensate`: drift compensation of the rows the memory term reads.
    public var compensate = MemoryCompensation.none
    /// `--xbm-refresh`: rows with the oldest stamps re-embedded by the current model after each
    /// step that used the memory (0: none).
    public var refresh = 0
    /// `--drift-every`: measure feature drift every N iterations (0: never).
    public var driftEvery = 100
    /// `--drift-probe`: training samples in the drift probe set.
    public var driftProbe = 512
    /// `--drift-threshold`: the drift below which `--xbm-start auto` starts the memory.
    public var driftThreshold = 0.2

    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable {
        case size = "xbm-size", start = "xbm-start", weight = "xbm-weight", reduction = "xbm-reduce"
        case initialization = "xbm-init", driftEvery = "drift-every", driftProbe = "drift-probe"
        case driftThreshold = "drift-threshold", compensate = "xbm-compensate", refresh = "xbm-refresh"
    }
    /// Iterations on each side of a row's stamp whose rows estimate its model's moments
    /// (`MomentMatching`): 17 batches of rows.
    public static let compensationWindow = 8
    static let keys = CodingKeys.allCases.map(\.rawValue)

    public var isEnabled: Bool { size > 0 }
}

/// How the memory starts when it is switched on (`--xbm-init`).
public enum MemoryInit: String, Codable, CaseIterable, Sendable {
    /// Empty: it fills with the global batches from the start iteration on.
    case none
    /// Filled at the start iteration with embeddings of random training samples by the
    /// current model (the paper's initialisation, Docs/losses.md).
    case fill
}

/// `--xbm-compensate`: how the memory term corrects the drift of old rows (Docs/losses.md).
public enum MemoryCompensation: String, Codable, CaseIterable, Sendable {
    /// The rows as stored (the paper's).
    case none
    /// Each row's per-dimension moments matched to the current model's (`MomentMatching`).
    case moments
}

/// Retrieval evaluation during and after training (Docs/evaluation.md).
public struct EvaluationConfig: Codable, Equatable, Sendable {
    /// `--eval-every`: evaluate every N iterations (0: only at the end).
    public var every = 800
    /// `--eval-batch`: samples per forward when embedding for evaluation.
    public var batch = 256
    /// `--recall-k`: the Recall@K cut-offs; nil for the dataset's own (`recallCutoffs(for:)`).
    public var recallK: [Int]?

    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable {
        case every = "eval-every", batch = "eval-batch", recallK = "recall-k"
    }
    static let keys = CodingKeys.allCases.map(\.rawValue)

    /// The cut-offs when neither --recall-k nor the dataset's meta.json names any.
    public static let defaultRecallK = [1, 10, 100, 1000]

    /// The cut-offs an evaluation of `dataset` reports: --recall-k when given, else the
    /// dataset's `recall_k` (its literature's protocol, written by `xbm-dist data import`),
    /// else `defaultRecallK`.
    public func recallCutoffs(for dataset: Dataset) -> [Int] {
        recallK ?? dataset.recallK ?? Self.defaultRecallK
    }
}

/// Logging, checkpoints, the run directory, the seed and the replica check.
public struct RunConfig: Codable, Equatable, Sendable {
    /// `--log-every`: progress line and metrics.jsonl every N iterations.
    public var logEvery = 50
    /// `--checkpoint-every`: checkpoint every N iterations (0: only at the end).
    public var checkpointEvery = 400
    /// `--keep-checkpoints`: how many checkpoints the run directory keeps, newest first
    /// (`checkpoint.xbm`, `checkpoint.1.xbm`, …); `--resume` falls back on an older one when a
    /// newer one does not load.
    public var keepCheckpoints = 2
    /// `--run-dir`: directory of config.json, metrics, checkpoints and plots.
    public var directory = "runs/hanzi"
    /// `--seed` of initialisation, sampling and augmentation.
    public var seed: UInt64 = 0
    /// `--check-replicas`: compare parameter and memory checksums across ranks every step.
    public var checkReplicas = false
    /// `--step-timeout`: seconds any one phase of the run (a step's collective, an evaluation,
    /// a checkpoint) may take before the rank decides the job is stuck and ends it.
    public var stepTimeout = 600.0

    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable {
        case logEvery = "log-every", checkpointEvery = "checkpoint-every", keepCheckpoints = "keep-checkpoints"
        case directory = "run-dir", seed
        case checkReplicas = "check-replicas", stepTimeout = "step-timeout"
    }
    static let keys = CodingKeys.allCases.map(\.rawValue)
}
