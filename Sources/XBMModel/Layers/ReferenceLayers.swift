// Naive Double-precision references for every layer: the direct loops the fast kernels are
// tested against, and the forward that finite differences differentiate. Same layouts as the
// fast kernels (channel-last activations, conv weight (Co, 3, 3, Ci)), none of their tricks.

public enum ReferenceLayers {
    /// (n, C, H, W) → (n, H, W, C): output[i, y, x, c] = input[i, c, y, x].
    public static func channelsLast(_ input: [Double], count n: Int, channels: Int, height: Int, width: Int) -> [Double] {
        var output = input
        for i in 0..<n { for c in 0..<channels { for y in 0..<height { for x in 0..<width {
            output[((i * height + y) * width + x) * channels + c] = input[((i * channels + c) * height + y) * width + x]
        } } } }
        return output
    }

    /// Direct 3×3 convolution, zero padding 1: (n, H, W, Ci) ⋆ (Co, 3, 3, Ci) → (n, H, W, Co).
    public static func conv3x3(_ input: [Double], weight: [Double], count n: Int, height: Int, width: Int,
                               inputChannels ci: Int, outputChannels co: Int) -> [Double] {
        var output = [Double](repeating: 0, count: n * height * width * co)
        for i in 0..<n { for y in 0..<height { for x in 0..<width { for o in 0..<co {
            var sum = 0.0
            for ky in 0..<3 { for kx in 0..<3 {
                let sy = y + ky - 1, sx = x + kx - 1
                guard sy >= 0, sy < height, sx >= 0, sx < width else { continue }
                for c in 0..<ci {
                    sum += weight[((o * 3 + ky) * 3 + kx) * ci + c] * input[((i * height + sy) * width + sx) * ci + c]
                }
            } }
            output[((i * height + y) * width + x) * co + o] = sum
        } } } }
        return output
    }

    /// Training-mode batch norm over rows (m, C): y = γ (x − μ)/√(σ² + eps) + β with the batch's
    /// mean and biased variance. Returns y, μ and the biased σ².
    public static func batchNorm(_ input: [Double], scale: [Double], shift: [Double], rows m: Int,
                                 channels: Int) -> (output: [Double], mean: [Double], variance: [Double]) {
        var mean = [Double](repeating: 0, count: channels), variance = mean
        for r in 0..<m { for c in 0..<channels { mean[c] += input[r * channels + c] / Double(m) } }
        for r in 0..<m { for c in 0..<channels {
            let centred = input[r * channels + c] - mean[c]
            variance[c] += centred * centred / Double(m)
        } }
        var output = input
        for r in 0..<m { for c in 0..<channels {
            let normalised = (input[r * channels + c] - mean[c]) / (variance[c] + Double(batchNormEpsilon)).squareRoot()
            output[r * channels + c] = scale[c] * normalised + shift[c]
        } }
        return (output, mean, variance)
    }

    public static func relu(_ input: [Double]) -> [Double] { input.map { max(0, $0) } }

    /// 2×2 max pooling, stride 2, over (n, H, W, C).
    public static func maxPool2x2(_ input: [Double], count n: Int, height: Int, width: Int, channels: Int) -> [Double] {
        let oh = height / 2, ow = width / 2
        var output = [Double](repeating: -.infinity, count: n * oh * ow * channels)
        for i in 0..<n { for y in 0..<height { for x in 0..<width { for c in 0..<channels {
            let o = ((i * oh + y / 2) * ow + x / 2) * channels + c
            output[o] = max(output[o], input[((i * height + y) * width + x) * channels + c])
        } } } }
        return output
    }

    /// Mean over the positions of (n, P, C) → (n, C).
    public static func globalAveragePool(_ input: [Double], count n: Int, positions: Int, channels: Int) -> [Double] {
        var output = [Double](repeating: 0, count: n * channels)
        for i in 0..<n { for p in 0..<positions { for c in 0..<channels {
            output[i * channels + c] += input[(i * positions + p) * channels + c] / Double(positions)
        } } }
        return output
    }

    /// (n, I) · (O, I)ᵀ + (O) → (n, O).
    public static func linear(_ input: [Double], weight: [Double], bias: [Double], count n: Int,
                              inputSize: Int, outputSize: Int) -> [Double] {
        var output = [Double](repeating: 0, count: n * outputSize)
        for i in 0..<n { for o in 0..<outputSize {
            var sum = bias[o]
            for j in 0..<inputSize { sum += weight[o * inputSize + j] * input[i * inputSize + j] }
            output[i * outputSize + o] = sum
        } }
        return output
    }

    /// Row-wise x / ‖x‖ over (n, d).
    public static func l2Normalize(_ input: [Double], count n: Int, dimension d: Int) -> [Double] {
        var output = input
        for i in 0..<n {
            var sum = 0.0
            for j in 0..<d { sum += input[i * d + j] * input[i * d + j] }
            let norm = max(sum.squareRoot(), Double(l2NormalizeEpsilon))
            for j in 0..<d { output[i * d + j] = input[i * d + j] / norm }
        }
        return output
    }
}
