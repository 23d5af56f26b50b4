import XBMKernels

/// The batch-hard triplet term (`TripletTerm`) against references that take no gradient (the
/// cross-batch memory), without the b × R similarity matrix (Docs/losses.md, "The triplet
/// and multi-similarity memory terms in one pass"):
///
///     for 16 anchors (the lanes) × 4 references j at a time, j in order:
///         s_j = Σ_k a_k · r_jk                          (`AnchorLanes`: one chain of d FMAs per lane)
///         n*_i, s_in* ← j, s_ij   where j ∈ N_i and s_ij > s_in*      (lane-wise, strict: first index on ties)
///         p*_i, s_ip* ← j, s_ij   where j ∈ P_i and s_ij < s_ip*
///     then, per anchor:   ℓ_i = [ s_in* − s_ip* + m ]_+
///                         dA_i += scale · (r_n* − r_p*)      when the hinge is active
///
/// The gradient touches two rows per anchor (read again at the end, in column order, as the
/// product path's sparse backward adds them); the b × R matrix is never written. An anchor
/// without a positive or a negative contributes 0, and its own entry is neither.
///
/// Its results are the anchor's own: every s_ij is one chain of d fused multiply-adds in k
/// order whatever the other lanes hold, the lane-wise extremes see the references in column
/// order, and the gradient adds the anchor's two rows alone. So they do not depend on the
/// other anchors in its lanes, on how anchors are split over threads, or over ranks
/// (`memoryTermIsPerAnchor`).
final class TripletStream: OnePassTerm {
    let term: TripletTerm
    let tuning: PairLossTuning
    /// The anchors, 16 lanes to a group.
    private var packedAnchors = PackedAnchorLanes()
    /// (b) each anchor's hardest positive and negative, as the stream left them.
    private var hardest = FlatBuffer<HardestPairs>(count: 0, initialValue: HardestPairs())
    /// Every row is computed in fp32 (the term has no screen).
    let lastRecomputedFraction = 1.0

    init(term: TripletTerm, tuning: PairLossTuning = PairLossTuning()) {
        self.term = term
        self.tuning = tuning
    }

    /// Anchor `i`'s hardest pairs in the last evaluation (the tests compare the indices).
    func hardestPairs(ofAnchor i: Int) -> HardestPairs { hardest[i] }

    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>, results: UnsafeMutablePointer<RowResult>) -> MemoryTermPath {
        let b = input.anchorCount, d = input.dimension, R = input.referenceCount
        let groups = (b + vectorWidth - 1) / vectorWidth
        packedAnchors.pack(input.anchors, count: b, dimension: d)
        if hardest.count < b { hardest = FlatBuffer(count: b, initialValue: HardestPairs()) }
        let context = TripletContext(anchorCount: b, packedAnchors: packedAnchors, anchorLabels: input.anchorLabels,
                                     ownIndex: input.ownIndex, hardest: hardest.pointer)
        let segments = input.references
        let blockRows = PackedAnchorLanes.blockRows(dimension: d), prefetchRows = PackedAnchorLanes.prefetchRows(dimension: d)
        // Groups are split over the threads; each thread streams all references once, block by
        // block, every group of the thread reading a block while it is in cache.
        parallelChunks(groups, minimumChunk: max(1, tuning.rowsWorkPerThread / max(vectorWidth * R, 1))) { groupRange in
            withUnsafeTemporaryAllocation(of: TripletGroup.self, capacity: groupRange.count) { states in
                for (slot, group) in groupRange.enumerated() {
                    (states.baseAddress! + slot).initialize(to: TripletGroup(context: context, group: group))
                }
                forEachReferenceBlock(segments, blockRows: blockRows) { segment, rows, column in
                    for slot in states.indices {
                        states[slot].stream(segment, rows: rows, firstColumn: column, prefetchRows: slot == 0 ? prefetchRows : nil)
                    }
                }
                for slot in states.indices { states[slot].finish() }
                _ = states.deinitialize()
            }
        }

        let hasStamps = segments.allSatisfy { $0.stamps != nil }, now = Int32(clamping: input.now)
        for i in 0..<b {
            let pairs = hardest[i]
            var result = RowResult(loss: 0, hardestNegative: pairs.negative, hardestPositive: pairs.positive)
            if pairs.negativeColumn >= 0, pairs.positiveColumn >= 0 {
                let hinge = Double(pairs.negative) - Double(pairs.positive) + term.margin
                if hinge > 0 {
                    let negative = referenceRow(column: Int(pairs.negativeColumn), of: segments, dimension: d)
                    let positive = referenceRow(column: Int(pairs.positiveColumn), of: segments, dimension: d)
                    // g = +1 at n*, −1 at p*, added in column order.
                    let dA = anchorGradient + i * d
                    func add(_ r: UnsafePointer<Float>, _ weight: Float) { for k in 0..<d { dA[k] += weight * r[k] } }
                    if pairs.negativeColumn < pairs.positiveColumn {
                        add(negative.row, scale); add(positive.row, -scale)
                    } else {
                        add(positive.row, -scale); add(negative.row, scale)
                    }
                    result.loss = hinge
                    result.activePositives = 1
                    result.activeNegatives = 1
                    if hasStamps, let stamp = negative.stamp { result.activeNegativeAgeSum = Int(now &- stamp) }
                }
            }
            results[i] = result
        }
        return .onePass
    }
}

