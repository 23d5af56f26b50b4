import Foundation
import XBMKernels

/// The multi-similarity term (`MultiSimilarityTerm`) against references that take no gradient
/// (the cross-batch memory), without the b × R similarity matrix (Docs/losses.md, "The triplet
/// and multi-similarity memory terms in one pass").
///
/// Mining needs min_{p∈P_i} s_ip before any negative can be kept, and max_{n∈N_i} s_in before
/// any positive can. Positives are few (one label among many in the memory), so each anchor
/// group makes three passes over the references, 16 anchors (the lanes) × 4 references at a time:
///
///     1. the rows that are a positive of some lane (found by label, the others are not multiplied):
///            s⁺_i = min_{p∈P_i} s_ip,    negative floor  f_i = s⁺_i − μ
///     2. every row:
///            s⁻_i = max_{n∈N_i} s_in
///            for n ∈ Ñ_i = { n ∈ N_i : s_in > f_i }, with x_n = β(s_in − λ), in column order,
///            after each block of rows:
///                c_i ← max(c_i, the block's x_n)   (c_i starts at 0; when it rises, E⁻_i and V⁻_i
///                                                   are multiplied by e^{c_old − c_new})
///                E⁻_i += e^{x_n − c_i},   V⁻_i += e^{x_n − c_i} r_n
///        so that at the end c_i = max(0, β(s⁻_i − λ)), the product path's shift (the hardest
///        negative is mined whenever any negative is), and E⁻_i = Σ_{Ñ_i} e^{β(s_in−λ) − c_i}.
///     3. the positive rows again, ceiling u_i = s⁻_i + μ, shift c⁺_i = max(0, −α(s⁺_i − λ)):
///            for p ∈ P̃_i = { p ∈ P_i : s_ip < u_i }:  E⁺_i += e^{−α(s_ip−λ) − c⁺_i},  V⁺_i += e^{…} r_p
///     then, per anchor (nothing when P_i, N_i, P̃_i or Ñ_i is empty):
///         D⁺ = e^{−c⁺} + w_P E⁺,   D⁻ = e^{−c⁻} + w_N E⁻
///         ℓ_i = (c⁺ + log D⁺)/α + (c⁻ + log D⁻)/β
///         dA_i += scale · ( (w_N / D⁻) V⁻_i − (w_P / D⁺) V⁺_i )
///
/// which is `MultiSimilarityTerm`'s ℓ_i and ∂ℓ_i/∂a_i = Σ_j g_ij r_j, rearranged: g_ij is a
/// per-part factor times the pair's shifted exponential, so the factor can wait for the end.
/// The exponentials (Double) are taken only for the mined pairs, after each block, from the
/// similarities noted with them, while the block's rows are still in cache; then the block's
/// noted rows go into the 16 anchors' vectors at once, weighted by a tile of their e_ij (zero
/// where a lane is not mined): d multiply-adds per noted row rather than d per mined pair, four
/// times fewer at 25% mined pairs (`accumulate`; measured in Docs/performance.md). The thresholds are
/// Floats that decide the product path's Double comparisons exactly (`floatThreshold`).
/// The positive rows are multiplied three times: at 100 classes in the memory and 16 anchors
/// of a few classes per group, a few percent of the rows.
///
/// The active pairs recorded are the mined ones (the product path counts the g_ij ≠ 0, which
/// differ only if an exponential underflows Float, below 1e−45 of the largest).
///
/// Its results are the anchor's own: every s_ij is one chain of d fused multiply-adds in k
/// order whatever the other lanes hold, and every per-anchor quantity (extremes, shifts,
/// sums, vectors) runs over the references in column order and depends on that anchor's
/// similarities alone (a row noted for another lane adds an exact zero to this anchor's
/// vector: its weight in the tile is 0). So they do not depend on the other anchors in its lanes, on how anchors
/// are split over threads, or over ranks (`memoryTermIsPerAnchor`).
final class MultiSimilarityStream: OnePassTerm {
    let term: MultiSimilarityTerm
    let tuning: PairLossTuning
    /// The anchors, 16 lanes to a group.
    private var packedAnchors = PackedAnchorLanes()
    /// (groups, d, 16): V⁺_i and V⁻_i, element k of anchor 16g + lane at (g · d + k) · 16 + lane
    /// (the lanes of a group side by side, as the block's rows are added to all of them at once).
    private var positiveVectors = FlatBuffer<Float>(count: 0)
    private var negativeVectors = FlatBuffer<Float>(count: 0)
    /// (b) each anchor's extremes, shifts, sums and counts.
    private var rows = FlatBuffer<MinedSums>(count: 0, initialValue: MinedSums())
    /// Every row is computed in fp32 (the term has no screen).
    let lastRecomputedFraction = 1.0

