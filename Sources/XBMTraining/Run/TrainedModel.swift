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

    /// The dataset's evaluation split, embedded (sharded over ranks, whole on every rank).
    public func embedSplit() throws -> EmbeddedSplit {
        try Evaluation.embedSplit(dataset: dataset, network: network, parameters: parameters.pointer, state: state.pointer, comm: comm)
    }

    /// Retrieval metrics at `ks`, or when nil at the run's --recall-k, else the dataset's
    /// meta.json `recall_k`, else the default cut-offs; with a `clusteringSeed`, NMI and AMI too.
    public func evaluate(_ split: EmbeddedSplit, ks: [Int]?, clusteringSeed: UInt64?) throws -> RetrievalMetrics {
        var metrics = try Evaluation.retrieval(split, ks: ks ?? config.evaluation.recallCutoffs(for: dataset), comm: comm)
        if let clusteringSeed {
            metrics.clustering = try ClusteringMetrics.measure(embeddings: split.queries.pointer, labels: split.queryLabels,
                                                               dimension: split.dimension, seed: clusteringSeed, comm: comm)
        }
        return metrics
    }

    /// Retrieval metrics of the evaluation split (`embedSplit`, then `evaluate`).
    public func evaluate(ks: [Int]?, clusteringSeed: UInt64? = nil) throws -> RetrievalMetrics {
        try evaluate(embedSplit(), ks: ks, clusteringSeed: clusteringSeed)
    }

    /// The retrieval picture of `queries` queries of `split` with their `neighbours` nearest
    /// gallery items (`Retrieval.examples`, `RetrievalPicture`), written by rank 0 to `url` as
    /// PNG. Returns the queries drawn (fewer than asked when fewer qualify).
    public func writeRetrievalPicture(_ split: EmbeddedSplit, to url: URL, queries: Int, neighbours: Int, seed: UInt64,
                                      failuresOnly: Bool) throws -> Int {
        try RetrievalPicture.requireImages(dataset)
        var drawn = [Int32(0)]
        if comm.rank == 0 {
            let examples = Retrieval.examples(of: split, count: queries, neighbours: neighbours, seed: seed, failuresOnly: failuresOnly)
            if !examples.isEmpty {
                let picture = try RetrievalPicture(examples: examples, dataset: dataset)
                do { try picture.render(dataset: dataset).write(to: url) } catch {
                    throw OutputFileError(path: url.path, reason: error.localizedDescription)
                }
            }
            drawn[0] = Int32(examples.count)
        }
        try comm.broadcast(&drawn, root: 0)
        guard drawn[0] > 0 else { throw EvaluationError.nothingToShow(failuresOnly: failuresOnly) }
        return Int(drawn[0])
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

/// A file a command was asked to write and could not (rank 0 writes, so it ends the job
/// through the launcher's abort path).
public struct OutputFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var reason: String

    public var description: String {
        "cannot write \(path) (\(reason)); check that its directory exists and is writable"
    }
}
