import XBMKernels
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
/// Away from the left and right edges the three taps of one kernel row are 3·Ci contiguous
/// floats in both the input and the column row, so they move as one copy.
@inline(never)
func im2col3x3(columns: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
               count n: Int, height: Int, width: Int, channels: Int) {
    let k = 9 * channels, span = 3 * channels
    // One work item per output image row (i, y); 3·Ci-float runs for wide inputs, explicit
    // scalar taps for the one-channel first layer (where a copy call per tap would dominate).
    parallelChunks(n * height, minimumChunk: max(1, 4096 / (width * k))) { imageRows in
        for imageRow in imageRows {
            let i = imageRow / height, y = imageRow % height
            let image = input + i * height * width * channels
            for x in 0..<width {
                let row = columns + (imageRow * width + x) * k
                for ky in 0..<3 {
                    let sy = y + ky - 1
                    let destination = row + ky * span
                    if sy < 0 || sy >= height {
                        fillFloats(destination, count: span)
                    } else if channels == 1 {
                        let source = image + sy * width + x
                        destination[0] = x > 0 ? source[-1] : 0
                        destination[1] = source[0]
                        destination[2] = x + 1 < width ? source[1] : 0
                    } else if x >= 1 && x + 1 < width {
                        copyFloats(destination, image + (sy * width + x - 1) * channels, count: span)
                    } else {
                        for kx in 0..<3 {
                            let sx = x + kx - 1
                            if sx >= 0 && sx < width {
                                copyFloats(destination + kx * channels, image + (sy * width + sx) * channels, count: channels)
                            } else {
                                fillFloats(destination + kx * channels, count: channels)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col3x3`, written as a gather so each input position is written once:
///   dInput[i, sy, sx, c] = Σ_{ky, kx} columns[(i, sy−ky+1, sx−kx+1), (ky·3 + kx)·Ci + c]
/// over the output positions that lie inside the image. Overwrites `inputGradient`.
@inline(never)
func col2im3x3(inputGradient: UnsafeMutablePointer<Float>, columns: UnsafePointer<Float>,
               count n: Int, height: Int, width: Int, channels: Int) {
    let k = 9 * channels
    parallelChunks(n * height, minimumChunk: max(1, 4096 / (width * k))) { imageRows in
        for imageRow in imageRows {
            let i = imageRow / height, sy = imageRow % height
            for sx in 0..<width {
                let destination = inputGradient + (imageRow * width + sx) * channels
                var c = 0
                while c < channels {
                    let lanes = min(vectorWidth, channels - c)
                    var sum = FloatVector.zero
                    for ky in 0..<3 {
                        let y = sy - ky + 1
                        guard y >= 0 && y < height else { continue }
                        for kx in 0..<3 {
                            let x = sx - kx + 1
                            guard x >= 0 && x < width else { continue }
                            let source = columns + ((i * height + y) * width + x) * k + (ky * 3 + kx) * channels + c
                            sum += loadVector(source, lanes: lanes)
                        }
                    }
                    storeVector(sum, destination + c, lanes: lanes)
                    c += lanes
                }
            }
        }
    }
}

@inline(__always)
private func copyFloats(_ destination: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, count: Int) {
    var j = 0
    while j + vectorWidth <= count { storeVector(loadVector(source + j), destination + j); j += vectorWidth }
    while j < count { destination[j] = source[j]; j += 1 }
}

@inline(__always)
private func fillFloats(_ destination: UnsafeMutablePointer<Float>, count: Int) {
    var j = 0
    while j + vectorWidth <= count { storeVector(.zero, destination + j); j += vectorWidth }
    while j < count { destination[j] = 0; j += 1 }
}

/// output (n, H, W, Co) = input (n, H, W, Ci) ⋆ weight (Co, 3, 3, Ci), zero padding 1:
///   output[i, y, x, o] = Σ_{ky, kx, c} weight[o, ky, kx, c] · input[i, y+ky−1, x+kx−1, c].
/// `columns` is a workspace of at least P·K floats; on return it holds the im2col of `input`.
@inline(never)
func conv3x3Forward(output: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Float>,
                    input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    count n: Int, height: Int, width: Int, inputChannels: Int, outputChannels: Int) {
    let positions = n * height * width, k = 9 * inputChannels
    im2col3x3(columns: columns, input: input, count: n, height: height, width: width, channels: inputChannels)
    gemm(.none, .transposed, m: positions, n: outputChannels, k: k,
         a: columns, lda: k, b: weight, ldb: k, c: output, ldc: outputChannels)
}

/// Gradients of `conv3x3Forward`: *adds* the weight gradient, *writes* the input gradient:
///   dWeight (Co, K) += dOutputᵀ (Co, P) · columns (P, K)
///   dColumns (P, K)  = dOutput (P, Co) · weight (Co, K);  dInput = col2im(dColumns).
/// With `input` nil, `columns` must still hold the forward's im2col of the input; otherwise
/// it is recomputed from `input`. Either way it is overwritten by dColumns. `inputGradient`
/// nil skips dInput (the first layer, whose input is data).
@inline(never)
func conv3x3Backward(inputGradient: UnsafeMutablePointer<Float>?, weightGradient: UnsafeMutablePointer<Float>,
                     columns: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                     input: UnsafePointer<Float>?, weight: UnsafePointer<Float>,
                     count n: Int, height: Int, width: Int, inputChannels: Int, outputChannels: Int,
                     chunks: GradientChunks = .whole) {
    let positions = n * height * width, k = 9 * inputChannels
    if let input {
        im2col3x3(columns: columns, input: input, count: n, height: height, width: width, channels: inputChannels)
    }
    precondition(n % chunks.count == 0, "conv backward: \(n) images are not \(chunks.count) equal chunks")
    // One product per chunk: whole chunks split over the threads (one chunk: BLAS's own threads).
    parallelProducts(chunks.count, threads: productThreads) { chunkRange in
        for j in chunkRange {
            let rows = chunks.range(j, of: positions)
            gemm(.transposed, .none, m: outputChannels, n: k, k: rows.count,
                 a: outputGradient + rows.lowerBound * outputChannels, lda: outputChannels, b: columns + rows.lowerBound * k, ldb: k,
                 beta: chunks.beta, c: weightGradient + j * chunks.stride, ldc: k)
        }
    }
    guard let inputGradient else { return }
    gemm(.none, .none, m: positions, n: k, k: outputChannels,
         a: outputGradient, lda: outputChannels, b: weight, ldb: k, c: columns, ldc: k)
    col2im3x3(inputGradient: inputGradient, columns: columns,
                 count: n, height: height, width: width, channels: inputChannels)
}
