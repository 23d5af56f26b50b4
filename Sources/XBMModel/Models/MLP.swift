import XBMKernels
// mlp (Docs/numerics.md): linear(D → h) – BN1d – ReLU – linear(h → d, bias) – L2 normalisation.
// The first linear has no bias: the batch norm after it subtracts the batch mean, which
// cancels any bias exactly, so its gradient would be rounding noise that Adam's
// normalisation would turn into full-size steps (as the conv layers of glyphnet, and
// PyTorch practice for conv–BN, do without one).
// Letters: n samples (≤ maxBatch), D input features, h hidden units, d embedding size.

/// The embedding network for feature vectors.
public final class MLP: EmbeddingNetwork {
    public let parameterLayout: ParameterLayout
    public let stateLayout: ParameterLayout
    public let inputShape: [Int]
    public let embeddingSize: Int
    public let maxBatch: Int
    public var headParameterNames: [String] { ["fc2.weight", "fc2.bias"] }
    public let batchNorm: BatchNormSync
    public let hiddenSize: Int
    let inputSize: Int

    private let fc1Weight: Int, bnScale: Int, bnShift: Int, fc2Weight: Int, fc2Bias: Int
    private let runningMean: Int, runningVariance: Int

    private let input: FlatBuffer<Float>       // (n, D) copy: the caller's input may be gone at backward
    private let hidden: FlatBuffer<Float>      // (n, h) fc1 output = BN input
    private let activated: FlatBuffer<Float>   // (n, h) ReLU(BN(hidden)), in place
    private let head: EmbeddingHead            // fc2 (h → d) and L2 normalisation
    private let hiddenGradient: FlatBuffer<Float>
    private let activatedGradient: FlatBuffer<Float>
    private let saved: BatchNormSaved
    private var lastCount = 0

    public init(inputSize: Int, hiddenSize: Int = 512, embeddingSize: Int, maxBatch: Int, batchNorm: BatchNormSync) {
        precondition(inputSize >= 1 && hiddenSize >= 1 && embeddingSize >= 1 && maxBatch >= 1,
                     "MLP sizes must be positive: input \(inputSize), hidden \(hiddenSize), embedding \(embeddingSize), maxBatch \(maxBatch)")
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.embeddingSize = embeddingSize
        self.maxBatch = maxBatch
        self.batchNorm = batchNorm
        inputShape = [inputSize]
        var parameters = ParameterLayout(), state = ParameterLayout()
        fc1Weight = parameters.add("fc1.weight", shape: [hiddenSize, inputSize], decays: true)
        bnScale = parameters.add("bn1.scale", shape: [hiddenSize], decays: false)
        bnShift = parameters.add("bn1.shift", shape: [hiddenSize], decays: false)
        fc2Weight = parameters.add("fc2.weight", shape: [embeddingSize, hiddenSize], decays: true)
        fc2Bias = parameters.add("fc2.bias", shape: [embeddingSize], decays: false)
        runningMean = state.add("bn1.runningMean", shape: [hiddenSize], decays: false)
        runningVariance = state.add("bn1.runningVariance", shape: [hiddenSize], decays: false)
        parameterLayout = parameters
        stateLayout = state
        input = FlatBuffer(count: maxBatch * inputSize)
        hidden = FlatBuffer(count: maxBatch * hiddenSize)
        activated = FlatBuffer(count: maxBatch * hiddenSize)
        hiddenGradient = FlatBuffer(count: maxBatch * hiddenSize)
        activatedGradient = FlatBuffer(count: maxBatch * hiddenSize)
        head = EmbeddingHead(featureSize: hiddenSize, embeddingSize: embeddingSize, maxBatch: maxBatch)
        saved = BatchNormSaved(channels: hiddenSize, name: "bn1", chunks: batchNorm.chunks)
    }

    public func initialize(parameters: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>,
                           random: inout RandomSource) {
        initializeLikePyTorch(layout: parameterLayout, parameters: parameters, random: &random)
        initializeBatchNormState(layout: stateLayout, state: state)
    }

