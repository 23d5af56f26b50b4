import XBMKernels
/// The contrastive term against references that take no gradient (the cross-batch memory),
/// without the b × R similarity matrix (Docs/losses.md, "The contrastive memory term in one pass").
///
/// Contrastive pairs are independent: whether (i, j) is active, what it adds to ℓ_i and
/// g_ij = ∓1 depend on s_ij and the two labels alone (`.mean` divides each side by a per-anchor
/// count at the end). So each similarity is used once, the moment it is computed:
///
///     for 16 anchors (the lanes) × 4 references j at a time:
///         s_j = Σ_k a_k · r_jk              (16 lanes, d fused multiply-adds, in registers)
///         hardest negative / positive       lane-wise max / min
///         Σ (1 − s) over active positives,  Σ s over active negatives      (lane sums)
///         note j if a lane is active (a branch-free append of its lane bits)
///         prefetch the 4 references 16 ahead (~8 KiB: the memory comes from DRAM)
///     after each block of references, while it is still in cache:
///         P_i += r_j  or  N_i += r_j        for the noted (i, j) (a few percent of the pairs)
///     then, per anchor:  ℓ_i = w⁺ Σ(1 − s) + w⁻ Σ s,   dA_i += scale · (w⁻ N_i − w⁺ P_i)
///
/// with w⁺ = w⁻ = 1 (`.sum`), or w⁺ = 1/|active positives|, w⁻ = 1/|active negatives| (`.mean`).
/// The b × R matrix is never written, zeroed or read back, the references are not packed
/// (each r_jk is broadcast straight from its row), and the backward touches only the active
/// pairs' rows while they are still in cache: at M = 16,384 this is several times cheaper
/// than the product into S and the passes over it (Docs/performance.md). The active pairs
/// are noted rather than added on the spot: a branch taken for a third of the rows (at 2%
/// active pairs) and a call that spills the accumulators cost more than the additions.
///
/// Every s_ij is one chain of d fused multiply-adds in k order, and every per-anchor sum runs
/// over j in order, so an anchor's results do not depend on the other anchors in its lanes,
/// on how anchors are split over threads, or on how they are split over ranks.
///
/// Screened (`PairLossTuning.screening`, references with bf16 rows; Docs/losses.md, "Exact
/// screening of the memory term"): for each block, a bf16 kernel computes ŝ for the 16 lanes
/// × every row, and a row is recomputed exactly as above only if one of its lanes may matter:
///
///     positive (by label)                              always (few, and all feed the hardest positive)
///     negative with ŝ + β > m                          may be active: s ≤ ŝ + β
///     negative with ŝ + β ≥ F, F = max so far of ŝ − β  may be the hardest negative: F ≤ max s
///
/// (β_ij = α_i ρ_j + τ ≥ |s_ij − ŝ_ij|, `ScreeningBound`). A skipped row's pairs are inactive and
/// below the hardest negative, so in the one pass they add exact zeros and move no extreme:
/// the recomputed rows, taken in order with the same chains, give the same bits.
final class ContrastiveStream: OnePassTerm {
    let term: ContrastiveTerm
    let tuning: PairLossTuning
    /// The anchors, 16 lanes to a group.
    private var packedAnchors = PackedAnchorLanes()
    /// (b, d): Σ r_j over each anchor's active positives / active negatives.
    private var positiveSums = FlatBuffer<Float>(count: 0)
    private var negativeSums = FlatBuffer<Float>(count: 0)
    /// (b) what each anchor's row gave (counts and ages are filled as pairs turn up).
    private var rows = FlatBuffer<StreamedRow>(count: 0, initialValue: StreamedRow())
    /// (groups, stride / 2, 16, 2) the anchors in bf16, one screening panel per group.
    private var panels = FlatBuffer<UInt16>(count: 0)
    /// (groups, 16) α_i ≥ C_d ‖a_i‖, zero beyond the last anchor.
    private var anchorFactors = FlatBuffer<Float>(count: 0)
    /// (groups) rows each group recomputed in fp32 (all of them without screening).
    private var recomputedRows = FlatBuffer<Int>(count: 0)
    /// The share of the (anchor group, row) pairs of the last evaluation computed in fp32: 1 without
    /// screening; what the screen saved with it (the tests check it is not vacuous).
    private(set) var lastRecomputedFraction = 0.0

