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
    /// (groups, d, 16): anchor lanes by dimension, zero beyond the last anchor.
    private var packedAnchors = FlatBuffer<Float>(count: 0)
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

    /// References per block that every anchor group of a thread visits before the next block,
    /// so a block is read from memory once and from cache by the other groups: ~64 KiB of rows.
    static func blockRows(dimension d: Int) -> Int { max(4, (16_384 / max(d, 1)) & ~3) }

    /// How far ahead of the rows being multiplied their successors are prefetched: ~8 KiB.
    /// The hardware prefetcher does not keep up with four rows read a float at a time each, and
    /// a memory that does not stay in cache between steps (the network's passes evict it) is
    /// read from DRAM (Docs/performance.md, "The memory's cost").
    static func prefetchRows(dimension d: Int) -> Int { max(4, (2_048 / max(d, 1)) & ~3) }

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
        pack(input.anchors, count: b, dimension: d)
        let screening = screeningPlan(input, groups: groups)
        positiveSums.pointer.update(repeating: 0, count: b * d)
        negativeSums.pointer.update(repeating: 0, count: b * d)
        rows.pointer.update(repeating: StreamedRow(), count: b)

        let hasStamps = input.references.allSatisfy { $0.stamps != nil }
        let context = StreamContext(
            anchorCount: b, dimension: d, positiveLimit: Float(1 - term.epsilon), margin: Float(term.margin),
            packedAnchors: packedAnchors.pointer, anchorLabels: input.anchorLabels, ownIndex: input.ownIndex,
            positiveSums: positiveSums.pointer, negativeSums: negativeSums.pointer, rows: rows.pointer,
            now: Int32(clamping: input.now), hasStamps: hasStamps, blockRows: Self.blockRows(dimension: d),
            prefetchRows: Self.prefetchRows(dimension: d), screening: screening, recomputedRows: recomputedRows.pointer)
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
                    (states.baseAddress! + slot).initialize(to: GroupState(context: context, group: group))
                }
                var column = 0
                for segment in segments {
                    var start = 0
                    while start < segment.count {
                        let end = min(start + context.blockRows, segment.count)
                        // The first group reads the block from memory, the others from cache.
                        for slot in states.indices {
                            if screening != nil {
                                states[slot].consumeScreened(segment, rows: start..<end, firstColumn: column, prefetch: slot == 0,
                                                             noted: noted.baseAddress!, tile: tile.baseAddress!,
                                                             kept: kept.baseAddress!)
                            } else {
                                states[slot].consume(segment, rows: start..<end, firstColumn: column,
                                                     prefetch: slot == 0, noted: noted.baseAddress!)
                            }
                        }
                        start = end
                    }
                    column += segment.count
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

    /// packedAnchors[g][k][lane] = a_{16g + lane, k}.
    private func pack(_ anchors: UnsafePointer<Float>, count b: Int, dimension d: Int) {
        let packed = packedAnchors.pointer
        packed.update(repeating: 0, count: (b + vectorWidth - 1) / vectorWidth * vectorWidth * d)
        for i in 0..<b {
            let panel = packed + (i / vectorWidth) * d * vectorWidth, lane = i % vectorWidth
            for k in 0..<d { panel[k * vectorWidth + lane] = anchors[i * d + k] }
        }
    }

    private func reserve(anchors b: Int, groups: Int, dimension d: Int) {
        if packedAnchors.count < groups * vectorWidth * d { packedAnchors = FlatBuffer(count: groups * vectorWidth * d) }
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
    let packedAnchors: UnsafePointer<Float>
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
private struct GroupState {
    let context: StreamContext
    let first: Int, lanes: Int
    let anchors: UnsafePointer<Float>
    let labels: LabelVector, own: LabelVector
    /// Lanes that hold an anchor. The others' sums are never read; masking them keeps the
    /// empty lanes of a partial group (zero anchors) out of the active-pair path.
    let valid: SIMDMask<LabelVector>
    var hardestNegative = FloatVector(repeating: -.infinity), hardestPositive = FloatVector(repeating: .infinity)
    var positiveSum = FloatVector.zero, negativeSum = FloatVector.zero
    var positiveTotal = SIMD16<Double>.zero, negativeTotal = SIMD16<Double>.zero
    /// Screened: F, the lane-wise max of ŝ − β over the negatives screened so far (≤ max s).
    var negativeFloor = FloatVector(repeating: -.infinity)
    /// Rows computed in fp32 so far.
    var recomputed = 0

    init(context: StreamContext, group: Int) {
        self.context = context
        first = group * vectorWidth
        lanes = min(vectorWidth, context.anchorCount - first)
        anchors = context.packedAnchors + group * context.dimension * vectorWidth
        var labels = LabelVector(repeating: 0), own = LabelVector(repeating: -1)
        for lane in 0..<lanes {
            labels[lane] = context.anchorLabels[first + lane]
            own[lane] = context.ownIndex?[first + lane] ?? -1
        }
        self.labels = labels
        self.own = own
        valid = LabelVector(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) .< LabelVector(repeating: Int32(lanes))
    }

    /// References `rows` of `segment`, whose first row is column `firstColumn` of the loss;
    /// `noted` has room for one entry per row. With `prefetch`, the rows `prefetchRows` ahead
    /// of each four are requested as they are multiplied.
    mutating func consume(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetch: Bool,
                          noted: UnsafeMutablePointer<ActiveRow>) {
        let d = context.dimension
        let ahead = context.prefetchRows, prefetchLimit = prefetch ? segment.count - ahead - 4 : -1
        var notes = Notes(base: noted)
        var j = rows.lowerBound
        while j + 4 <= rows.upperBound {
            let r0 = segment.embeddings + j * d
            if j <= prefetchLimit { prefetchForReading(r0 + ahead * d, bytes: 4 * d * MemoryLayout<Float>.stride) }
            let (s0, s1, s2, s3) = similarities(r0, r0 + d, r0 + 2 * d, r0 + 3 * d)
            take(s0, segment, row: j, column: firstColumn + j, &notes)
            take(s1, segment, row: j + 1, column: firstColumn + j + 1, &notes)
            take(s2, segment, row: j + 2, column: firstColumn + j + 2, &notes)
            take(s3, segment, row: j + 3, column: firstColumn + j + 3, &notes)
            j += 4
        }
        while j < rows.upperBound {
            take(similarity(segment.embeddings + j * d), segment, row: j, column: firstColumn + j, &notes)
            j += 1
        }
        recomputed += rows.count
        endBlock(segment, notes)
    }

    /// The block `rows` screened: ŝ for every row by the bf16 kernel into `tile` (rows × 16), the
    /// rows that may matter listed in `kept`, and those taken as `consume` takes them, with the
    /// same chains, in order (the class documentation says why that gives the same bits).
    mutating func consumeScreened(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetch: Bool,
                                  noted: UnsafeMutablePointer<ActiveRow>, tile: UnsafeMutablePointer<Float>,
                                  kept: UnsafeMutablePointer<Int32>) {
        let screening = context.screening!, low = segment.lowPrecision!, d = context.dimension
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
            let same = labels .== LabelVector(repeating: segment.labels[j])
            let candidate = valid .& (own .!= LabelVector(repeating: Int32(truncatingIfNeeded: firstColumn + j)))
            let negative = candidate .& .!same
            negativeFloor.replace(with: lower, where: negative .& (negativeFloor .< lower))
            // Written as "provably inactive and below the hardest", so that a NaN keeps the pair.
            let skipped = (upper .<= margin) .& (upper .< negativeFloor)
            let keep = (candidate .& same) .| (negative .& .!skipped)
            kept[keptCount] = Int32(truncatingIfNeeded: j)
            keptCount += any(keep) ? 1 : 0
        }
        for index in 0..<keptCount {
            prefetchForReading(segment.embeddings + Int(kept[index]) * d, bytes: d * MemoryLayout<Float>.stride)
        }
        var notes = Notes(base: noted)
        var index = 0
        while index + 4 <= keptCount {
            let j0 = Int(kept[index]), j1 = Int(kept[index + 1]), j2 = Int(kept[index + 2]), j3 = Int(kept[index + 3])
            let r = segment.embeddings
            let (s0, s1, s2, s3) = similarities(r + j0 * d, r + j1 * d, r + j2 * d, r + j3 * d)
            take(s0, segment, row: j0, column: firstColumn + j0, &notes)
            take(s1, segment, row: j1, column: firstColumn + j1, &notes)
            take(s2, segment, row: j2, column: firstColumn + j2, &notes)
            take(s3, segment, row: j3, column: firstColumn + j3, &notes)
            index += 4
        }
        while index < keptCount {
            let j = Int(kept[index])
            take(similarity(segment.embeddings + j * d), segment, row: j, column: firstColumn + j, &notes)
            index += 1
        }
        recomputed += keptCount
        endBlock(segment, notes)
    }

    /// s for the 16 lanes against four rows: per lane one chain of d fused multiply-adds in k
    /// order, the same bits as `similarity` of each row alone.
    @inline(__always)
    private func similarities(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>,
                              _ r3: UnsafePointer<Float>) -> (FloatVector, FloatVector, FloatVector, FloatVector) {
        let a = anchors
        var s0 = FloatVector.zero, s1 = FloatVector.zero, s2 = FloatVector.zero, s3 = FloatVector.zero
        for k in 0..<context.dimension {
            let ak = loadVector(a + k * vectorWidth)
            s0 = s0.addingProduct(ak, r0[k])
            s1 = s1.addingProduct(ak, r1[k])
            s2 = s2.addingProduct(ak, r2[k])
            s3 = s3.addingProduct(ak, r3[k])
        }
        return (s0, s1, s2, s3)
    }

    @inline(__always)
    private func similarity(_ r: UnsafePointer<Float>) -> FloatVector {
        var s = FloatVector.zero
        for k in 0..<context.dimension { s = s.addingProduct(loadVector(anchors + k * vectorWidth), r[k]) }
        return s
    }

    /// After a block: the noted pairs into the anchors' sums, the lane sums into the totals.
    private mutating func endBlock(_ segment: ReferenceSegment, _ notes: Notes) {
        for entry in UnsafeBufferPointer(start: notes.base, count: notes.count) { addActivePairs(entry, segment) }
        positiveTotal += SIMD16<Double>(positiveSum)
        negativeTotal += SIMD16<Double>(negativeSum)
        positiveSum = .zero
        negativeSum = .zero
    }

    /// The 16 similarities of reference `row` (column `column` of the loss) to the lanes.
    @inline(__always)
    private mutating func take(_ s: FloatVector, _ segment: ReferenceSegment, row: Int, column: Int, _ notes: inout Notes) {
        let same = labels .== LabelVector(repeating: segment.labels[row])
        let candidate = valid .& (own .!= LabelVector(repeating: Int32(truncatingIfNeeded: column)))
        let positive = candidate .& same, negative = candidate .& .!same
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
        for lane in 0..<lanes {
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
}

/// Bit `lane` set for each true lane of `mask`.
@inline(__always)
private func laneBits(_ mask: SIMDMask<LabelVector>) -> UInt16 {
    let bits = LabelVector(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    return UInt16(truncatingIfNeeded: LabelVector.zero.replacing(with: bits, where: mask).wrappedSum())
}