    init(term: MultiSimilarityTerm, tuning: PairLossTuning = PairLossTuning()) {
        self.term = term
        self.tuning = tuning
    }

    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>, results: UnsafeMutablePointer<RowResult>) -> MemoryTermPath {
        let b = input.anchorCount, d = input.dimension, R = input.referenceCount
        let groups = (b + vectorWidth - 1) / vectorWidth
        packedAnchors.pack(input.anchors, count: b, dimension: d)
        let vectorCount = groups * vectorWidth * d
        if positiveVectors.count < vectorCount {
            positiveVectors = FlatBuffer(count: vectorCount)
            negativeVectors = FlatBuffer(count: vectorCount)
        }
        if rows.count < b { rows = FlatBuffer(count: b, initialValue: MinedSums()) }
        positiveVectors.pointer.update(repeating: 0, count: vectorCount)
        negativeVectors.pointer.update(repeating: 0, count: vectorCount)
        rows.pointer.update(repeating: MinedSums(), count: b)

        let segments = input.references
        let context = MinedContext(
            anchorCount: b, dimension: d, term: term, packedAnchors: packedAnchors, anchorLabels: input.anchorLabels,
            ownIndex: input.ownIndex, positiveVectors: positiveVectors.pointer, negativeVectors: negativeVectors.pointer,
            rows: rows.pointer, now: Int32(clamping: input.now), hasStamps: segments.allSatisfy { $0.stamps != nil },
            blockRows: PackedAnchorLanes.blockRows(dimension: d), prefetchRows: PackedAnchorLanes.prefetchRows(dimension: d))
        // Groups are split over the threads; each thread makes the three passes over the
        // references, block by block, every group of the thread reading a block while it is in
        // cache. The states, the notes and the lists live on the thread's stack.
        parallelChunks(groups, minimumChunk: max(1, tuning.rowsWorkPerThread / max(vectorWidth * R, 1))) { groupRange in
            withUnsafeTemporaryAllocation(of: MinedGroup.self, capacity: groupRange.count) { states in
            withUnsafeTemporaryAllocation(of: MinedRow.self, capacity: context.blockRows) { noted in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: context.blockRows) { listed in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: context.blockRows * vectorWidth) { weights in
                for (slot, group) in groupRange.enumerated() {
                    (states.baseAddress! + slot).initialize(to: MinedGroup(context: context, group: group, noted: noted.baseAddress!,
                                                                          weights: weights.baseAddress!))
                }
                func run(_ pass: MinedPass) {
                    for slot in states.indices { states[slot].begin(pass) }
                    forEachReferenceBlock(segments, blockRows: context.blockRows) { segment, rows, column in
                        for slot in states.indices {
                            states[slot].consume(segment, rows: rows, firstColumn: column, prefetch: slot == 0,
                                                 listed: listed.baseAddress!)
                        }
                    }
                }
                run(.positiveMinimum)
                run(.negatives)
                run(.positives)
                for slot in states.indices { states[slot].finish() }
                _ = states.deinitialize()
            }
            }
            }
            }
        }

        let alpha = term.alpha, beta = term.beta
        for i in 0..<b {
            let row = rows[i]
            var result = RowResult(loss: 0, hardestNegative: row.hardestNegative, hardestPositive: row.hardestPositive)
            defer { results[i] = result }
            guard row.hardestPositive.isFinite, row.hardestNegative.isFinite,
                  row.positiveCount > 0, row.negativeCount > 0 else { continue }
            let positiveWeight = reduction == .mean ? 1 / Double(row.positiveCount) : 1
            let negativeWeight = reduction == .mean ? 1 / Double(row.negativeCount) : 1
            // 1 + w Σ e^x = e^c · (e^{−c} + w Σ e^{x−c})
            let positiveDenominator = exp(-row.positiveShift) + positiveWeight * row.positiveSum
            let negativeDenominator = exp(-row.negativeShift) + negativeWeight * row.negativeSum
            result.loss = (row.positiveShift + log(positiveDenominator)) / alpha
                        + (row.negativeShift + log(negativeDenominator)) / beta
            result.activePositives = row.positiveCount
            result.activeNegatives = row.negativeCount
            result.activeNegativeAgeSum = row.negativeAgeSum
            let wp = scale * Float(-positiveWeight / positiveDenominator), wn = scale * Float(negativeWeight / negativeDenominator)
            let dA = anchorGradient + i * d, column = (i / vectorWidth) * d * vectorWidth + i % vectorWidth
            let p = positiveVectors.pointer + column, n = negativeVectors.pointer + column
            for k in 0..<d { dA[k] = dA[k] + wn * n[k * vectorWidth] + wp * p[k * vectorWidth] }
        }
        return .onePass
    }
}