    init(term: ContrastiveTerm, tuning: PairLossTuning = PairLossTuning()) {
        if let kernel = tuning.screening, let problem = kernel.problem() { preconditionFailure(problem) }
        self.term = term
        self.tuning = tuning
    }

    /// `scale` · ∂/∂a_i added into `anchorGradient`; `results[i]` receives the anchor's loss
    /// and pair statistics.
    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>, results: UnsafeMutablePointer<RowResult>) -> MemoryTermPath {
        let b = input.anchorCount, d = input.dimension, R = input.referenceCount
        let groups = (b + vectorWidth - 1) / vectorWidth
        reserve(anchors: b, groups: groups, dimension: d)
        packedAnchors.pack(input.anchors, count: b, dimension: d)
        let screening = screeningPlan(input, groups: groups)
        positiveSums.pointer.update(repeating: 0, count: b * d)
        negativeSums.pointer.update(repeating: 0, count: b * d)
        rows.pointer.update(repeating: StreamedRow(), count: b)

        let hasStamps = input.references.allSatisfy { $0.stamps != nil }
        let context = StreamContext(
            anchorCount: b, dimension: d, positiveLimit: Float(1 - term.epsilon), margin: Float(term.margin),
            packedAnchors: packedAnchors, anchorLabels: input.anchorLabels, ownIndex: input.ownIndex,
            positiveSums: positiveSums.pointer, negativeSums: negativeSums.pointer, rows: rows.pointer,
            now: Int32(clamping: input.now), hasStamps: hasStamps, blockRows: PackedAnchorLanes.blockRows(dimension: d),
            prefetchRows: PackedAnchorLanes.prefetchRows(dimension: d), screening: screening, recomputedRows: recomputedRows.pointer)
        let segments = input.references
        // Groups are split over the threads; each thread streams all references once, block by
        // block. The groups' states live on the thread's stack: the steady-state step allocates
        // nothing here (nor do the screen's tile of ŝ and list of kept rows).
        parallelChunks(groups, minimumChunk: max(1, tuning.rowsWorkPerThread / max(vectorWidth * R, 1))) { groupRange in
            withUnsafeTemporaryAllocation(of: GroupState.self, capacity: groupRange.count) { states in
            withUnsafeTemporaryAllocation(of: ActiveRow.self, capacity: context.blockRows) { noted in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: screening == nil ? 0 : context.blockRows * vectorWidth) { tile in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: screening == nil ? 0 : context.blockRows) { kept in
                for (slot, group) in groupRange.enumerated() {
                    (states.baseAddress! + slot).initialize(to: GroupState(context: context, group: group, noted: noted.baseAddress!))
                }
                forEachReferenceBlock(segments, blockRows: context.blockRows) { segment, rows, column in
                    // The first group reads the block from memory, the others from cache.
                    for slot in states.indices {
                        if screening != nil {
                            states[slot].consumeScreened(segment, rows: rows, firstColumn: column, prefetch: slot == 0,
                                                         tile: tile.baseAddress!, kept: kept.baseAddress!)
                        } else {
                            states[slot].consume(segment, rows: rows, firstColumn: column, prefetch: slot == 0)
                        }
                    }
                }
                for slot in states.indices { states[slot].finish() }
                _ = states.deinitialize()
            }
            }
            }
            }
        }

        for i in 0..<b {
            let row = rows[i]
            let positiveWeight = reduction == .mean ? 1 / Double(max(row.activePositives, 1)) : 1
            let negativeWeight = reduction == .mean ? 1 / Double(max(row.activeNegatives, 1)) : 1
            let wp = scale * Float(positiveWeight), wn = scale * Float(negativeWeight)
            let dA = anchorGradient + i * d, p = positiveSums.pointer + i * d, n = negativeSums.pointer + i * d
            forEachVectorSlice(d) { k, lanes in
                let update = loadVector(dA + k, lanes: lanes)
                    + wn * loadVector(n + k, lanes: lanes) - wp * loadVector(p + k, lanes: lanes)
                storeVector(update, dA + k, lanes: lanes)
            }
            results[i] = RowResult(loss: positiveWeight * row.positiveSum + negativeWeight * row.negativeSum,
                                   hardestNegative: row.hardestNegative, hardestPositive: row.hardestPositive,
                                   activePositives: row.activePositives, activeNegatives: row.activeNegatives,
                                   activeNegativeAgeSum: row.activeNegativeAgeSum)
        }
        var recomputed = 0
        for group in 0..<groups { recomputed += recomputedRows[group] }
        lastRecomputedFraction = R > 0 ? Double(recomputed) / Double(groups * R) : 0
        return screening.map { .screened($0.kernel) } ?? .onePass
    }

    /// The screen for this evaluation, or nil for the fp32 one pass: when screening is off, a
    /// segment has no bf16 rows, d is beyond the bound's proof, or an anchor's norm is not finite
    /// or too large for the bound's absolute term. Packs the anchors' panels and their α.
    private func screeningPlan(_ input: PairLossInput, groups: Int) -> ScreeningContext? {
        let d = input.dimension, stride = BF16.stride(dimension: d)
        guard let kernel = tuning.screening, d <= ScreeningBound.maximumDimension,
              input.references.allSatisfy({ $0.lowPrecision?.stride == stride }) else { return nil }
        let panelSize = stride * vectorWidth
        if panels.count < groups * panelSize { panels = FlatBuffer(count: groups * panelSize) }
        if anchorFactors.count < groups * vectorWidth { anchorFactors = FlatBuffer(count: groups * vectorWidth) }
        let b = input.anchorCount
        anchorFactors.pointer.update(repeating: 0, count: groups * vectorWidth)
        for i in 0..<b {
            let alpha = ScreeningBound.anchorFactor(input.anchors + i * d, dimension: d)
            guard alpha.isFinite else { return nil }
            anchorFactors[i] = alpha
        }
        for group in 0..<groups {
            let first = group * vectorWidth
            packScreeningPanel(input.anchors + first * d, count: min(vectorWidth, b - first), dimension: d,
                               into: panels.pointer + group * panelSize)
        }
        return ScreeningContext(kernel: kernel, panels: panels.pointer, panelSize: panelSize,
                                anchorFactors: anchorFactors.pointer)
    }

    private func reserve(anchors b: Int, groups: Int, dimension d: Int) {
        if positiveSums.count < b * d {
            positiveSums = FlatBuffer(count: b * d)
            negativeSums = FlatBuffer(count: b * d)
        }
        if rows.count < b { rows = FlatBuffer(count: b, initialValue: StreamedRow()) }
        if recomputedRows.count < groups { recomputedRows = FlatBuffer(count: groups) }
    }
}

