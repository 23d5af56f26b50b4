import XBMKernels
// Docs/performance.md target: exact Recall@K on 50,000 × 128 within 2× the time of its matrix products.

/// Times `Retrieval.evaluate` against the bare matrix products it performs.
public enum RetrievalBenchmark {
    /// Builds `count` random unit vectors of size `dimension` in `classes` classes (labels
    /// i mod classes), evaluates query set = gallery set with the default Ks, then repeats
    /// just the blocked products S = Q_block · Gᵀ into the same workspace.
    /// Uses the BLAS thread count already set in the process.
    /// - Returns: wall seconds of the whole evaluation and of the products alone, and the
    ///   metrics (near chance for random data; returned so the work cannot be skipped).
    public static func run(count: Int, dimension: Int, classes: Int, seed: UInt64 = 1,
                           blockSize: Int = Retrieval.defaultBlockSize)
        -> (totalSeconds: Double, gemmSeconds: Double, metrics: RetrievalMetrics) {
        precondition(count >= 2 && dimension >= 1 && classes >= 1,
                     "retrieval benchmark needs count ≥ 2, dimension ≥ 1, classes ≥ 1; got \(count), \(dimension), \(classes)")
        var random = RandomSource(seed: seed)
        let embeddings = FlatBuffer<Float>(count: count * dimension)    // (count, dimension)
        for row in 0..<count {
            var norm = 0.0
            for j in 0..<dimension {
                let value = random.nextNormal()
                embeddings[row * dimension + j] = Float(value)
                norm += value * value
            }
            let scale = Float(1 / max(norm.squareRoot(), 1e-12))
            for j in 0..<dimension { embeddings[row * dimension + j] *= scale }
        }
        let labels = (0..<count).map { Int32($0 % classes) }

        let clock = ContinuousClock()
        var accumulator = RetrievalAccumulator(ks: Retrieval.defaultKs)
        let total = clock.measure {
            accumulator = Retrieval.evaluate(queries: embeddings.pointer, queryLabels: labels,
                                             gallery: embeddings.pointer, galleryLabels: labels,
                                             dimension: dimension, sameSet: true, blockSize: blockSize)
        }
        let block = min(blockSize, count)
        let scores = FlatBuffer<Float>(count: block * count)
        let products = clock.measure {
            var start = 0
            while start < count {
                let rows = min(block, count - start)
                gemm(.none, .transposed, m: rows, n: count, k: dimension,
                     a: embeddings.pointer + start * dimension, lda: dimension,
                     b: embeddings.pointer, ldb: dimension, c: scores.pointer, ldc: count)
                start += rows
            }
        }
        return (seconds(total), seconds(products), accumulator.metrics)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