/// One anchor's part of the three passes.
struct MinedSums: BitwiseCopyable {
    /// min_{p∈P_i} s_ip (+∞ without a positive) and max_{n∈N_i} s_in (−∞ without a negative).
    var hardestPositive: Float = .infinity, hardestNegative: Float = -.infinity
    /// c⁺_i, c⁻_i: the shifts of the two log-sums (c⁻_i the running one during pass 2).
    var positiveShift = 0.0, negativeShift = 0.0
    /// E⁺_i, E⁻_i: Σ of the mined pairs' shifted exponentials.
    var positiveSum = 0.0, negativeSum = 0.0
    /// |P̃_i|, |Ñ_i|, and Σ (now − stamp) over Ñ_i when every segment has stamps.
    var positiveCount = 0, negativeCount = 0, negativeAgeSum = 0
}

/// The passes of `MultiSimilarityStream` (its documentation numbers them 1, 2, 3).
private enum MinedPass {
    case positiveMinimum, negatives, positives
}

/// A reference row with at least one mined lane: bit `lane` of `mined` for each, and the 16
/// similarities (the exponentials are taken from them after the block).
private struct MinedRow {
    var similarities: FloatVector
    var row: Int32
    var mined: UInt16
}

/// What every group of one evaluation shares (plain pointers, so the threads can hold it).
private struct MinedContext: @unchecked Sendable {
    let anchorCount: Int, dimension: Int
    let term: MultiSimilarityTerm
    let packedAnchors: PackedAnchorLanes
    let anchorLabels: UnsafePointer<Int32>
    let ownIndex: UnsafePointer<Int32>?
    let positiveVectors: UnsafeMutablePointer<Float>, negativeVectors: UnsafeMutablePointer<Float>
    let rows: UnsafeMutablePointer<MinedSums>
    let now: Int32
    /// Whether every segment has stamps (the ages are summed only then).
    let hasStamps: Bool
    let blockRows: Int, prefetchRows: Int
}

/// The lanes of one group of 16 anchors through the three passes.
private struct MinedGroup: LaneStreamState {
    let context: MinedContext
    let first: Int
    let lanes: AnchorLanes
    let laneLabels: LaneLabels
    var pass = MinedPass.positiveMinimum
    var hardestPositive = FloatVector(repeating: .infinity), hardestNegative = FloatVector(repeating: -.infinity)
    /// Pass 2: a negative is mined where s > this (f_i as a Float; +∞ without a positive).
    var negativeThreshold = FloatVector(repeating: .infinity)
    /// Pass 3: a positive is mined where s < this (u_i as a Float; −∞ without a negative).
    var positiveThreshold = FloatVector(repeating: -.infinity)
    /// The rows of the current block with a mined lane.
    private var noted: UnsafeMutablePointer<MinedRow>
    private var notedCount = 0
    /// (block rows, 16): the noted rows' e_ij, zero for the lanes not mined.
    private let weights: UnsafeMutablePointer<Float>

