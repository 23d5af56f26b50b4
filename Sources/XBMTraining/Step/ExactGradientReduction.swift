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
    }

    /// Gradients in chunks, as the network's backward adds them.
    var chunks: GradientChunks { GradientChunks(count: localChunks, stride: layout.count) }

    /// Writes the exact sum over every chunk of every rank into `gradients` (P), the same bits
    /// on every rank. A non-finite gradient anywhere makes its whole tensor NaN, which the
    /// trainer's check of the parameters reports.
    func reduce(into gradients: UnsafeMutablePointer<Float>) throws {
        let P = layout.count, g = chunkGradients.pointer
        for (t, entry) in layout.entries.enumerated() {
            var maximum: Float = 0
            for j in 0..<localChunks {
                let m = ExactSum.maximumMagnitude(g + j * P + entry.offset, count: entry.count)
                // NaN would be lost by MPI's max; +∞ survives it and still means "no shift".
                maximum = m.isNaN ? .infinity : max(maximum, m)
            }
            maxima[t] = maximum
        }
        try comm.allreduceMax(maxima.buffer)
        sums.zero()
        forEachTensorPiece { t, range in
            guard let s = ExactSum.shift(maximum: maxima[t], addends: globalChunks) else { return }
            for j in 0..<localChunks {
                ExactSum.accumulate(g + j * P + range.lowerBound, count: range.count, shift: s, into: sums.pointer + range.lowerBound)
            }
        }
        try comm.allreduceSum(sums.buffer)
        forEachTensorPiece { t, range in
            ExactSum.result(sums.pointer + range.lowerBound, count: range.count,
                            shift: ExactSum.shift(maximum: maxima[t], addends: globalChunks), into: gradients + range.lowerBound)
        }
    }

    /// `body(t, range)` for the pieces of tensor t in contiguous parts of the flat range, split
    /// over the threads; elementwise work, so the split does not change the result.
    private func forEachTensorPiece(_ body: (Int, Range<Int>) -> Void) {
        let ends = tensorEnds
        parallelChunks(layout.count, minimumChunk: 32768) { part in
            var t = 0
            while ends[t] <= part.lowerBound { t += 1 }
            var start = part.lowerBound
            while start < part.upperBound {
                let end = min(ends[t], part.upperBound)
                body(t, start..<end)
                start = end
                t += 1
            }
        }
    }
}