/// One anchor's sums as the references stream past.
struct StreamedRow: BitwiseCopyable {
    var positiveSum = 0.0, negativeSum = 0.0
    var hardestNegative: Float = -.infinity, hardestPositive: Float = .infinity
    var activePositives = 0, activeNegatives = 0, activeNegativeAgeSum = 0
}

/// A reference row with at least one active lane: bit `lane` of `active` for each active
/// pair, of `positive` for those that are positives.
private struct ActiveRow {
    var row: Int32
    var active: UInt16, positive: UInt16
}

/// The screen's share of the context: the kernel, the anchors' bf16 panels and their α.
private struct ScreeningContext {
    let kernel: ScreeningKernel
    let panels: UnsafePointer<UInt16>
    /// UInt16s per panel: stride · 16.
    let panelSize: Int
    let anchorFactors: UnsafePointer<Float>
}

/// What every group of one evaluation shares (plain pointers, so the threads can hold it).
private struct StreamContext: @unchecked Sendable {
    let anchorCount: Int, dimension: Int
    /// 1 − ε and m: a positive is active below the first, a negative above the second.
    let positiveLimit: Float, margin: Float
    let packedAnchors: PackedAnchorLanes
    let anchorLabels: UnsafePointer<Int32>
    let ownIndex: UnsafePointer<Int32>?
    let positiveSums: UnsafeMutablePointer<Float>, negativeSums: UnsafeMutablePointer<Float>
    let rows: UnsafeMutablePointer<StreamedRow>
    let now: Int32
    /// Whether every segment has stamps (the ages are summed only then).
    let hasStamps: Bool
    let blockRows: Int, prefetchRows: Int
    /// Non-nil when the references are screened.
    let screening: ScreeningContext?
    /// (groups) where each group leaves the number of rows it computed in fp32.
    let recomputedRows: UnsafeMutablePointer<Int>
}