/// One anchor's hardest pairs: s_in* and n* (−∞ and −1 without a negative), s_ip* and p*
/// (+∞ and −1 without a positive), columns of the concatenated references.
struct HardestPairs: BitwiseCopyable {
    var negative: Float = -.infinity, positive: Float = .infinity
    var negativeColumn: Int32 = -1, positiveColumn: Int32 = -1
}

/// What every group of one evaluation shares (plain pointers, so the threads can hold it).
private struct TripletContext: @unchecked Sendable {
    let anchorCount: Int
    let packedAnchors: PackedAnchorLanes
    let anchorLabels: UnsafePointer<Int32>
    let ownIndex: UnsafePointer<Int32>?
    let hardest: UnsafeMutablePointer<HardestPairs>
}

/// The lane-wise hardest pairs of one group of 16 anchors.
private struct TripletGroup: LaneStreamState {
    let context: TripletContext
    let first: Int
    let lanes: AnchorLanes
    let laneLabels: LaneLabels
    var hardestNegative = FloatVector(repeating: -.infinity), hardestPositive = FloatVector(repeating: .infinity)
    var negativeColumn = LabelVector(repeating: -1), positiveColumn = LabelVector(repeating: -1)

    init(context: TripletContext, group: Int) {
        self.context = context
        first = group * vectorWidth
        lanes = context.packedAnchors.lanes(group: group)
        laneLabels = LaneLabels(group: group, anchorCount: context.anchorCount, anchorLabels: context.anchorLabels,
                                ownIndex: context.ownIndex)
    }

    @inline(__always)
    mutating func take(_ s: FloatVector, _ segment: ReferenceSegment, row: Int, column: Int) {
        let (positive, negative) = laneLabels.pairs(label: segment.labels[row], column: column)
        let here = LabelVector(repeating: Int32(truncatingIfNeeded: column))
        // Strict comparisons: a tie keeps the earlier column, and a NaN never wins.
        let harderNegative = negative .& (hardestNegative .< s), harderPositive = positive .& (s .< hardestPositive)
        hardestNegative.replace(with: s, where: harderNegative)
        negativeColumn.replace(with: here, where: harderNegative)
        hardestPositive.replace(with: s, where: harderPositive)
        positiveColumn.replace(with: here, where: harderPositive)
    }

    func finish() {
        for lane in 0..<laneLabels.count {
            context.hardest[first + lane] = HardestPairs(negative: hardestNegative[lane], positive: hardestPositive[lane],
                                                         negativeColumn: negativeColumn[lane], positiveColumn: positiveColumn[lane])
        }
    }
}
