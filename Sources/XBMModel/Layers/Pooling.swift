import XBMKernels
// Pooling over channel-last activations. Letters: n samples, H×W input size, C channels.
// Backward kernels write (not add) the input gradient, every element of it. GlyphNet's
// pooled blocks run the fused batch norm – ReLU – pool of BatchNormPool.swift; the separate
// 2×2 max pool here is that pair's tested reference (it must match them bit for bit).

/// 2×2 max pooling, stride 2: output (n, H/2, W/2, C),
///   output[i, y, x, c] = max_{dy, dx ∈ {0,1}} input[i, 2y+dy, 2x+dx, c].
@inline(never)
func maxPool2x2Forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                       count n: Int, height: Int, width: Int, channels: Int) {
    assert(height % 2 == 0 && width % 2 == 0, "max pool needs even sizes, got \(height)×\(width)")
    let outHeight = height / 2, outWidth = width / 2, rowStride = width * channels
    parallelChunks(n * outHeight, minimumChunk: max(1, 8192 / rowStride)) { outputRows in
        for outputRow in outputRows {
            let i = outputRow / outHeight, y = outputRow % outHeight
            for x in 0..<outWidth {
                let a = input + ((i * height + 2 * y) * width + 2 * x) * channels
                let b = a + channels, c2 = a + rowStride, d = c2 + channels
                let out = output + ((i * outHeight + y) * outWidth + x) * channels
                var c = 0
                while c + vectorWidth <= channels {
                    let top = lanewiseMax(loadVector(a + c), loadVector(b + c))
                    let bottom = lanewiseMax(loadVector(c2 + c), loadVector(d + c))
                    storeVector(lanewiseMax(top, bottom), out + c)
                    c += vectorWidth
                }
                while c < channels { out[c] = max(max(a[c], b[c]), max(c2[c], d[c])); c += 1 }
            }
        }
    }
}

/// dInput[i, 2y+dy, 2x+dx, c] = dOutput[i, y, x, c] for the first of the four (in the order
/// (0,0), (0,1), (1,0), (1,1)) equal to the forward's maximum, 0 for the other three.
/// The winner is found again by comparing input and output, so nothing is saved.
/// `throughReLU`: the input is a ReLU output and the gradient is wanted at the ReLU's input,
/// so a window whose maximum is 0 (all four inputs clipped) passes no gradient — max-pool
/// backward and ReLU backward in one pass.
@inline(never)
func maxPool2x2Backward(inputGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                        input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                        count n: Int, height: Int, width: Int, channels: Int, throughReLU: Bool = false) {
    let outHeight = height / 2, outWidth = width / 2, rowStride = width * channels
    parallelChunks(n * outHeight, minimumChunk: max(1, 8192 / rowStride)) { outputRows in
        for outputRow in outputRows {
            let i = outputRow / outHeight, y = outputRow % outHeight
            for x in 0..<outWidth {
                let corner = ((i * height + 2 * y) * width + 2 * x) * channels
                let outIndex = ((i * outHeight + y) * outWidth + x) * channels
                var c = 0
                while c + vectorWidth <= channels {
                    let best = loadVector(output + outIndex + c), g = loadVector(outputGradient + outIndex + c)
                    var taken = throughReLU ? best .<= 0 : SIMDMask<SIMD16<Int32>>(repeating: false)
                    for k in 0..<4 {
                        let offset = (k >> 1) * rowStride + (k & 1) * channels
                        let wins = (loadVector(input + corner + offset + c) .== best) .& .!taken
                        taken = taken .| wins
                        storeVector(FloatVector.zero.replacing(with: g, where: wins), inputGradient + corner + offset + c)
                    }
                    c += vectorWidth
                }
                while c < channels {
                    var taken = throughReLU && output[outIndex + c] <= 0
                    for k in 0..<4 {
                        let offset = (k >> 1) * rowStride + (k & 1) * channels
                        let wins = !taken && input[corner + offset + c] == output[outIndex + c]
                        taken = taken || wins
                        inputGradient[corner + offset + c] = wins ? outputGradient[outIndex + c] : 0
                    }
                    c += 1
                }
            }
        }
    }
}

/// Global average pooling: output (n, C), output[i, c] = (1/HW) Σ_{y,x} input[i, y, x, c].
@inline(never)
func globalAveragePoolForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                              count n: Int, positions: Int, channels: Int) {
    let scale = 1 / Float(positions)
    for i in 0..<n {
        let out = output + i * channels
        out.update(repeating: 0, count: channels)
        for p in 0..<positions {
            let x = input + (i * positions + p) * channels
            for c in 0..<channels { out[c] += x[c] }
        }
        for c in 0..<channels { out[c] *= scale }
    }
}

/// dInput[i, y, x, c] = dOutput[i, c] / HW.
@inline(never)
func globalAveragePoolBackward(inputGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                               count n: Int, positions: Int, channels: Int) {
    let scale = 1 / Float(positions)
    for i in 0..<n {
        let g = outputGradient + i * channels
        for p in 0..<positions {
            let dx = inputGradient + (i * positions + p) * channels
            for c in 0..<channels { dx[c] = scale * g[c] }
        }
    }
}
