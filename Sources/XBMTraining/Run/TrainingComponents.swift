import Collectives
import Foundation
import XBMKernels
import XBMModel

/// The pieces a run is built from, made from a configuration and a dataset the same way by
/// `train` and `bench step`, so a checkpoint always meets the model it saved.
public struct TrainingComponents {
    public let config: TrainingConfig
    public let modelKind: ModelKind
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
        modelKind = config.model.model.resolved(isImages: isImages)
        let localBatch = config.optimization.batch / comm.size
        let o = config.optimization
        let deterministicChunks = o.deterministic ? o.deterministicChunks : nil
        let batchNorm: BatchNormSync = switch (config.model.bn, deterministicChunks) {
        case (.local, _): .local
        case (.sync, nil): .synchronized(reducer: { [unowned comm] buffer in try comm.allreduceSum(buffer) })
        case let (.sync, chunks?): ChunkedStatistics(comm: comm).batchNormSync(chunks: chunks / comm.size)
        }
        network = try config.model.makeNetwork(sampleShape: sampleShape, isImages: isImages,
                                               maxBatch: localBatch, batchNorm: batchNorm)
        inferenceNetwork = try config.model.makeNetwork(sampleShape: sampleShape, isImages: isImages,
                                                        maxBatch: max(config.evaluation.batch, localBatch),
                                                        batchNorm: .local)
        // Exact screening of the contrastive memory term (Docs/losses.md): XBM_SCREENING=on, or off
        // (the default) for the fp32 one pass, the same bits. The memory keeps bf16 rows only for it.
        // XBM_MEMORY_PATH=gemm runs the memory term through S = A · Mᵀ instead of one pass (for timing).
        let environment = ProcessInfo.processInfo.environment
        let tuning = PairLossTuning(screening: try PairLossTuning.screening(environment: environment),
                                    onePass: try PairLossTuning.onePass(environment: environment))
        let screensMemory = tuning.screening != nil && config.loss.kind == .contrastive
            && config.model.dim <= ScreeningBound.maximumDimension
        let memory = config.memory.isEnabled
            ? CrossBatchMemory(capacity: config.memory.size, dimension: config.model.dim, lowPrecisionCopy: screensMemory) : nil
        let loss = makePairLoss(config.loss.kind, options: config.loss.options, tuning: tuning)
        step = DistributedStep(comm: comm, network: network, loss: loss,
                               memory: memory, memoryWeight: Float(config.memory.weight),
                               memoryReduction: config.memory.reduction,
                               memoryStart: config.memoryStartIteration ?? Int.max,
                               optimizer: config.optimization.makeOptimizer(layout: network.parameterLayout),
                               globalBatch: config.optimization.batch,
                               compensation: config.memory.compensate == .moments
                                   ? MomentMatching(window: MemoryConfig.compensationWindow) : nil,
                               deterministicChunks: deterministicChunks)
        schedule = config.optimization.makeSchedule()
    }
}