/// The lanes of one group of 16 anchors: their labels and own columns, and the lane-wise
/// running sums, extremes and the Double totals they are flushed into after each block.
private struct GroupState: LaneStreamState {
    let context: StreamContext
    let first: Int
    let lanes: AnchorLanes
    /// The lanes' labels and own columns. Lanes without an anchor are neither positives nor
    /// negatives of anything: that keeps the empty lanes of a partial group (zero anchors) out
    /// of the active-pair path.
    let laneLabels: LaneLabels
    /// The rows of the current block with an active lane.
    private var notes: Notes
    var hardestNegative = FloatVector(repeating: -.infinity), hardestPositive = FloatVector(repeating: .infinity)
    var positiveSum = FloatVector.zero, negativeSum = FloatVector.zero
    var positiveTotal = SIMD16<Double>.zero, negativeTotal = SIMD16<Double>.zero
    /// Screened: F, the lane-wise max of ŝ − β over the negatives screened so far (≤ max s).
    var negativeFloor = FloatVector(repeating: -.infinity)
    /// Rows computed in fp32 so far.
    var recomputed = 0

    /// `noted` has room for one entry per row of a block.
    init(context: StreamContext, group: Int, noted: UnsafeMutablePointer<ActiveRow>) {
        self.context = context
        first = group * vectorWidth
        lanes = context.packedAnchors.lanes(group: group)
        laneLabels = LaneLabels(group: group, anchorCount: context.anchorCount, anchorLabels: context.anchorLabels,
                                ownIndex: context.ownIndex)
        notes = Notes(base: noted)
    }

    /// References `rows` of `segment`, whose first row is column `firstColumn` of the loss.
    /// With `prefetch`, the rows `prefetchRows` ahead of each four are requested as they are multiplied.
    mutating func consume(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetch: Bool) {
        stream(segment, rows: rows, firstColumn: firstColumn, prefetchRows: prefetch ? context.prefetchRows : nil)
        recomputed += rows.count
        endBlock(segment)
    }

    /// The block `rows` screened: ŝ for every row by the bf16 kernel into `tile` (rows × 16), the
    /// rows that may matter listed in `kept`, and those taken as `consume` takes them, with the
    /// same chains, in order (the class documentation says why that gives the same bits).
    mutating func consumeScreened(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetch: Bool,
                                  tile: UnsafeMutablePointer<Float>, kept: UnsafeMutablePointer<Int32>) {
        let screening = context.screening!, low = segment.lowPrecision!
        let first = rows.lowerBound
        screenSimilarities(screening.kernel, panel: screening.panels + (self.first / vectorWidth) * screening.panelSize,
                           rows: low.rows + first * low.stride, count: rows.count, stride: low.stride,
                           prefetch: prefetch, into: tile)
        let alpha = loadVector(screening.anchorFactors + self.first), tau = FloatVector(repeating: ScreeningBound.absoluteTerm)
        let margin = FloatVector(repeating: context.margin)
        var keptCount = 0
        for j in rows {
            let estimate = loadVector(tile + (j - first) * vectorWidth)
            let beta = alpha * low.normBounds[j] + tau
            let upper = estimate + beta, lower = estimate - beta
            let (positive, negative) = laneLabels.pairs(label: segment.labels[j], column: firstColumn + j)
            negativeFloor.replace(with: lower, where: negative .& (negativeFloor .< lower))
            // Written as "provably inactive and below the hardest", so that a NaN keeps the pair.
            let skipped = (upper .<= margin) .& (upper .< negativeFloor)
            let keep = positive .| (negative .& .!skipped)
            kept[keptCount] = Int32(truncatingIfNeeded: j)
            keptCount += any(keep) ? 1 : 0
        }
        stream(segment, listed: kept, count: keptCount, firstColumn: firstColumn)
        recomputed += keptCount
        endBlock(segment)
    }

