import XBMKernels
// glyphnet (Docs/numerics.md), the same network as Launch/reference/torch_glyphnet.py:
//   4 blocks  conv3×3(Ci→Co, pad 1, no bias) – BN – ReLU  with Co = 32, 64, 128, 256,
//   2×2 max pool after the first three, global average pool after the last,
//   linear(256 → d, bias), L2 normalisation.
// Letters: n samples (≤ maxBatch), H×W input size (multiples of 8), d embedding size;
// block b works at H_b×W_b = (H/2^b)×(W/2^b). Activations are channel-last (n, H_b, W_b, C).
// The input has C channels (1 for glyphs, 3 for colour): with C = 1 the protocol's
// (n, 1, H, W) input is already channel-last and the first block convolves it directly
// (ConvolutionSingleChannel.swift); with C > 1 it is copied to (n, H, W, C) first
// (ChannelLayout.swift) and the first block takes the im2col path with K = 9·C. Blocks 2–4
// convolve by Winograd F(2×2, 3×3) (Winograd.swift) where their sizes are even, im2col
// otherwise; the three pooled blocks run BN, ReLU and the pool as one fused pair
// (BatchNormPool.swift), so only the last block stores its activation.

/// The convolutional embedding network for C×H×W images (glyphs, C = 1; colour, C = 3),
/// values in [0, 1].
public final class GlyphNet: EmbeddingNetwork {
    public static let blockChannels = [32, 64, 128, 256]

    public let parameterLayout: ParameterLayout
    public let stateLayout: ParameterLayout
    public let inputShape: [Int]
    public let embeddingSize: Int
    public let maxBatch: Int
    public var headParameterNames: [String] { ["fc.weight", "fc.bias"] }
    public let batchNorm: BatchNormSync

    let height: Int, width: Int, inputChannels: Int
    private let blocks: [Block]
    private let featureSize: Int
    private let fcWeight: Int, fcBias: Int

    // Activations (maxBatch rows) and the gradients of the activations.
    private let channelLastInput: FlatBuffer<Float>?  // (n, H, W, C) copy of a C > 1 input
    private let features: FlatBuffer<Float>    // (n, 256) after the global average pool
    private let head: EmbeddingHead            // linear 256 → d, L2 normalisation
    private let featuresGradient: FlatBuffer<Float>
    private var lastCount = 0

    /// One conv–BN–ReLU(–pool) block with its buffers.
    private final class Block {
        let inputChannels: Int, outputChannels: Int, height: Int, width: Int, pools: Bool
        let convWeight: Int, bnScale: Int, bnShift: Int, runningMean: Int, runningVariance: Int
        let convolved: FlatBuffer<Float>       // (n, H_b, W_b, Co) conv output = BN input
        // The last block keeps its activation ReLU(BN(conv)) and that gradient; the pooled blocks
        // go from the conv output straight to the pooled output and back (BatchNormPool.swift).
        let activated: FlatBuffer<Float>?      // (n, H_b, W_b, Co), the last block only
        let pooled: FlatBuffer<Float>?         // (n, H_b/2, W_b/2, Co)
        let columns: FlatBuffer<Float>         // (n·H_b·W_b, 9·Ci) im2col kept for backward;
                                               // for the one-channel first block: (n, H+2, W+2) padded input;
                                               // empty where the Winograd workspace serves instead
        let winograd: WinogradWorkspace?       // F(2×2, 3×3) buffers of the wide blocks (Winograd.swift)
        let transposedWeight: FlatBuffer<Float> // (9, Co) workspace of the direct first-layer conv
        let convolvedGradient: FlatBuffer<Float>
        let activatedGradient: FlatBuffer<Float>?
        let pooledGradient: FlatBuffer<Float>? // = the next block's input gradient
        let saved: BatchNormSaved