    /// `noted` has room for a block's rows, `weights` for 16 floats per row.
    init(context: MinedContext, group: Int, noted: UnsafeMutablePointer<MinedRow>, weights: UnsafeMutablePointer<Float>) {
        self.context = context
        first = group * vectorWidth
        lanes = context.packedAnchors.lanes(group: group)
        laneLabels = LaneLabels(group: group, anchorCount: context.anchorCount, anchorLabels: context.anchorLabels,
                                ownIndex: context.ownIndex)
        self.noted = noted
        self.weights = weights
    }

    /// Sets the thresholds the pass needs from the passes before it.
    mutating func begin(_ pass: MinedPass) {
        self.pass = pass
        let mu = context.term.mu
        for lane in 0..<laneLabels.count {
            switch pass {
            case .positiveMinimum:
                break
            case .negatives:
                let minimum = hardestPositive[lane]
                negativeThreshold[lane] = minimum.isFinite ? floatThreshold(above: Double(minimum) - mu) : .infinity
            case .positives:
                let maximum = hardestNegative[lane]
                positiveThreshold[lane] = maximum.isFinite ? floatThreshold(below: Double(maximum) + mu) : -.infinity
                let minimum = hardestPositive[lane]
                if minimum.isFinite {
                    context.rows[first + lane].positiveShift = max(0, -context.term.alpha * (Double(minimum) - context.term.lambda))
                }
            }
        }
    }

    /// Rows `rows` of `segment` (its first row column `firstColumn` of the loss) in this pass:
    /// every row for the negatives (prefetching ahead with `prefetch`), the rows that are a
    /// positive of some lane, listed in `listed` (room for a block), for the others.
    mutating func consume(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetch: Bool,
                          listed: UnsafeMutablePointer<Int32>) {
        if pass == .negatives {
            stream(segment, rows: rows, firstColumn: firstColumn, prefetchRows: prefetch ? context.prefetchRows : nil)
        } else {
            let count = laneLabels.listPositives(segment, rows: rows, firstColumn: firstColumn, into: listed)
            stream(segment, listed: listed, count: count, firstColumn: firstColumn)
        }
        endBlock(segment)
    }

    @inline(__always)
    mutating func take(_ s: FloatVector, _ segment: ReferenceSegment, row: Int, column: Int) {
        let (positive, negative) = laneLabels.pairs(label: segment.labels[row], column: column)
        let mined: SIMDMask<LabelVector>
        switch pass {
        case .positiveMinimum:
            hardestPositive.replace(with: s, where: positive .& (s .< hardestPositive))
            return
        case .negatives:
            hardestNegative.replace(with: s, where: negative .& (hardestNegative .< s))
            mined = negative .& (s .> negativeThreshold)
        case .positives:
            mined = positive .& (s .< positiveThreshold)
        }
        // Every row is written; the count moves past it only if a lane is mined (no branch).
        let bits = laneBits(mined)
        noted[notedCount] = MinedRow(similarities: s, row: Int32(truncatingIfNeeded: row), mined: bits)
        notedCount += bits != 0 ? 1 : 0
    }

