// 3×3 convolution, padding 1, stride 1, no bias, over channel-last (NHWC) activations.
//
// Letters: n samples, H×W spatial size (unchanged by this layer), Ci / Co input / output
// channels, P = n·H·W output positions, K = 9·Ci the length of one receptive field.
//
// Layout choice: activations are (n, H, W, C). The receptive field of one position is then
// nine contiguous runs of Ci floats, so im2col is nine short copies per position, and the
// single sgemm  out (P, Co) = columns (P, K) · weightᵀ (K, Co)  writes NHWC directly — no
// transpose after the product. The weight is stored (Co, 3, 3, Ci) so that one output
// channel's filter is one contiguous row of K floats in the same (ky, kx, ci) order as a
// column row. (PyTorch stores (Co, Ci, 3, 3); a checkpoint converter would permute.)

/// Fills `columns` (P, K) with the zero-padded 3×3 neighbourhoods of `input` (n, H, W, Ci):
/// columns[(i·H + y)·W + x, (ky·3 + kx)·Ci + c] = input[i, y+ky−1, x+kx−1, c] (0 outside).
@inline(__always)
func im2col3x3(columns: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
               count n: Int, height: Int, width: Int, channels: Int) {
    let k = 9 * channels
    for i in 0..<n {
        let image = input + i * height * width * channels
        for y in 0..<height {
            for x in 0..<width {
                let row = columns + ((i * height + y) * width + x) * k
                for ky in 0..<3 {
                    let sy = y + ky - 1
                    let rowInside = sy >= 0 && sy < height
                    for kx in 0..<3 {
                        let sx = x + kx - 1
                        let destination = row + (ky * 3 + kx) * channels
                        if rowInside && sx >= 0 && sx < width {
                            let source = image + (sy * width + sx) * channels
                            for c in 0..<channels { destination[c] = source[c] }
                        } else {
                            for c in 0..<channels { destination[c] = 0 }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col3x3`: adds every column entry back onto the input position it was
/// copied from, i.e. dInput[i, sy, sx, c] += Σ over the (position, tap) pairs that read it.
@inline(__always)
func col2imAdd3x3(inputGradient: UnsafeMutablePointer<Float>, columns: UnsafePointer<Float>,
                  count n: Int, height: Int, width: Int, channels: Int) {
    let k = 9 * channels
    for i in 0..<n {
        let image = inputGradient + i * height * width * channels
        for y in 0..<height {
            for x in 0..<width {
                let row = columns + ((i * height + y) * width + x) * k
                for ky in 0..<3 {
                    let sy = y + ky - 1
                    guard sy >= 0 && sy < height else { continue }
                    for kx in 0..<3 {
                        let sx = x + kx - 1
                        guard sx >= 0 && sx < width else { continue }
                        let source = row + (ky * 3 + kx) * channels
                        let destination = image + (sy * width + sx) * channels
                        for c in 0..<channels { destination[c] += source[c] }
                    }
                }
            }
        }
    }
}

/// output (n, H, W, Co) = input (n, H, W, Ci) ⋆ weight (Co, 3, 3, Ci), zero padding 1:
///   output[i, y, x, o] = Σ_{ky, kx, c} weight[o, ky, kx, c] · input[i, y+ky−1, x+kx−1, c].
/// `columns` is a workspace of at least P·K floats; on return it holds the im2col of `input`.
func conv3x3Forward(output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Float>,
                    input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    count n: Int, height: Int, width: Int, inputChannels: Int, outputChannels: Int) {
    let positions = n * height * width, k = 9 * inputChannels
    im2col3x3(columns: columns, input: input, count: n, height: height, width: width, channels: inputChannels)
    gemm(.none, .transposed, m: positions, n: outputChannels, k: k,
         a: columns, lda: k, b: weight, ldb: k, c: output, ldc: outputChannels)
}

/// Adds the gradients of `conv3x3Forward`:
///   dWeight (Co, K) += dOutputᵀ (Co, P) · columns (P, K)
///   dColumns (P, K)  = dOutput (P, Co) · weight (Co, K);  dInput += col2im(dColumns).
/// With `input` nil, `columns` must still hold the forward's im2col of the input; otherwise
/// it is recomputed from `input`. Either way it is overwritten by dColumns. `inputGradient`
/// nil skips dInput (the first layer, whose input is data).
func conv3x3Backward(inputGradient: UnsafeMutablePointer<Float>?, weightGradient: UnsafeMutablePointer<Float>,
                     columns: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                     input: UnsafePointer<Float>?, weight: UnsafePointer<Float>,
                     count n: Int, height: Int, width: Int, inputChannels: Int, outputChannels: Int) {
    let positions = n * height * width, k = 9 * inputChannels
    if let input {
        im2col3x3(columns: columns, input: input, count: n, height: height, width: width, channels: inputChannels)
    }
    gemm(.transposed, .none, m: outputChannels, n: k, k: positions,
         a: outputGradient, lda: outputChannels, b: columns, ldb: k,
         beta: 1, c: weightGradient, ldc: k)
    guard let inputGradient else { return }
    gemm(.none, .none, m: positions, n: k, k: outputChannels,
         a: outputGradient, lda: outputChannels, b: weight, ldb: k, c: columns, ldc: k)
    col2imAdd3x3(inputGradient: inputGradient, columns: columns,
                 count: n, height: height, width: width, channels: inputChannels)
}