        init(index: Int, inputChannels: Int, outputChannels: Int, height: Int, width: Int, pools: Bool, winograd: Bool,
             maxBatch: Int, chunks: Int, parameters: inout ParameterLayout, state: inout ParameterLayout) {
            self.inputChannels = inputChannels
            self.outputChannels = outputChannels
            self.height = height
            self.width = width
            self.pools = pools
            let name = "\(index + 1)"
            convWeight = parameters.add("conv\(name).weight", shape: [outputChannels, 3, 3, inputChannels], decays: true)
            bnScale = parameters.add("bn\(name).scale", shape: [outputChannels], decays: false)
            bnShift = parameters.add("bn\(name).shift", shape: [outputChannels], decays: false)
            runningMean = state.add("bn\(name).runningMean", shape: [outputChannels], decays: false)
            runningVariance = state.add("bn\(name).runningVariance", shape: [outputChannels], decays: false)
            let full = maxBatch * height * width * outputChannels
            convolved = FlatBuffer(count: full)
            activated = pools ? nil : FlatBuffer(count: full)
            convolvedGradient = FlatBuffer(count: full)
            self.winograd = winograd && inputChannels > 1 && WinogradWorkspace.applies(inputChannels: inputChannels, height: height, width: width)
                ? WinogradWorkspace(inputChannels: inputChannels, outputChannels: outputChannels,
                                    height: height, width: width, maxBatch: maxBatch)
                : nil
            columns = FlatBuffer(count: inputChannels == 1 ? maxBatch * (height + 2) * (width + 2)
                                     : self.winograd != nil ? 0 : maxBatch * height * width * 9 * inputChannels)
            transposedWeight = FlatBuffer(count: inputChannels == 1 ? 9 * outputChannels : 0)
            activatedGradient = pools ? nil : FlatBuffer(count: full)
            pooled = pools ? FlatBuffer(count: full / 4) : nil
            pooledGradient = pools ? FlatBuffer(count: full / 4) : nil
            saved = BatchNormSaved(channels: outputChannels, name: "bn\(name)", chunks: chunks)
        }

        var output: FlatBuffer<Float> { pooled ?? activated! }
    }

    /// - Parameters:
    ///   - embeddingSize: d.
    ///   - maxBatch: the largest batch `forward` accepts; every buffer is sized for it.
    ///   - inputChannels: C of the (C, H, W) input: 1 for glyphs, 3 for colour images.
    ///   - height, width: input size, positive multiples of 8 (32×32 for hanzi).
    ///   - channels: the four blocks' widths; other than the default only to make tests small.
    ///   - winograd: false keeps every wide block on im2col; tests compare the two.
    public init(embeddingSize: Int = 128, maxBatch: Int, batchNorm: BatchNormSync, inputChannels: Int = 1,
                height: Int = 32, width: Int = 32, channels blockWidths: [Int] = GlyphNet.blockChannels,
                winograd: Bool = true) {
        precondition(blockWidths.count == 4 && blockWidths.allSatisfy { $0 >= 1 },
                     "GlyphNet needs four positive block widths, got \(blockWidths)")
        precondition(embeddingSize >= 1, "GlyphNet embedding size must be positive, got \(embeddingSize)")
        precondition(maxBatch >= 1, "GlyphNet maxBatch must be positive, got \(maxBatch)")
        precondition(inputChannels >= 1, "GlyphNet needs at least one input channel, got \(inputChannels)")
        precondition(height >= 8 && width >= 8 && height % 8 == 0 && width % 8 == 0,
                     "GlyphNet input must be a multiple of 8 in each direction, got \(height)×\(width)")
        self.embeddingSize = embeddingSize
        self.maxBatch = maxBatch
        self.batchNorm = batchNorm
        self.height = height
        self.width = width
        self.inputChannels = inputChannels
        inputShape = [inputChannels, height, width]
        channelLastInput = inputChannels > 1 ? FlatBuffer(count: maxBatch * height * width * inputChannels) : nil
        var parameters = ParameterLayout(), state = ParameterLayout()
        var built: [Block] = []
        var channels = inputChannels
        for (index, outputChannels) in blockWidths.enumerated() {
            built.append(Block(index: index, inputChannels: channels, outputChannels: outputChannels,
                               height: height >> index, width: width >> index, pools: index < 3, winograd: winograd,
                               maxBatch: maxBatch, chunks: batchNorm.chunks, parameters: &parameters, state: &state))
            channels = outputChannels
        }
        blocks = built
        featureSize = channels
        fcWeight = parameters.add("fc.weight", shape: [embeddingSize, channels], decays: true)
        fcBias = parameters.add("fc.bias", shape: [embeddingSize], decays: false)
        parameterLayout = parameters
        stateLayout = state
        features = FlatBuffer(count: maxBatch * channels)
        featuresGradient = FlatBuffer(count: maxBatch * channels)
        head = EmbeddingHead(featureSize: featureSize, embeddingSize: embeddingSize, maxBatch: maxBatch)
    }

