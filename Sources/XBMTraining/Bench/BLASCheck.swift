import XBMKernels
/// `xbm-dist bench blas`: the matrix products this package uses, computed by the OpenBLAS
/// kernels in use and by the naive reference, on every transpose combination and on shapes
/// around the kernels' block sizes. A wrong kernel for this CPU shows up here, before it can
/// spoil a training run.
public enum BLASCheck {
    public struct Failure: Sendable, CustomStringConvertible {
        public var transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int, error: Float
        public var description: String { "sgemm \(transA)/\(transB) m \(m) n \(n) k \(k): relative error \(error)" }
    }

    /// Returns the failing cases (empty when every product agrees to 1e-5 of its scale:
    /// Float32 sums of k ≤ 300 terms, each rounded by ≤ 6e-8, stay far below that).
    public static func run(seed: UInt64 = 1) -> [Failure] {
        var random = RandomSource(seed: seed)
        var failures: [Failure] = []
        let shapes = [(1, 1, 1), (3, 5, 7), (16, 16, 16), (33, 65, 17), (64, 128, 288), (100, 31, 300), (7, 257, 64)]
        for (m, n, k) in shapes {
            for transA in [Transpose.none, .transposed] {
                for transB in [Transpose.none, .transposed] {
                    let a = (0..<(m * k)).map { _ in random.nextUniform() * 2 - 1 }
                    let b = (0..<(k * n)).map { _ in random.nextUniform() * 2 - 1 }
                    let c0 = (0..<(m * n)).map { _ in random.nextUniform() }
                    var fast = c0, slow = c0
                    let lda = transA == .none ? k : m, ldb = transB == .none ? n : k
                    gemm(transA, transB, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb,
                         beta: 0.5, c: &fast, ldc: n)
                    gemmReference(transA, transB, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb,
                                  beta: 0.5, c: &slow, ldc: n)
                    let scale = max(slow.map(abs).max() ?? 0, 1)
                    let error = zip(fast, slow).map { abs($0 - $1) }.max() ?? 0
                    if !(error <= 1e-5 * scale) {
                        failures.append(Failure(transA: transA, transB: transB, m: m, n: n, k: k, error: error / scale))
                    }
                }
            }
        }
        return failures
    }
}
