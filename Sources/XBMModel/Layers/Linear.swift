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
/// `inputGradient` is nil, writes dInput (n, I) = dOutput (n, O) · weight (O, I). With several
/// `chunks`, each chunk of samples adds (or writes) its dWeight and dBias into its own gradient.
@inline(never)
func linearBackward(inputGradient: UnsafeMutablePointer<Float>?, weightGradient: UnsafeMutablePointer<Float>,
                    biasGradient: UnsafeMutablePointer<Float>?, outputGradient: UnsafePointer<Float>,
                    input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    count n: Int, inputSize: Int, outputSize: Int, chunks: GradientChunks = .whole) {
    precondition(n % chunks.count == 0, "linear backward: \(n) samples are not \(chunks.count) equal chunks")
    // Small products, one per chunk: whole chunks split over the threads (one chunk: BLAS's own threads).
    parallelProducts(chunks.count, threads: productThreads) { chunkRange in for j in chunkRange {
        let samples = chunks.range(j, of: n), offset = j * chunks.stride
        gemm(.transposed, .none, m: outputSize, n: inputSize, k: samples.count,
             a: outputGradient + samples.lowerBound * outputSize, lda: outputSize,
             b: input + samples.lowerBound * inputSize, ldb: inputSize, beta: chunks.beta, c: weightGradient + offset, ldc: inputSize)
        if let biasGradient = biasGradient.map({ $0 + offset }) {
            if chunks.writes { biasGradient.update(repeating: 0, count: outputSize) }
            for i in samples {
                let g = outputGradient + i * outputSize
                for o in 0..<outputSize { biasGradient[o] += g[o] }
            }
        }
    } }
    if let inputGradient {
        gemm(.none, .none, m: n, n: inputSize, k: outputSize,
             a: outputGradient, lda: outputSize, b: weight, ldb: inputSize, beta: 0, c: inputGradient, ldc: inputSize)
    }
}