    public func initialize(parameters: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>,
                           random: inout RandomSource) {
        initializeLikePyTorch(layout: parameterLayout, parameters: parameters, random: &random)
        initializeBatchNormState(layout: stateLayout, state: state)
    }

    public func forward(input: UnsafePointer<Float>, count n: Int, parameters: UnsafePointer<Float>,
                        state: UnsafeMutablePointer<Float>, mode: ForwardMode) throws -> UnsafePointer<Float> {
        precondition(n >= 1 && n <= maxBatch, "GlyphNet.forward: count \(n) outside 1...\(maxBatch)")
        var blockInput = input
        if let channelLastInput {
            channelsFirstToLast(output: channelLastInput.pointer, input: input, count: n,
                                channels: inputChannels, height: height, width: width)
            blockInput = UnsafePointer(channelLastInput.pointer)
        }
        for block in blocks {
            let h = block.height, w = block.width, co = block.outputChannels
            let rows = n * h * w
            if block.inputChannels == 1 {
                // A padded copy: no bounds checks in the taps, and the backward still has the
                // input when the caller's is gone.
                padSingleChannel(padded: block.columns.pointer, input: blockInput, count: n, height: h, width: w)
                conv3x3SingleChannelForward(output: block.convolved.pointer, transposedWeight: block.transposedWeight.pointer,
                                            padded: block.columns.pointer, weight: parameters + block.convWeight,
                                            count: n, height: h, width: w, outputChannels: co)
            } else if let winograd = block.winograd {
                winogradForward(output: block.convolved.pointer, input: blockInput, weight: parameters + block.convWeight,
                                count: n, workspace: winograd)
            } else {
                conv3x3Forward(output: block.convolved.pointer, columns: block.columns.pointer, input: blockInput,
                               weight: parameters + block.convWeight, count: n, height: h, width: w,
                               inputChannels: block.inputChannels, outputChannels: co)
            }
            let saved = block.saved
            if let pooled = block.pooled {
                try saved.forwardPooled(mode: mode, pooled: pooled.pointer, input: block.convolved.pointer,
                                        scale: parameters + block.bnScale, shift: parameters + block.bnShift,
                                        runningMean: state + block.runningMean, runningVariance: state + block.runningVariance,
                                        count: n, height: h, width: w, sync: batchNorm)
            } else {
                try saved.forward(mode: mode, output: block.activated!.pointer, input: block.convolved.pointer,
                                  scale: parameters + block.bnScale, shift: parameters + block.bnShift,
                                  runningMean: state + block.runningMean, runningVariance: state + block.runningVariance,
                                  rows: rows, relu: true, sync: batchNorm)
            }
            blockInput = UnsafePointer(block.output.pointer)
        }
        let last = blocks[blocks.count - 1]
        globalAveragePoolForward(output: features.pointer, input: last.activated!.pointer,
                                 count: n, positions: last.height * last.width, channels: featureSize)
        let embeddings = head.forward(features: features.pointer, weight: parameters + fcWeight,
                                      bias: parameters + fcBias, count: n)
        lastCount = mode == .training ? n : 0
        return embeddings
    }

