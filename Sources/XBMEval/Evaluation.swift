import Collectives
import Foundation
import XBMData
import XBMKernels
import XBMModel

/// Embedding of dataset rows sharded over ranks, and retrieval evaluation (Docs/evaluation.md).
public enum Evaluation {
    /// Embeds `indices` of `dataset` with `network` in inference mode. Rank r embeds the r-th
    /// contiguous share (shares padded to equal size), the shares are allgathered, and every
    /// rank returns all n embeddings, (n, d), in the order of `indices`.
    public static func embed(indices: [Int], dataset: Dataset, network: EmbeddingNetwork,
                             parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>,
                             comm: Communicator) throws -> FlatBuffer<Float> {
        let n = indices.count, d = network.embeddingSize, chunk = network.maxBatch
        let share = (n + comm.size - 1) / comm.size
        let mine = FlatBuffer<Float>(count: max(share, 1) * d)
        let input = FlatBuffer<Float>(count: chunk * dataset.sampleSize)
        var rows = [Int32](repeating: 0, count: chunk)
        let begin = min(comm.rank * share, n), end = min(begin + share, n)
        var start = begin
        while start < end {
            let count = min(chunk, end - start)
            for i in 0..<count { rows[i] = Int32(indices[start + i]) }
            rows.withUnsafeBufferPointer { all in
                dataset.fill(indices: UnsafeBufferPointer(rebasing: all[0..<count]), shifts: nil, into: input.pointer)
            }
            let output = try network.forward(input: input.pointer, count: count, parameters: parameters,
                                             state: state, mode: .inference)
            (mine.pointer + (start - begin) * d).update(from: output, count: count * d)
            start += count
        }
        let gathered = FlatBuffer<Float>(count: max(share, 1) * d * comm.size)
        try comm.allgather(UnsafeBufferPointer(start: mine.pointer, count: max(share, 1) * d), into: gathered.buffer)
        // Rank shares are contiguous in `indices` order, so the first n rows are the answer.
        let result = FlatBuffer<Float>(count: n * d)
        result.pointer.update(from: gathered.pointer, count: n * d)
        return result
    }

    /// Embeds the dataset's evaluation split: with query (2) and gallery (3) splits present
    /// those, otherwise the test split (1) as both, each query left out of its own neighbours.
    /// Every rank returns all of it.
    public static func embedSplit(dataset: Dataset, network: EmbeddingNetwork, parameters: UnsafePointer<Float>,
                                  state: UnsafeMutablePointer<Float>, comm: Communicator) throws -> EmbeddedSplit {
        let separate = dataset.split.contains(2) && dataset.split.contains(3)
        let queryIndices = separate ? dataset.split.indices.filter { dataset.split[$0] == 2 } : dataset.indices(.test)
        let galleryIndices = separate ? dataset.split.indices.filter { dataset.split[$0] == 3 } : queryIndices
        guard !queryIndices.isEmpty, !galleryIndices.isEmpty else {
            throw EvaluationError.noEvaluationSplit(dataset.directory.path)
        }
        let queries = try embed(indices: queryIndices, dataset: dataset, network: network,
                                parameters: parameters, state: state, comm: comm)
        let gallery = separate
            ? try embed(indices: galleryIndices, dataset: dataset, network: network,
                        parameters: parameters, state: state, comm: comm)
            : queries
        return EmbeddedSplit(queryIndices: queryIndices, galleryIndices: galleryIndices,
                             queryLabels: queryIndices.map { dataset.labels[$0] }, galleryLabels: galleryIndices.map { dataset.labels[$0] },
                             queries: queries, gallery: gallery, dimension: network.embeddingSize, sameSet: !separate)
    }

    /// Recall@K, MAP@R and R-precision of an embedded split. Queries are divided among the
    /// ranks and the metric sums allreduced, so every rank returns the same metrics.
    public static func retrieval(_ split: EmbeddedSplit, ks: [Int], comm: Communicator) throws -> RetrievalMetrics {
        let count = split.queryIndices.count
        let share = (count + comm.size - 1) / comm.size
        let lower = min(comm.rank * share, count)
        var accumulator = Retrieval.evaluate(
            queries: split.queries.pointer, queryLabels: split.queryLabels,
            gallery: split.gallery.pointer, galleryLabels: split.galleryLabels,
            dimension: split.dimension, sameSet: split.sameSet, ks: ks.sorted(), queryRange: lower..<min(lower + share, count))
        try accumulator.allreduce(over: comm)
        return accumulator.metrics
    }

    /// The retrieval metrics of the dataset's evaluation split (`embedSplit`, `retrieval`) and,
    /// with a `clusteringSeed`, NMI and AMI of k-means on its query embeddings
    /// (`ClusteringMetrics.measure`). Every rank returns the same metrics.
    public static func retrieval(dataset: Dataset, network: EmbeddingNetwork,
                                 parameters: UnsafePointer<Float>, state: UnsafeMutablePointer<Float>,
                                 ks: [Int], clusteringSeed: UInt64? = nil, comm: Communicator) throws -> RetrievalMetrics {
        let split = try embedSplit(dataset: dataset, network: network, parameters: parameters, state: state, comm: comm)
        var metrics = try retrieval(split, ks: ks, comm: comm)
        if let clusteringSeed {
            metrics.clustering = try ClusteringMetrics.measure(embeddings: split.queries.pointer, labels: split.queryLabels,
                                                               dimension: split.dimension, seed: clusteringSeed, comm: comm)
        }
        return metrics
    }
}

/// A dataset's evaluation split, embedded by `Evaluation.embedSplit`.
public struct EmbeddedSplit {
    /// The dataset rows of the queries and of the gallery (the same rows when `sameSet`).
    public let queryIndices: [Int]
    public let galleryIndices: [Int]
    public let queryLabels: [Int32]
    public let galleryLabels: [Int32]
    /// (Q, d) and (G, d), row major; one buffer when `sameSet`.
    public let queries: FlatBuffer<Float>
    public let gallery: FlatBuffer<Float>
    /// d.
    public let dimension: Int
    /// Query set = gallery set (the test split): a query is not its own neighbour.
    public let sameSet: Bool
}

public enum EvaluationError: SameOnEveryRankError, Equatable {
    case noEvaluationSplit(String)
    /// The retrieval picture of a dataset of feature vectors.
    case noImagesToShow(String)
    /// No query qualified for the retrieval picture (with `failuresOnly`: every top-1 is right).
    case nothingToShow(failuresOnly: Bool)

    public var description: String {
        switch self {
        case .noEvaluationSplit(let path):
            return "dataset \(path) has no evaluation samples: split.npy needs 1 (test) or both 2 (query) and 3 (gallery)"
        case .noImagesToShow(let path):
            return "dataset \(path) holds feature vectors, not images, so there is no picture to draw: "
                + "drop --show (the metrics need no images), or evaluate on the image dataset the features came from"
        case .nothingToShow(let failuresOnly):
            return failuresOnly
                ? "no query to show with --show-failures: every query's nearest neighbour is of its own class"
                : "no query to show: no query has another item of its class in the gallery"
        }
    }
}