    /// After a block: the noted pairs into the anchors' sums, the lane sums into the totals.
    private mutating func endBlock(_ segment: ReferenceSegment) {
        for entry in UnsafeBufferPointer(start: notes.base, count: notes.count) { addActivePairs(entry, segment) }
        notes.clear()
        positiveTotal += SIMD16<Double>(positiveSum)
        negativeTotal += SIMD16<Double>(negativeSum)
        positiveSum = .zero
        negativeSum = .zero
    }

    /// The 16 similarities of reference `row` (column `column` of the loss) to the lanes.
    @inline(__always)
    mutating func take(_ s: FloatVector, _ segment: ReferenceSegment, row: Int, column: Int) {
        let (positive, negative) = laneLabels.pairs(label: segment.labels[row], column: column)
        hardestNegative.replace(with: s, where: negative .& (hardestNegative .< s))
        hardestPositive.replace(with: s, where: positive .& (s .< hardestPositive))
        let activePositive = positive .& (s .< context.positiveLimit)
        let activeNegative = negative .& (s .> context.margin)
        positiveSum += FloatVector.zero.replacing(with: 1 - s, where: activePositive)
        negativeSum += FloatVector.zero.replacing(with: s, where: activeNegative)
        notes.append(ActiveRow(row: Int32(truncatingIfNeeded: row), active: laneBits(activePositive .| activeNegative),
                               positive: laneBits(activePositive)))
    }

    /// P_i += r_j or N_i += r_j for each active lane of a noted row, with the counts and the
    /// negatives' ages.
    private func addActivePairs(_ entry: ActiveRow, _ segment: ReferenceSegment) {
        let d = context.dimension, row = Int(entry.row), r = segment.embeddings + row * d
        var remaining = entry.active
        while remaining != 0 {
            let lane = remaining.trailingZeroBitCount
            remaining &= remaining - 1
            let i = first + lane, isPositive = entry.positive & (1 << lane) != 0
            let sums = (isPositive ? context.positiveSums : context.negativeSums) + i * d
            forEachVectorSlice(d) { k, width in
                storeVector(loadVector(sums + k, lanes: width) + loadVector(r + k, lanes: width), sums + k, lanes: width)
            }
            if isPositive {
                context.rows[i].activePositives += 1
            } else {
                context.rows[i].activeNegatives += 1
                if context.hasStamps, let stamps = segment.stamps { context.rows[i].activeNegativeAgeSum += Int(context.now &- stamps[row]) }
            }
        }
    }

    /// Writes the lanes' totals and extremes into their anchors' rows.
    func finish() {
        context.recomputedRows[first / vectorWidth] = recomputed
        for lane in 0..<laneLabels.count {
            let i = first + lane
            context.rows[i].positiveSum = positiveTotal[lane]
            context.rows[i].negativeSum = negativeTotal[lane]
            context.rows[i].hardestNegative = hardestNegative[lane]
            context.rows[i].hardestPositive = hardestPositive[lane]
        }
    }
}

/// The noted rows of one block: every row is written, and the count moves past it only if a
/// lane is active, so noting costs no branch.
private struct Notes {
    let base: UnsafeMutablePointer<ActiveRow>
    private(set) var count = 0

    init(base: UnsafeMutablePointer<ActiveRow>) { self.base = base }

    @inline(__always)
    mutating func append(_ entry: ActiveRow) {
        base[count] = entry
        count += entry.active != 0 ? 1 : 0
    }

    mutating func clear() { count = 0 }
}

