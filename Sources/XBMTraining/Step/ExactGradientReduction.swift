import Collectives
import XBMKernels
import XBMModel

/// The parameter gradient of `--deterministic` training (Docs/distributed.md, "Deterministic
/// training"): the backward leaves one gradient per chunk of the local batch
/// (`GradientChunks`), each a sum over that chunk's samples alone, and this adds the gradients
/// of all K chunks of the global batch exactly (`ExactSum`), per tensor of the layout:
///
///     m_t = max over every chunk of the global batch of |g_t|     allreduce (max)
///     q   = Σ over this rank's chunks of round(g · 2^s_t)          in Double, exact
///     Q   = allreduce(q)                                           exact: integers below 2^53
///     ∂L/∂θ = Float(Q) · 2^−s_t
///
/// The chunks hold the same samples, in the same order, whatever the number of ranks holding
/// them, so the result has the same bits on 1 rank and on K.
final class ExactGradientReduction {
    let comm: Communicator
    let layout: ParameterLayout
    /// The backward's gradients: `localChunks` rows of the parameter count.
    let chunkGradients: FlatBuffer<Float>
    let localChunks: Int
    let globalChunks: Int
    private let sums: FlatBuffer<Double>      // (P) q, then Q
    private let maxima: FlatBuffer<Float>     // (tensors) m_t
    private var threadMaxima = FlatBuffer<Float>(count: 0)   // (threads, tensors) each thread's share of m_t
    private var shifts: [Int?]                // (tensors) s_t, nil for a non-finite m_t
    private let tensorEnds: [Int]             // each tensor's end offset, in layout order

    init(comm: Communicator, layout: ParameterLayout, localChunks: Int) {
        precondition(localChunks >= 1, "ExactGradientReduction needs at least one chunk per rank")
        self.comm = comm
        self.layout = layout
        self.localChunks = localChunks
        globalChunks = localChunks * comm.size
        chunkGradients = FlatBuffer(count: localChunks * layout.count)
        sums = FlatBuffer(count: layout.count)
        maxima = FlatBuffer(count: layout.entries.count)
        tensorEnds = layout.entries.map { $0.offset + $0.count }
        shifts = [Int?](repeating: 0, count: layout.entries.count)
    }

    /// Gradients in chunks, as the network's backward adds them.
    var chunks: GradientChunks { GradientChunks(count: localChunks, stride: layout.count) }

    /// Writes the exact sum over every chunk of every rank into `gradients` (P), the same bits
    /// on every rank. A non-finite gradient anywhere makes its whole tensor NaN, which the
    /// trainer's check of the parameters reports.
    func reduce(into gradients: UnsafeMutablePointer<Float>) throws {
        let P = layout.count, g = chunkGradients.pointer, tensors = layout.entries.count
        // m_t: each thread's pieces into its own row of maxima, then the rows' maximum.
        let threads = max(1, BLASThreads.current)
        if threadMaxima.count < threads * tensors { threadMaxima = FlatBuffer(count: threads * tensors) }
        threadMaxima.zero()
        let rows = threadMaxima.pointer
        forEachTensorPiece { part, t, range in
            var maximum = rows[part * tensors + t]
            for j in 0..<localChunks {
                let m = ExactSum.maximumMagnitude(g + j * P + range.lowerBound, count: range.count)
                // NaN would be lost by MPI's max; +∞ survives it and still means "no shift".
                maximum = m.isNaN ? .infinity : max(maximum, m)
            }
            rows[part * tensors + t] = maximum
        }
        for t in 0..<tensors {
            var maximum: Float = 0
            for part in 0..<threads { maximum = max(maximum, rows[part * tensors + t]) }
            maxima[t] = maximum
        }
        try comm.allreduceMax(maxima.buffer)
        for t in 0..<tensors { shifts[t] = ExactSum.shift(maximum: maxima[t], addends: globalChunks) }
        let q = sums.pointer
        forEachTensorPiece { _, t, range in
            (q + range.lowerBound).update(repeating: 0, count: range.count)
            guard let s = shifts[t] else { return }
            for j in 0..<localChunks {
                ExactSum.accumulate(g + j * P + range.lowerBound, count: range.count, shift: s, into: q + range.lowerBound)
            }
        }
        try comm.allreduceSum(sums.buffer)
        forEachTensorPiece { _, t, range in
            ExactSum.result(q + range.lowerBound, count: range.count, shift: shifts[t], into: gradients + range.lowerBound)
        }
    }

    /// Zeroes the chunks' gradients, split over the threads, before the backward adds into them.
    func zeroChunkGradients() {
        let g = chunkGradients.pointer
        parallelChunks(chunkGradients.count, minimumChunk: 1 << 18) { range in
            (g + range.lowerBound).update(repeating: 0, count: range.count)
        }
    }

    /// `body(part, t, range)` for the pieces of tensor t in `part`'s contiguous share of the flat
    /// range, the parts split over the threads; elementwise work, so the split does not change
    /// the result.
    private func forEachTensorPiece(_ body: (Int, Int, Range<Int>) -> Void) {
        let ends = tensorEnds, count = layout.count
        let threads = min(max(1, BLASThreads.current), max(1, count / 32768))
        runChunks(threads, threads: threads) { parts in
            for part in parts {
                let lower = part * count / threads, upper = (part + 1) * count / threads
                var t = 0
                while ends[t] <= lower { t += 1 }
                var start = lower
                while start < upper {
                    let end = min(ends[t], upper)
                    body(part, t, start..<end)
                    start = end
                    t += 1
                }
            }
        }
    }
}
