import Collectives
import Foundation
import XBMKernels

/// Times the clustering metrics (`ClusteringMetrics.measure`: k-means, then NMI and AMI) on
/// embeddings shaped like a trained model's (Docs/evaluation.md, Clustering).
public enum ClusteringBenchmark {
    public struct Timing: Sendable {
        /// k-means++ seeding and one assignment step (k-means stopped after one iteration).
        public var seedingSeconds: Double
        /// The whole measurement: k-means to convergence, then NMI and AMI.
        public var totalSeconds: Double
        public var metrics: ClusteringMetrics

        /// One JSON line for `xbm-dist bench clustering`.
        public func jsonLine(count: Int, dimension: Int) -> String {
            let perIteration = (totalSeconds - seedingSeconds) / Double(max(1, metrics.iterations - 1))
            return String(format: "{\"count\": %d, \"dim\": %d, \"k\": %d, \"seeding_seconds\": %.3f, \"iterations\": %d, "
                          + "\"seconds_per_iteration\": %.3f, \"seconds\": %.3f, \"NMI\": %.2f, \"AMI\": %.2f}",
                          count, dimension, metrics.clusters, seedingSeconds, metrics.iterations, perIteration,
                          totalSeconds, metrics.nmi, metrics.ami)
        }
    }

    /// `count` unit vectors of size `dimension` in `classes` classes (labels i mod classes),
    /// each its class' random unit centre plus Gaussian noise of σ = `noise` per coordinate,
    /// normalised: two items of a class are at cosine ≈ 1 / (1 + dimension · noise²) (0.44 for
    /// the defaults), of different classes ≈ 0. Every rank makes the same embeddings.
    public static func run(count: Int, dimension: Int, classes: Int, noise: Double = 0.1, seed: UInt64 = 1,
                           comm: Communicator) throws -> Timing {
        precondition(count >= classes && dimension >= 1 && classes >= 1,
                     "clustering benchmark needs count ≥ classes ≥ 1 and dimension ≥ 1; got \(count), \(classes), \(dimension)")
        var random = RandomSource(seed: seed)
        func unit(_ values: [Double]) -> [Double] {
            let norm = max(values.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return values.map { $0 / norm }
        }
        let centres = (0..<classes).map { _ in unit((0..<dimension).map { _ in random.nextNormal() }) }
        let embeddings = FlatBuffer<Float>(count: count * dimension)    // (count, dimension)
        for row in 0..<count {
            let point = unit(centres[row % classes].map { $0 + noise * random.nextNormal() })
            for j in 0..<dimension { embeddings[row * dimension + j] = Float(point[j]) }
        }
        let labels = (0..<count).map { Int32($0 % classes) }

        let clock = ContinuousClock()
        let seeding = try clock.measure {
            _ = try KMeans.cluster(points: embeddings.pointer, count: count, dimension: dimension, clusters: classes,
                                   seed: seed, maxIterations: 1, comm: comm)
        }
        var metrics: ClusteringMetrics?
        let total = try clock.measure {
            metrics = try ClusteringMetrics.measure(embeddings: embeddings.pointer, labels: labels, dimension: dimension,
                                                    seed: seed, comm: comm)
        }
        return Timing(seedingSeconds: seconds(seeding), totalSeconds: seconds(total), metrics: metrics!)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