    /// After a block: anchor by anchor (lane by lane), the running shift raised once to the
    /// block's largest mined exponent (pass 2) and each mined pair's exponential into the
    /// anchor's sum (Double, column order) and the block's tile of weights; then the noted rows
    /// into the 16 anchors' vectors at once (`accumulate`).
    private mutating func endBlock(_ segment: ReferenceSegment) {
        defer { notedCount = 0 }
        guard notedCount > 0 else { return }
        let d = context.dimension, term = context.term, negatives = pass == .negatives
        let entries = UnsafeBufferPointer(start: noted, count: notedCount)
        let vectors = (negatives ? context.negativeVectors : context.positiveVectors) + first * d
        var minedLanes: UInt16 = 0
        for (index, entry) in entries.enumerated() {
            minedLanes |= entry.mined
            storeVector(.zero, weights + index * vectorWidth)
        }
        var rescale = FloatVector(repeating: 1), rescaled = false
        while minedLanes != 0 {
            let lane = minedLanes.trailingZeroBitCount
            minedLanes &= minedLanes - 1
            let i = first + lane, bit = UInt16(1) << lane
            if negatives {
                // x = β(s − λ) increases with s: the block's largest x is that of its largest s.
                var largest = -Float.infinity
                for entry in entries where entry.mined & bit != 0 { largest = max(largest, entry.similarities[lane]) }
                let x = term.beta * (Double(largest) - term.lambda)
                if x > context.rows[i].negativeShift {
                    // The running shift rises: rescale what was summed under the old one.
                    let factor = exp(context.rows[i].negativeShift - x)
                    context.rows[i].negativeSum *= factor
                    rescale[lane] = Float(factor)
                    rescaled = true
                    context.rows[i].negativeShift = x
                }
            }
            for (index, entry) in entries.enumerated() where entry.mined & bit != 0 {
                let s = Double(entry.similarities[lane])
                let e: Double
                if negatives {
                    e = exp(term.beta * (s - term.lambda) - context.rows[i].negativeShift)
                    context.rows[i].negativeSum += e
                    context.rows[i].negativeCount += 1
                    if context.hasStamps, let stamps = segment.stamps {
                        context.rows[i].negativeAgeSum += Int(context.now &- stamps[Int(entry.row)])
                    }
                } else {
                    e = exp(-term.alpha * (s - term.lambda) - context.rows[i].positiveShift)
                    context.rows[i].positiveSum += e
                    context.rows[i].positiveCount += 1
                }
                weights[index * vectorWidth + lane] = Float(e)
            }
        }
        if rescaled { for k in 0..<d { storeVector(rescale * loadVector(vectors + k * vectorWidth), vectors + k * vectorWidth) } }
        accumulate(into: vectors, entries, segment)
    }

    /// V[k] += w_j · r_jk for the noted rows j in order, V (d, 16) the group's vectors and w_j
    /// the row's 16 weights: per anchor and element one fused multiply-add per pair in column
    /// order (a lane with w = 0 adds an exact 0), d multiply-adds per noted row for all 16
    /// anchors. Eight elements at a time, so that eight chains are in flight.
    @inline(__always)
    private func accumulate(into vectors: UnsafeMutablePointer<Float>, _ entries: UnsafeBufferPointer<MinedRow>,
                            _ segment: ReferenceSegment) {
        let d = context.dimension, count = entries.count, embeddings = segment.embeddings
        var k = 0
        while k + 8 <= d {
            let v = vectors + k * vectorWidth
            var a0 = loadVector(v), a1 = loadVector(v + 16), a2 = loadVector(v + 32), a3 = loadVector(v + 48)
            var a4 = loadVector(v + 64), a5 = loadVector(v + 80), a6 = loadVector(v + 96), a7 = loadVector(v + 112)
            for index in 0..<count {
                let w = loadVector(weights + index * vectorWidth), r = embeddings + Int(entries[index].row) * d + k
                a0 = a0.addingProduct(w, r[0]); a1 = a1.addingProduct(w, r[1])
                a2 = a2.addingProduct(w, r[2]); a3 = a3.addingProduct(w, r[3])
                a4 = a4.addingProduct(w, r[4]); a5 = a5.addingProduct(w, r[5])
                a6 = a6.addingProduct(w, r[6]); a7 = a7.addingProduct(w, r[7])
            }
            storeVector(a0, v); storeVector(a1, v + 16); storeVector(a2, v + 32); storeVector(a3, v + 48)
            storeVector(a4, v + 64); storeVector(a5, v + 80); storeVector(a6, v + 96); storeVector(a7, v + 112)
            k += 8
        }
        while k < d {
            let v = vectors + k * vectorWidth
            var a = loadVector(v)
            for index in 0..<count {
                a = a.addingProduct(loadVector(weights + index * vectorWidth), embeddings[Int(entries[index].row) * d + k])
            }
            storeVector(a, v)
            k += 1
        }
    }

    /// Writes the lanes' extremes into their anchors' rows.
    func finish() {
        for lane in 0..<laneLabels.count {
            context.rows[first + lane].hardestPositive = hardestPositive[lane]
            context.rows[first + lane].hardestNegative = hardestNegative[lane]
        }
    }
}