    public func forward(input source: UnsafePointer<Float>, count n: Int, parameters: UnsafePointer<Float>,
                        state: UnsafeMutablePointer<Float>, mode: ForwardMode) throws -> UnsafePointer<Float> {
        precondition(n >= 1 && n <= maxBatch, "MLP.forward: count \(n) outside 1...\(maxBatch)")
        let h = hiddenSize
        input.pointer.update(from: source, count: n * inputSize)
        linearForward(output: hidden.pointer, input: input.pointer, weight: parameters + fc1Weight,
                      bias: nil, count: n, inputSize: inputSize, outputSize: h)
        try saved.forward(mode: mode, output: activated.pointer, input: hidden.pointer,
                          scale: parameters + bnScale, shift: parameters + bnShift,
                          runningMean: state + runningMean, runningVariance: state + runningVariance,
                          rows: n, relu: true, sync: batchNorm)
        let embeddings = head.forward(features: activated.pointer, weight: parameters + fc2Weight,
                                      bias: parameters + fc2Bias, count: n)
        lastCount = mode == .training ? n : 0
        return embeddings
    }

    public func backward(outputGradient: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>, gradientsFinal: ((_ offset: Int) throws -> Void)?) throws {
        let n = lastCount
        precondition(n > 0, "MLP.backward needs a preceding .training forward")
        let h = hiddenSize, chunks = gradientChunks(batchNorm: batchNorm)
        head.backward(featuresGradient: activatedGradient.pointer, weightGradient: gradients + fc2Weight,
                      biasGradient: gradients + fc2Bias, outputGradient: outputGradient,
                      features: activated.pointer, weight: parameters + fc2Weight, count: n, chunks: chunks)
        try gradientsFinal?(fc2Weight)
        reluBackward(inputGradient: activatedGradient.pointer, outputGradient: activatedGradient.pointer,
                     output: activated.pointer, count: n * h)
        try batchNormBackward(
            inputGradient: hiddenGradient.pointer, scaleGradient: gradients + bnScale, shiftGradient: gradients + bnShift,
            sums: saved.sums.pointer, coefficients: saved.backwardCoefficients,
            outputGradient: activatedGradient.pointer, input: hidden.pointer, scale: parameters + bnScale,
            mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer,
            globalCount: saved.globalCount, rows: n, channels: h, sync: batchNorm, gradientChunks: chunks)
        linearBackward(inputGradient: nil, weightGradient: gradients + fc1Weight, biasGradient: nil,
                       outputGradient: hiddenGradient.pointer, input: input.pointer, weight: parameters + fc1Weight,
                       count: n, inputSize: inputSize, outputSize: h, chunks: chunks)
        try gradientsFinal?(fc1Weight)
    }

    /// The naive Double forward in training mode (batch statistics) that the gradient tests
    /// differentiate by finite differences: (n, D) → (n, d) unit rows.
    public func referenceForward(input x: [Double], count n: Int, parameters p: [Double]) -> [Double] {
        func slice(_ offset: Int, _ count: Int) -> [Double] { Array(p[offset..<offset + count]) }
        let h = hiddenSize, d = embeddingSize
        let hidden = ReferenceLayers.linear(x, weight: slice(fc1Weight, h * inputSize), bias: [Double](repeating: 0, count: h),
                                            count: n, inputSize: inputSize, outputSize: h)
        let normalized = ReferenceLayers.batchNorm(hidden, scale: slice(bnScale, h), shift: slice(bnShift, h),
                                                   rows: n, channels: h).output
        let projected = ReferenceLayers.linear(ReferenceLayers.relu(normalized), weight: slice(fc2Weight, d * h),
                                               bias: slice(fc2Bias, d), count: n, inputSize: h, outputSize: d)
        return ReferenceLayers.l2Normalize(projected, count: n, dimension: d)
    }
}
