import Collectives
import XBMKernels

/// NMI and AMI of k-means on the embeddings against the classes (Docs/evaluation.md,
/// Clustering): k = the number of classes among the items, k-means++ seeding from `seed`.
public struct ClusteringMetrics: Codable, Sendable, Equatable {
    /// Normalised mutual information, in percent (`MutualInformation.normalized`).
    public var nmi: Double
    /// Adjusted mutual information, in percent (`MutualInformation.adjusted`).
    public var ami: Double
    /// k, the classes among the clustered items.
    public var clusters: Int
    /// k-means' assignment steps, and whether its centroids settled within them.
    public var iterations: Int
    public var converged: Bool

    public init(nmi: Double, ami: Double, clusters: Int, iterations: Int, converged: Bool) {
        self.nmi = nmi
        self.ami = ami
        self.clusters = clusters
        self.iterations = iterations
        self.converged = converged
    }

    /// Clusters the n rows of `embeddings` (n, d) into as many groups as `labels` has classes
    /// and scores the clusters against the labels. Every rank must call it with the same
    /// embeddings; each does a share of k-means (`KMeans.cluster`) and all return the same.
    public static func measure(embeddings: UnsafePointer<Float>, labels: [Int32], dimension d: Int,
                               seed: UInt64, comm: Communicator) throws -> ClusteringMetrics {
        let k = Set(labels).count
        let result = try KMeans.cluster(points: embeddings, count: labels.count, dimension: d, clusters: k,
                                        seed: seed, comm: comm)
        let scores = MutualInformation(classes: labels, clusters: result.assignments)
        return ClusteringMetrics(nmi: 100 * scores.normalized, ami: 100 * scores.adjusted, clusters: k,
                                 iterations: result.iterations, converged: result.converged)
    }

    /// One line under the metrics table.
    public var summary: String {
        "clustering: k-means with k = \(clusters) (the classes), \(iterations) iterations"
            + (converged ? "" : ", stopped before converging")
    }
}
