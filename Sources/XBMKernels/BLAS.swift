import CBLAS
import Foundation

// The only file that imports CBLAS (Docs/architecture.md). Everything is row major (C order), as the
// rest of the package stores its tensors; leading dimensions are in elements.

/// Whether an operand of `gemm` is used as stored or transposed.
public enum Transpose: Sendable {
    case none
    case transposed

    fileprivate var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// C = α · op(A) · op(B) + β · C, with op(A) of shape (m, k), op(B) of shape (k, n) and
/// C of shape (m, n), all row major. With β = 0, C is overwritten (it may hold garbage).
@inline(__always)
public func gemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    assert(m >= 0 && n >= 0 && k >= 0, "gemm sizes must be non-negative: m \(m) n \(n) k \(k)")
    guard m > 0, n > 0 else { return }
    cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, Int32(m), Int32(n), Int32(k),
                alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The naive triple loop `gemm` is tested against (accumulating in Double).
public func gemmReference(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                          alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                          b: UnsafePointer<Float>, ldb: Int,
                          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let aip = transA == .none ? a[i * lda + p] : a[p * lda + i]
                let bpj = transB == .none ? b[p * ldb + j] : b[j * ldb + p]
                sum += Double(aip) * Double(bpj)
            }
            let previous = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(Double(alpha) * sum + previous)
        }
    }
}

/// Calls `body` on disjoint contiguous sub-ranges covering 0..<count, on up to `threads`
/// threads (the caller's budget, at most the BLAS thread count), concurrently, with OpenBLAS
/// itself on one thread meanwhile: for work items that each call `gemm` on small products (a
/// Winograd convolution's 16, or its groups of images), which then cost no fork and join
/// inside OpenBLAS. Results must not depend on the split.
///
/// OpenBLAS' thread count is one setting for the whole process, which this changes for the
/// call: a caller that shares the process with other ranks (simulated ranks) passes 1, and
/// the items run in order on the calling thread, each product threaded by OpenBLAS as
/// configured (some of OpenBLAS' routines split their sums by thread, so toggling the count
/// under another rank's product would change its bits).
public func parallelProducts(_ count: Int, threads budget: Int, _ body: (Range<Int>) -> Void) {
    let configured = BLASThreads.current, threads = min(configured, budget, count)
    guard threads > 1 else { return runChunks(count, threads: 1, body) }
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(Int32(configured)) }
    runChunks(count, threads: threads, body)
}

/// Σ x_i · y_i over n contiguous elements.
@inline(__always)
public func dot(count n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
    guard n > 0 else { return 0 }
    return cblas_sdot(Int32(n), x, 1, y, 1)
}

/// OpenBLAS' thread pool. Under mpirun OpenBLAS may start with one thread or with one per
/// core in every rank; both are wrong, so the count is always set explicitly (Docs/distributed.md).
public enum BLASThreads {
    /// Sets the number of threads OpenBLAS uses for every following call in this process.
    public static func set(_ count: Int) {
        precondition(count >= 1, "BLAS thread count must be at least 1, got \(count)")
        openblas_set_num_threads(Int32(count))
    }

    public static var current: Int { Int(openblas_get_num_threads()) }

    /// Cores on the node divided among the ranks on the node, at least 1.
    public static func defaultCount(coresOnNode: Int, ranksOnNode: Int) -> Int {
        max(1, coresOnNode / max(1, ranksOnNode))
    }
}

/// Which OpenBLAS kernels run. OpenBLAS picks them from the CPU model when it is loaded;
/// Debian 12's 0.3.21 does not know recent Xeons and falls back to its generic SSE3
/// ("Prescott") kernels, which made the glyphnet step 2.5× slower on the development machine
/// (520 against 1,300 images/s). `selectKernels` corrects that choice from the CPU's
/// instruction sets, before anything else runs.
public enum BLASKernels {
    /// The kernel family OpenBLAS is using ("Prescott", "Haswell", "SkylakeX", …).
    public static var current: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Cores of OpenBLAS 0.3.x without AVX2 kernels.
    static let generic: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                        "Sandybridge", "Katmai", "Coppermine", "Northwood", "Banias"]

    /// The kernels to use for a CPU with `flags` (from /proc/cpuinfo) when OpenBLAS chose
    /// `chosen`, or nil to keep its choice.
    public static func better(than chosen: String, flags: Set<String>) -> String? {
        guard generic.contains(chosen) else { return nil }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// Corrects what OpenBLAS read from the environment when it was loaded, unless
    /// XBM_KEEP_BLAS_KERNELS is set: when OPENBLAS_CORETYPE is unset and OpenBLAS fell back
    /// to generic kernels on a CPU with AVX2 or AVX-512, sets OPENBLAS_CORETYPE; when
    /// OPENBLAS_THREAD_TIMEOUT is unset, sets it to 4, so that idle BLAS threads sleep at once
    /// instead of yield-spinning against the rest of the step (batch norm, im2col, the loss
    /// passes run on threads of our own between the products). Then re-executes this
    /// program with the same arguments, since OpenBLAS reads both only when it is loaded.
    /// Returns when nothing needs changing. Call it first thing in `main`, before MPI is
    /// initialised (the process keeps its pid).
    public static func selectKernels() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["XBM_KEEP_BLAS_KERNELS"] == nil else { return }
        var choice: String?
        if environment["OPENBLAS_CORETYPE"] == nil,
           let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
            choice = better(than: current, flags: Set(line.split(separator: " ").map(String.init)))
        }
        let setTimeout = environment["OPENBLAS_THREAD_TIMEOUT"] == nil
        guard choice != nil || setTimeout else { return }
        // The program's own path, not /proc/self/exe, so the process keeps its name (`pkill
        // xbm-dist`, `ps`) after the exec.
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard readlink("/proc/self/exe", &path, Int(PATH_MAX)) > 0 else { return }
        if let choice { setenv("OPENBLAS_CORETYPE", choice, 1) }
        if setTimeout { setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) }
        execv(path, CommandLine.unsafeArgv)
        // exec failed: carry on with OpenBLAS' own choice.
    }
}