    public func backward(outputGradient: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>, gradientsFinal: ((_ offset: Int) throws -> Void)?) throws {
        let n = lastCount
        precondition(n > 0, "GlyphNet.backward needs a preceding .training forward")
        // Activation gradients are written by each kernel (a chain has no fan-out), so only
        // the parameter gradients accumulate and nothing needs zeroing here.
        let chunks = gradientChunks(batchNorm: batchNorm)
        head.backward(featuresGradient: featuresGradient.pointer, weightGradient: gradients + fcWeight,
                      biasGradient: gradients + fcBias, outputGradient: outputGradient,
                      features: features.pointer, weight: parameters + fcWeight, count: n, chunks: chunks)
        try gradientsFinal?(fcWeight)
        let last = blocks[blocks.count - 1]
        globalAveragePoolBackward(inputGradient: last.activatedGradient!.pointer, outputGradient: featuresGradient.pointer,
                                  count: n, positions: last.height * last.width, channels: featureSize)
        for index in stride(from: blocks.count - 1, through: 0, by: -1) {
            let block = blocks[index]
            let h = block.height, w = block.width, co = block.outputChannels, rows = n * h * w
            let saved = block.saved
            if let pooledGradient = block.pooledGradient {
                try batchNormReLUPoolBackward(
                    inputGradient: block.convolvedGradient.pointer, scaleGradient: gradients + block.bnScale,
                    shiftGradient: gradients + block.bnShift, pooledGradient: pooledGradient.pointer,
                    input: block.convolved.pointer, scale: parameters + block.bnScale, saved: saved,
                    count: n, height: h, width: w, sync: batchNorm, gradientChunks: chunks)
            } else {
                try batchNormBackward(
                    inputGradient: block.convolvedGradient.pointer, scaleGradient: gradients + block.bnScale,
                    shiftGradient: gradients + block.bnShift, sums: saved.sums.pointer, coefficients: saved.backwardCoefficients,
                    outputGradient: block.activatedGradient!.pointer, input: block.convolved.pointer,
                    scale: parameters + block.bnScale, mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer,
                    reluOutput: block.activated!.pointer, globalCount: saved.globalCount, rows: rows, channels: co, sync: batchNorm,
                    gradientChunks: chunks)
            }
            // Each block kept its im2col, Winograd-transformed input, or (the first block) padded input.
            let previous = index > 0 ? blocks[index - 1] : nil
            if block.inputChannels == 1 {
                assert(previous == nil, "only the first block reads one channel")
                conv3x3SingleChannelBackward(weightGradient: gradients + block.convWeight,
                                             outputGradient: block.convolvedGradient.pointer, padded: block.columns.pointer,
                                             count: n, height: h, width: w, outputChannels: co, chunks: chunks)
                try gradientsFinal?(block.convWeight)
                continue
            }
            if let winograd = block.winograd {
                winogradBackward(inputGradient: previous?.pooledGradient?.pointer, weightGradient: gradients + block.convWeight,
                                 outputGradient: block.convolvedGradient.pointer, count: n, workspace: winograd, chunks: chunks)
                try gradientsFinal?(block.convWeight)
                continue
            }
            conv3x3Backward(inputGradient: previous?.pooledGradient?.pointer, weightGradient: gradients + block.convWeight,
                            columns: block.columns.pointer, outputGradient: block.convolvedGradient.pointer,
                            input: nil, weight: parameters + block.convWeight,
                            count: n, height: h, width: w, inputChannels: block.inputChannels, outputChannels: co,
                            chunks: chunks)
            try gradientsFinal?(block.convWeight)
        }
    }

    /// The naive Double forward in training mode (batch statistics) that the gradient tests
    /// differentiate by finite differences: (n, C, H, W) → (n, d) unit rows.
    public func referenceForward(input: [Double], count n: Int, parameters p: [Double]) -> [Double] {
        func slice(_ offset: Int, _ count: Int) -> [Double] { Array(p[offset..<offset + count]) }
        var x = ReferenceLayers.channelsLast(input, count: n, channels: inputChannels, height: height, width: width)
        for block in blocks {
            let h = block.height, w = block.width, co = block.outputChannels
            x = ReferenceLayers.conv3x3(x, weight: slice(block.convWeight, co * 9 * block.inputChannels), count: n,
                                        height: h, width: w, inputChannels: block.inputChannels, outputChannels: co)
            x = ReferenceLayers.batchNorm(x, scale: slice(block.bnScale, co), shift: slice(block.bnShift, co),
                                          rows: n * h * w, channels: co).output
            x = ReferenceLayers.relu(x)
            if block.pools { x = ReferenceLayers.maxPool2x2(x, count: n, height: h, width: w, channels: co) }
        }
        let last = blocks[blocks.count - 1]
        x = ReferenceLayers.globalAveragePool(x, count: n, positions: last.height * last.width, channels: featureSize)
        x = ReferenceLayers.linear(x, weight: slice(fcWeight, embeddingSize * featureSize), bias: slice(fcBias, embeddingSize),
                                   count: n, inputSize: featureSize, outputSize: embeddingSize)
        return ReferenceLayers.l2Normalize(x, count: n, dimension: embeddingSize)
    }
}
