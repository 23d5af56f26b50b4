import Foundation
import XBMKernels

/// The multi-similarity term (`MultiSimilarityTerm`) against references that take no gradient
/// (the cross-batch memory), without the b × R similarity matrix (Docs/losses.md, "The memory
/// term in one pass").
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
/// similarities noted with them, while the block's rows are still in cache; then V_i gets the
/// block's mined rows with V_i's elements held in registers (`accumulate`). The thresholds are
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
/// similarities alone. So they do not depend on the other anchors in its lanes, on how anchors
/// are split over threads, or over ranks (`memoryTermIsPerAnchor`).
final class MultiSimilarityStream: OnePassTerm {
    let term: MultiSimilarityTerm
    let tuning: PairLossTuning
    /// The anchors, 16 lanes to a group.
    private var packedAnchors = PackedAnchorLanes()
    /// (b, d): V⁺_i and V⁻_i.
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
        if positiveVectors.count < b * d {
            positiveVectors = FlatBuffer(count: b * d)
            negativeVectors = FlatBuffer(count: b * d)
        }
        if rows.count < b { rows = FlatBuffer(count: b, initialValue: MinedSums()) }
        positiveVectors.pointer.update(repeating: 0, count: b * d)
        negativeVectors.pointer.update(repeating: 0, count: b * d)
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
            withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: context.blockRows) { pairRows in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: context.blockRows) { pairWeights in
                for (slot, group) in groupRange.enumerated() {
                    (states.baseAddress! + slot).initialize(to: MinedGroup(context: context, group: group, noted: noted.baseAddress!,
                                                                          pairRows: pairRows.baseAddress!,
                                                                          pairWeights: pairWeights.baseAddress!))
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
            let dA = anchorGradient + i * d, p = positiveVectors.pointer + i * d, n = negativeVectors.pointer + i * d
            forEachVectorSlice(d) { k, lanes in
                let update = loadVector(dA + k, lanes: lanes)
                    + wn * loadVector(n + k, lanes: lanes) + wp * loadVector(p + k, lanes: lanes)
                storeVector(update, dA + k, lanes: lanes)
            }
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
    /// One anchor's mined pairs of the current block: their rows and e (room for a block).
    private let pairRows: UnsafeMutablePointer<UnsafePointer<Float>>
    private let pairWeights: UnsafeMutablePointer<Float>

    /// `noted`, `pairRows` and `pairWeights` have room for a block's rows each.
    init(context: MinedContext, group: Int, noted: UnsafeMutablePointer<MinedRow>,
         pairRows: UnsafeMutablePointer<UnsafePointer<Float>>, pairWeights: UnsafeMutablePointer<Float>) {
        self.context = context
        first = group * vectorWidth
        lanes = context.packedAnchors.lanes(group: group)
        laneLabels = LaneLabels(group: group, anchorCount: context.anchorCount, anchorLabels: context.anchorLabels,
                                ownIndex: context.ownIndex)
        self.noted = noted
        self.pairRows = pairRows
        self.pairWeights = pairWeights
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

    /// After a block, anchor by anchor (lane by lane): the running shift raised once to the
    /// block's largest mined exponent (pass 2), each mined pair's exponential into the anchor's
    /// sum (Double, column order), then V_i += Σ_j e_ij r_j with one fused multiply-add per
    /// element and pair, in column order, 64 elements of V_i held in registers across the pairs.
    /// (Added pair by pair into V_i in memory, a pair cost ~14 ns at 25% mined pairs, more
    /// than the product path's dense backward.)
    private mutating func endBlock(_ segment: ReferenceSegment) {
        defer { notedCount = 0 }
        guard notedCount > 0 else { return }
        let d = context.dimension, term = context.term, negatives = pass == .negatives
        let entries = UnsafeBufferPointer(start: noted, count: notedCount)
        var minedLanes: UInt16 = 0
        // The block's largest mined s per lane: x = β(s − λ) is increasing in s.
        var largest = FloatVector(repeating: -.infinity)
        for entry in entries {
            minedLanes |= entry.mined
            largest.replace(with: entry.similarities, where: laneMask(entry.mined) .& (largest .< entry.similarities))
        }
        while minedLanes != 0 {
            let lane = minedLanes.trailingZeroBitCount
            minedLanes &= minedLanes - 1
            let i = first + lane, bit = UInt16(1) << lane
            let vector = (negatives ? context.negativeVectors : context.positiveVectors) + i * d
            if negatives {
                let x = term.beta * (Double(largest[lane]) - term.lambda)
                if x > context.rows[i].negativeShift {
                    // The running shift rises: rescale what was summed under the old one.
                    let rescale = exp(context.rows[i].negativeShift - x)
                    context.rows[i].negativeSum *= rescale
                    let factor = Float(rescale)
                    forEachVectorSlice(d) { k, width in storeVector(factor * loadVector(vector + k, lanes: width), vector + k, lanes: width) }
                    context.rows[i].negativeShift = x
                }
            }
            var pairs = 0
            for entry in entries where entry.mined & bit != 0 {
                let row = Int(entry.row), s = Double(entry.similarities[lane])
                let e: Double
                if negatives {
                    e = exp(term.beta * (s - term.lambda) - context.rows[i].negativeShift)
                    context.rows[i].negativeSum += e
                    context.rows[i].negativeCount += 1
                    if context.hasStamps, let stamps = segment.stamps { context.rows[i].negativeAgeSum += Int(context.now &- stamps[row]) }
                } else {
                    e = exp(-term.alpha * (s - term.lambda) - context.rows[i].positiveShift)
                    context.rows[i].positiveSum += e
                    context.rows[i].positiveCount += 1
                }
                pairRows[pairs] = segment.embeddings + row * d
                pairWeights[pairs] = Float(e)
                pairs += 1
            }
            accumulate(into: vector, pairs: pairs)
        }
    }

    /// vector += Σ_m pairWeights[m] · pairRows[m] over the first `pairs`, in order: per element
    /// one fused multiply-add per pair, whatever the blocking of the elements.
    @inline(__always)
    private func accumulate(into vector: UnsafeMutablePointer<Float>, pairs: Int) {
        let d = context.dimension
        var k = 0
        while k + 4 * vectorWidth <= d {
            let v = vector + k
            var a0 = loadVector(v), a1 = loadVector(v + 16), a2 = loadVector(v + 32), a3 = loadVector(v + 48)
            for m in 0..<pairs {
                let r = pairRows[m] + k, w = pairWeights[m]
                a0 = a0.addingProduct(loadVector(r), w)
                a1 = a1.addingProduct(loadVector(r + 16), w)
                a2 = a2.addingProduct(loadVector(r + 32), w)
                a3 = a3.addingProduct(loadVector(r + 48), w)
            }
            storeVector(a0, v); storeVector(a1, v + 16); storeVector(a2, v + 32); storeVector(a3, v + 48)
            k += 4 * vectorWidth
        }
        while k < d {
            let width = min(vectorWidth, d - k)
            var a = loadVector(vector + k, lanes: width)
            for m in 0..<pairs { a = a.addingProduct(loadVector(pairRows[m] + k, lanes: width), pairWeights[m]) }
            storeVector(a, vector + k, lanes: width)
            k += vectorWidth
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
