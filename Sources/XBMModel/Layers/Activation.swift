import XBMKernels
// Element-wise and row-wise activations. Backward kernels write (not add) the input
// gradient: each activation feeds exactly one layer, so there is nothing to accumulate.

/// output = max(0, input) over `count` elements (may be the same buffer as `input`).
@inline(never)
func reluForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
    parallelChunks((count + 1023) / 1024, minimumChunk: 16) { blocks in
        var i = blocks.lowerBound * 1024
        let end = min(blocks.upperBound * 1024, count)
        while i + vectorWidth <= end {
            storeVector(lanewiseMax(loadVector(input + i), .zero), output + i)
            i += vectorWidth
        }
        while i < end { output[i] = max(0, input[i]); i += 1 }
    }
}

/// dInput = dOutput where the forward's output was positive, else 0 (the subgradient 0 at 0).
/// Takes the output, not the input, so both passes may run in place.
@inline(never)
func reluBackward(inputGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                  output: UnsafePointer<Float>, count: Int) {
    parallelChunks((count + 1023) / 1024, minimumChunk: 16) { blocks in
        var i = blocks.lowerBound * 1024
        let end = min(blocks.upperBound * 1024, count)
        while i + vectorWidth <= end {
            let g = loadVector(outputGradient + i)
            storeVector(g.replacing(with: 0, where: loadVector(output + i) .<= 0), inputGradient + i)
            i += vectorWidth
        }
        while i < end { inputGradient[i] = output[i] > 0 ? outputGradient[i] : 0; i += 1 }
    }
}

/// Smallest norm divided by, as `torch.nn.functional.normalize` (eps 1e-12).
public let l2NormalizeEpsilon: Float = 1e-12

/// Row-wise L2 normalisation of x (n, d): y_i = x_i / max(‖x_i‖, eps); `norms` (n) is saved.
@inline(never)
func l2NormalizeForward(output: UnsafeMutablePointer<Float>, norms: UnsafeMutablePointer<Float>,
                        input: UnsafePointer<Float>, count n: Int, dimension d: Int) {
    for i in 0..<n {
        let x = input + i * d, y = output + i * d
        var sum: Float = 0
        for j in 0..<d { sum += x[j] * x[j] }
        let norm = max(sum.squareRoot(), l2NormalizeEpsilon)
        norms[i] = norm
        let inverse = 1 / norm
        for j in 0..<d { y[j] = x[j] * inverse }
    }
}

/// dx_i = (I − y_i y_iᵀ) dy_i / ‖x_i‖ = (dy_i − y_i (y_i·dy_i)) / ‖x_i‖.
@inline(never)
func l2NormalizeBackward(inputGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                         output: UnsafePointer<Float>, norms: UnsafePointer<Float>, count n: Int, dimension d: Int) {
    for i in 0..<n {
        let y = output + i * d, g = outputGradient + i * d, dx = inputGradient + i * d
        var projection: Float = 0
        for j in 0..<d { projection += y[j] * g[j] }
        let inverse = 1 / norms[i]
        for j in 0..<d { dx[j] = (g[j] - y[j] * projection) * inverse }
    }
}
