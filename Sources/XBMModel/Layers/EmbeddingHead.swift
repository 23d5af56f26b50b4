import XBMKernels
// The end of every network: linear (F → d, with bias) then L2 normalisation.
// Letters: n samples (≤ maxBatch), F features in, d embedding size.

/// Linear projection to the embedding size followed by L2 normalisation, (n, F) → (n, d)
/// unit rows, with its own activations (allocated once for `maxBatch` samples).
///
///     p = x Wᵀ + b,   e = p / ‖p‖
///     de → dp = (I − e eᵀ) de / ‖p‖ → dW += dpᵀ x, db += Σ dp, dx = dp W
final class EmbeddingHead {
    let featureSize: Int     // F
    let embeddingSize: Int   // d
    private let projected: FlatBuffer<Float>          // (n, d) p
    private let embeddings: FlatBuffer<Float>         // (n, d) e, returned by forward
    private let norms: FlatBuffer<Float>              // (n) ‖p‖
    private let projectedGradient: FlatBuffer<Float>  // (n, d) dp

    init(featureSize: Int, embeddingSize: Int, maxBatch: Int) {
        self.featureSize = featureSize
        self.embeddingSize = embeddingSize
        projected = FlatBuffer(count: maxBatch * embeddingSize)
        embeddings = FlatBuffer(count: maxBatch * embeddingSize)
        norms = FlatBuffer(count: maxBatch)
        projectedGradient = FlatBuffer(count: maxBatch * embeddingSize)
    }

    /// (n, F) features → (n, d) unit rows in the head's storage, valid until the next call.
    func forward(features: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                 count n: Int) -> UnsafePointer<Float> {
        linearForward(output: projected.pointer, input: features, weight: weight, bias: bias,
                      count: n, inputSize: featureSize, outputSize: embeddingSize)
        l2NormalizeForward(output: embeddings.pointer, norms: norms.pointer, input: projected.pointer,
                           count: n, dimension: embeddingSize)
        return UnsafePointer(embeddings.pointer)
    }

    /// Backward of the last forward: adds dW and db (per chunk of samples with several
    /// `chunks`), and writes dFeatures (n, F).
    func backward(featuresGradient: UnsafeMutablePointer<Float>, weightGradient: UnsafeMutablePointer<Float>,
                  biasGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                  features: UnsafePointer<Float>, weight: UnsafePointer<Float>, count n: Int,
                  chunks: GradientChunks = .whole) {
        l2NormalizeBackward(inputGradient: projectedGradient.pointer, outputGradient: outputGradient,
                            output: embeddings.pointer, norms: norms.pointer, count: n, dimension: embeddingSize)
        linearBackward(inputGradient: featuresGradient, weightGradient: weightGradient, biasGradient: biasGradient,
                       outputGradient: projectedGradient.pointer, input: features, weight: weight,
                       count: n, inputSize: featureSize, outputSize: embeddingSize, chunks: chunks)
    }
}
