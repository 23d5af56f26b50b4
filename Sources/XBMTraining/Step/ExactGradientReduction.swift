import Collectives
import XBMKernels
import XBMModel

/// The parameter gradient of `--deterministic` training (Docs/distributed.md, "Deterministic
/// training"): the backward writes one gradient per chunk of the local batch
/// (`GradientChunks`), each a sum over that chunk's samples alone, and this adds the gradients
/// of all K chunks of the global batch exactly (`ExactSum`), per block of `blockSize` entries
/// of the flat gradient:
///
///     m_b = max over every chunk of the global batch of |g| in block b    allreduce (max)
///     q   = Σ over this rank's chunks of round(g · 2^s_b)                  in Double, exact
///     Q   = allreduce(q)                                                   exact: integers below 2^53
///     ∂L/∂θ = Float(Q) · 2^−s_b
///
/// The chunks hold the same samples, in the same order, whatever the number of ranks holding
/// them, so the result has the same bits on 1 rank and on K. On one rank nothing needs to
/// travel between the passes, and each block goes through all of them while its K rows are in
/// cache.
final class ExactGradientReduction {
    /// Entries of the flat gradient that share one shift: 16 KiB of each chunk's gradient.
    static let blockSize = 4096

    let comm: Communicator
    let layout: ParameterLayout
    /// The backward's gradients: `localChunks` rows of the parameter count.
    let chunkGradients: FlatBuffer<Float>
    let localChunks: Int
    let globalChunks: Int
    private let sums: FlatBuffer<Double>      // (P) q, then Q
    private let maxima: FlatBuffer<Float>     // (blocks) m_b

    init(comm: Communicator, layout: ParameterLayout, localChunks: Int) {
        precondition(localChunks >= 1, "ExactGradientReduction needs at least one chunk per rank")
        self.comm = comm
        self.layout = layout
        self.localChunks = localChunks
        globalChunks = localChunks * comm.size
        chunkGradients = FlatBuffer(count: localChunks * layout.count)
        sums = FlatBuffer(count: layout.count)
        maxima = FlatBuffer(count: (layout.count + Self.blockSize - 1) / Self.blockSize)
    }

    /// Gradients in chunks, as the network's backward writes them.
    var chunks: GradientChunks { GradientChunks(count: localChunks, stride: layout.count, writes: true) }

    /// Writes the exact sum over every chunk of every rank into `gradients` (P), the same bits
    /// on every rank. A non-finite gradient anywhere makes its whole block NaN, which the
    /// trainer's check of the parameters reports.
    func reduce(into gradients: UnsafeMutablePointer<Float>) throws {
        if comm.size == 1 {
            forEachBlock { block, range in
                blockMaximum(block, range)
                blockSum(block, range)
                blockResult(block, range, into: gradients)
            }
            return
        }
        forEachBlock { block, range in blockMaximum(block, range) }
        try comm.allreduceMax(maxima.buffer)
        forEachBlock { block, range in blockSum(block, range) }
        try comm.allreduceSum(sums.buffer)
        forEachBlock { block, range in blockResult(block, range, into: gradients) }
    }

    /// m_b over this rank's chunks; NaN, which MPI's max would lose, as +∞ (no shift either way).
    private func blockMaximum(_ block: Int, _ range: Range<Int>) {
        let g = chunkGradients.pointer, P = layout.count
        var maximum: Float = 0
        for j in 0..<localChunks {
            let m = ExactSum.maximumMagnitude(g + j * P + range.lowerBound, count: range.count)
            maximum = m.isNaN ? .infinity : max(maximum, m)
        }
        maxima[block] = maximum
    }

    /// q over this rank's chunks, on the grid of the block's shift.
    private func blockSum(_ block: Int, _ range: Range<Int>) {
        let g = chunkGradients.pointer, P = layout.count, q = sums.pointer + range.lowerBound
        q.update(repeating: 0, count: range.count)
        guard let s = ExactSum.shift(maximum: maxima[block], addends: globalChunks) else { return }
        for j in 0..<localChunks {
            ExactSum.accumulate(g + j * P + range.lowerBound, count: range.count, shift: s, into: q)
        }
    }

    private func blockResult(_ block: Int, _ range: Range<Int>, into gradients: UnsafeMutablePointer<Float>) {
        ExactSum.result(sums.pointer + range.lowerBound, count: range.count,
                        shift: ExactSum.shift(maximum: maxima[block], addends: globalChunks), into: gradients + range.lowerBound)
    }

    /// `body(b, range)` for every block, split over the threads; each block's work is its own,
    /// so the split does not change the result.
    private func forEachBlock(_ body: (Int, Range<Int>) -> Void) {
        let P = layout.count, size = Self.blockSize
        parallelChunks(maxima.count, minimumChunk: 8) { blocks in
            for block in blocks { body(block, block * size..<min((block + 1) * size, P)) }
        }
    }
}
