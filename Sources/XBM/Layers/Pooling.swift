// Pooling over channel-last activations. Letters: n samples, H×W input size, C channels.

/// 2×2 max pooling, stride 2: output (n, H/2, W/2, C),
///   output[i, y, x, c] = max_{dy, dx ∈ {0,1}} input[i, 2y+dy, 2x+dx, c].
/// `argmax` (n, H/2, W/2, C) records which of the four (dy·2 + dx) won, first on ties,
/// so the backward routes each gradient to exactly one input.
func maxPool2x2Forward(output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<UInt8>,
                       input: UnsafePointer<Float>, count n: Int, height: Int, width: Int, channels: Int) {
    assert(height % 2 == 0 && width % 2 == 0, "max pool needs even sizes, got \(height)×\(width)")
    let outHeight = height / 2, outWidth = width / 2
    let rowStride = width * channels
    for i in 0..<n {
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let top = input + ((i * height + 2 * y) * width + 2 * x) * channels
                let outIndex = ((i * outHeight + y) * outWidth + x) * channels
                let out = output + outIndex, winner = argmax + outIndex
                for c in 0..<channels {
                    var best = top[c], which: UInt8 = 0
                    let v1 = top[channels + c], v2 = top[rowStride + c], v3 = top[rowStride + channels + c]
                    if v1 > best { best = v1; which = 1 }
                    if v2 > best { best = v2; which = 2 }
                    if v3 > best { best = v3; which = 3 }
                    out[c] = best
                    winner[c] = which
                }
            }
        }
    }
}

/// dInput[i, 2y+dy, 2x+dx, c] += dOutput[i, y, x, c] for the (dy, dx) that won the forward.
func maxPool2x2Backward(inputGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                        argmax: UnsafePointer<UInt8>, count n: Int, height: Int, width: Int, channels: Int) {
    let outHeight = height / 2, outWidth = width / 2
    for i in 0..<n {
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let top = inputGradient + ((i * height + 2 * y) * width + 2 * x) * channels
                let outIndex = ((i * outHeight + y) * outWidth + x) * channels
                let g = outputGradient + outIndex, winner = argmax + outIndex
                for c in 0..<channels {
                    let which = Int(winner[c])
                    top[(which >> 1) * width * channels + (which & 1) * channels + c] += g[c]
                }
            }
        }
    }
}

/// Global average pooling: output (n, C), output[i, c] = (1/HW) Σ_{y,x} input[i, y, x, c].
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

/// dInput[i, y, x, c] += dOutput[i, c] / HW.
func globalAveragePoolBackward(inputGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                               count n: Int, positions: Int, channels: Int) {
    let scale = 1 / Float(positions)
    for i in 0..<n {
        let g = outputGradient + i * channels
        for p in 0..<positions {
            let dx = inputGradient + (i * positions + p) * channels
            for c in 0..<channels { dx[c] += scale * g[c] }
        }
    }
}
