import Collectives
import Foundation

/// The pieces a run is built from, made from a configuration and a dataset the same way by
/// `train`, `eval`, `embed` and `bench step`, so a checkpoint always meets the model it saved.
public struct TrainingComponents {
    public let config: TrainingConfig
    public let modelKind: ModelKind
    public let lossKind: LossKind
    /// The training network, sized for the local batch b; its batch norm is synchronised over
    /// the communicator unless `--bn local`.
    public let network: EmbeddingNetwork
    /// A second network over the same parameters for inference in larger chunks (evaluation,
    /// embedding, memory fill); it never trains, so its batch norm needs no synchronisation.
    public let inferenceNetwork: EmbeddingNetwork
    public let step: DistributedStep
    public let schedule: LearningRateSchedule

    public init(config: TrainingConfig, sampleShape: [Int], isImages: Bool, comm: Communicator) throws {
        try config.validate(ranks: comm.size)
        self.config = config
        modelKind = try TrainingComponents.modelKind(config.model, isImages: isImages)
        guard let lossKind = LossKind(rawValue: config.loss) else {
            throw ConfigError("--loss \(config.loss) is not a loss; choose one of \(LossKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.lossKind = lossKind
        guard let optimizerKind = OptimizerKind(rawValue: config.optimizer) else {
            throw ConfigError("--optimizer \(config.optimizer) is not an optimizer; choose one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }

        let localBatch = config.batch / comm.size
        let batchNorm: BatchNormSync = config.bn == "local"
            ? .local
            : .synchronized(reducer: { [unowned comm] buffer in try comm.allreduceSum(buffer) })
        do {
            network = try makeNetwork(kind: modelKind, inputShape: sampleShape, embeddingSize: config.dim,
                                      hiddenSize: config.hidden, maxBatch: localBatch, batchNorm: batchNorm)
            inferenceNetwork = try makeNetwork(kind: modelKind, inputShape: sampleShape, embeddingSize: config.dim,
                                               hiddenSize: config.hidden, maxBatch: max(config.evalBatch, localBatch),
                                               batchNorm: .local)
        } catch {
            throw ConfigError("\(error)")
        }

        let loss = makePairLoss(lossKind, options: TrainingComponents.lossOptions(config))
        let memory = config.xbmSize > 0 ? CrossBatchMemory(capacity: config.xbmSize, dimension: config.dim) : nil
        let optimizer = Optimizer(kind: optimizerKind, layout: network.parameterLayout, learningRate: Float(config.lr),
                                  weightDecay: Float(config.weightDecay), momentum: Float(config.momentum))
        step = DistributedStep(comm: comm, network: network, loss: loss, memory: memory,
                               memoryWeight: Float(config.xbmWeight),
                               memoryReduction: MemoryReduction(rawValue: config.xbmReduce) ?? .mean,
                               memoryStart: config.memoryStartIteration ?? Int.max, optimizer: optimizer, globalBatch: config.batch)
        schedule = LearningRateSchedule(kind: ScheduleKind(rawValue: config.schedule) ?? .constant,
                                        baseRate: Float(config.lr), warmupIterations: config.warmup,
                                        milestones: config.milestoneIterations, gamma: Float(config.gamma),
                                        totalIterations: max(config.iters, 1))
    }

    /// `auto` picks glyphnet for images and mlp for feature vectors (Docs/numerics.md).
    static func modelKind(_ name: String, isImages: Bool) throws -> ModelKind {
        if name == "auto" { return isImages ? .glyphnet : .mlp }
        guard let kind = ModelKind(rawValue: name) else {
            throw ConfigError("--model \(name) is not a model; choose auto, \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }

    /// The defaults of Docs/losses.md, overridden by the options that name them. `--margin` applies to the loss
    /// chosen (contrastive, triplet or lifted), each of which has its own default.
    static func lossOptions(_ config: TrainingConfig) -> LossOptions {
        var options = LossOptions()
        options.contrastiveEpsilon = config.epsilon
        options.msAlpha = config.msAlpha
        options.msBeta = config.msBeta
        options.msLambda = config.msLambda
        options.msMu = config.msMu
        options.npairTemperature = config.temperature
        if let margin = config.margin {
            options.contrastiveMargin = margin
            options.tripletMargin = margin
            options.liftedMargin = margin
        }
        return options
    }
}
