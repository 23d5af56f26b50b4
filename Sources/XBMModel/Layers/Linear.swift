import XBMKernels
// Fully connected layer. Letters: n samples, I inputs, O outputs.

/// output (n, O) = input (n, I) · weightᵀ (I, O) + bias (O); weight is (O, I) as in PyTorch.
/// Without a bias (a linear layer followed by batch norm, which would cancel it) the term is 0.
@inline(never)
func linearForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                   count n: Int, inputSize: Int, outputSize: Int) {
    if let bias { for i in 0..<n { (output + i * outputSize).update(from: bias, count: outputSize) } }
    gemm(.none, .transposed, m: n, n: outputSize, k: inputSize,
         a: input, lda: inputSize, b: weight, ldb: inputSize, beta: bias == nil ? 0 : 1, c: output, ldc: outputSize)
}

/// Adds dWeight (O, I) += dOutputᵀ · input and dBias (O) += Σ_i dOutput[i]; unless
/// `inputGradient` is nil, writes dInput (n, I) = dOutput (n, O) · weight (O, I).
@inline(never)
func linearBackward(inputGradient: UnsafeMutablePointer<Float>?, weightGradient: UnsafeMutablePointer<Float>,
                    biasGradient: UnsafeMutablePointer<Float>?, outputGradient: UnsafePointer<Float>,
                    input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    count n: Int, inputSize: Int, outputSize: Int) {
    gemm(.transposed, .none, m: outputSize, n: inputSize, k: n,
         a: outputGradient, lda: outputSize, b: input, ldb: inputSize, beta: 1, c: weightGradient, ldc: inputSize)
    if let biasGradient {
        for i in 0..<n {
            let g = outputGradient + i * outputSize
            for o in 0..<outputSize { biasGradient[o] += g[o] }
        }
    }
    if let inputGradient {
        gemm(.none, .none, m: n, n: inputSize, k: outputSize,
             a: outputGradient, lda: outputSize, b: weight, ldb: inputSize, beta: 0, c: inputGradient, ldc: inputSize)
    }
}
