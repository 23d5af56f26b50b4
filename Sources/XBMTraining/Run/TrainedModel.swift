import Collectives
import Foundation
import XBMData
import XBMEval
import XBMFormats
import XBMKernels
import XBMModel

/// A run's checkpoint loaded for inference: `xbm-dist eval` and `xbm-dist embed`.
public final class TrainedModel {
    public let config: TrainingConfig
    public let dataset: Dataset
    public let network: EmbeddingNetwork
    public let parameters: FlatBuffer<Float>
    public let state: FlatBuffer<Float>
    private let comm: Communicator

    /// Reads `runDirectory`'s checkpoint (rank 0 reads, every rank parses the broadcast
    /// bytes) and the dataset (`data`, or the one the run trained on).
    public static func load(runDirectory: String, data: String?, comm: Communicator) throws -> TrainedModel {
        let run = RunDirectory(path: runDirectory)
        let newest = try TrainingCheckpoint.readNewest(in: run, comm: comm)
        if let warning = newest.warning, comm.rank == 0 { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
        let checkpoint = newest.checkpoint
        var config = checkpoint.config
        if let data { config.model.data = data }
        let dataset = try Dataset.load(directory: URL(fileURLWithPath: config.model.data, isDirectory: true))
        let network = try config.model.makeNetwork(sampleShape: dataset.sampleShape, isImages: dataset.isImages,
                                                   maxBatch: config.evaluation.batch, batchNorm: .local)
        let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
        let state = FlatBuffer<Float>(count: network.stateLayout.count)
        try checkpoint.restoreModel(parameters: parameters, state: state,
                                    parameterLayout: network.parameterLayout, stateLayout: network.stateLayout)
        return TrainedModel(config: config, dataset: dataset, network: network, parameters: parameters,
                            state: state, comm: comm)
    }

    private init(config: TrainingConfig, dataset: Dataset, network: EmbeddingNetwork,
                 parameters: FlatBuffer<Float>, state: FlatBuffer<Float>, comm: Communicator) {
        self.config = config
        self.dataset = dataset
        self.network = network
        self.parameters = parameters
        self.state = state
        self.comm = comm
    }

    /// The network as the safetensors state dict of its PyTorch twin in python/xbm_models.py
    /// (Docs/export.md); rank 0 writes it.
    public func exportSafetensors(to url: URL) throws {
        guard comm.rank == 0 else { return }
        let kind = config.model.model.resolved(isImages: dataset.isImages)
        try TorchExport.safetensors(model: kind, network: network, parameters: parameters.pointer, state: state.pointer)
            .write(to: url)
    }

    /// Retrieval metrics at `ks`, or when nil at the run's --recall-k, else the dataset's
    /// meta.json `recall_k`, else the default cut-offs.
    public func evaluate(ks: [Int]?) throws -> RetrievalMetrics {
        try Evaluation.retrieval(dataset: dataset, network: network, parameters: parameters.pointer,
                                 state: state.pointer, ks: ks ?? config.evaluation.recallCutoffs(for: dataset), comm: comm)
    }

    /// Embeds the samples of `role` (sharded over ranks) and rank 0 writes them as float32
    /// (n, d) `.npy` in dataset order. Returns n.
    public func writeEmbeddings(role: Dataset.SplitRole, to url: URL) throws -> Int {
        let indices = dataset.indices(role)
        let embeddings = try Evaluation.embed(indices: indices, dataset: dataset, network: network,
                                              parameters: parameters.pointer, state: state.pointer, comm: comm)
        if comm.rank == 0 {
            try Npy.write(to: url, dtype: .float32, shape: [indices.count, config.model.dim],
                          payload: UnsafeRawBufferPointer(start: embeddings.pointer, count: embeddings.count * 4))
        }
        try comm.barrier()
        return indices.count
    }
}
