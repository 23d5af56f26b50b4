import Foundation
import XBMKernels

/// The lifted-structure and N-pair terms against references that take no gradient (the
/// cross-batch memory) in one pass, without the b × R similarity matrix (Docs/losses.md, "The
/// lifted and N-pair memory terms in one pass"). The flash-attention pattern: both losses weigh
/// their negatives through one log-sum-exp, which can be taken online.
///
/// With κ = 1 (lifted) or 1/τ (N-pair), anchor i keeps, over the negatives n seen so far,
///
///     μ = max_n s_in,    Z = Σ_n e^{κ(s_in − μ)},    V = Σ_n e^{κ(s_in − μ)} r_n   (d floats)
///
/// and when a new negative raises μ to μ', the terms already in Z and V are rescaled:
///
///     c = e^{κ(μ − μ')},   Z ← c Z,   V ← c V        (then the new terms join with e^{κ(s − μ')})
///
/// so no exponent is ever positive and nothing overflows however far apart the similarities
/// are. At the end μ is the hardest negative, Σ_n e^{κ s_in} = e^{κμ} Z, and the soft-max over
/// the negatives is q_n = e^{κ(s_in − μ)} / Z, so Σ_n q_n r_n = V / Z. The positives (same label:
/// few) are kept as (s_ip, column) while streaming and finished after it, once the negatives'
/// sum is known. With w_P, w_N the reduction's weights (`.sum` 1, `.mean` 1/|P_i|, 1/|N_i|):
///
/// Lifted (`LiftedStructureTerm`), with p̂ = min_p s_ip and Z_P = Σ_p e^{p̂ − s_ip}:
///
///     ℓ_i = [ (1 − p̂) + log(w_P Z_P) + (μ − m) + log(w_N Z) ]_+
///     if ℓ_i > 0:  ∂ℓ_i/∂a_i = −Σ_p (e^{p̂ − s_ip} / Z_P) r_p + V / Z
///
/// N-pair (`NPairTerm`), with L = κμ + log(w_N Z) = log(w_N Σ_n e^{κ s_in}) and
/// σ_p = logistic(L − κ s_ip):
///
///     ℓ_i = (1/|P_i|) Σ_p softplus(L − κ s_ip)
///     ∂ℓ_i/∂a_i = −(κ/|P_i|) Σ_p σ_p r_p + (κ/|P_i|) (Σ_p σ_p) V / Z
///
/// and dA_i += scale · ∂ℓ_i/∂a_i. An anchor with no positive or no negative gives 0 (and so
/// does an inactive lifted hinge). P_i and N_i exclude the anchor's own column
/// (`AnchorRow.isPositive` / `isNegative`).
///
/// The stream, per group of 16 anchors (the lanes), per block of rows, four rows at a time:
///
///     s_j = Σ_k a_k r_jk                   16 lanes, one FMA chain in k order (`AnchorLanes`)
///     positives: noted as (s, column)      a branch on "any lane has the row's label"
///     μ' = max(μ, s_j over negative lanes)  rescale Z, V by e^{κ(μ − μ')} where it rose
///     w_j = e^{κ(s_j − μ')} on negative lanes, 0 elsewhere   (`laneExp`)
///     Z += w_j (Float in a block, then into a Double total),  V_k += w_j r_jk  (d FMAs per row)
///
/// Statistics (`RowResult`), as `GemmPairLoss` records them from G (a pair is active when
/// g_ij ≠ 0): the hardest negative is μ, the hardest positive min_p s_ip (whether or not the
/// anchor contributes); a contributing anchor's positives are active when their Float
/// gradient is non-zero (as the product path rounds it), its negatives all are — the product
/// path also loses a negative whose Float weight underflows, ~87 (N-pair: ~87 τ) below the
/// hardest, which unit embeddings never reach at the defaults (spreads ≤ 2 and ≤ 2/τ = 20).
/// The active negatives' ages are summed over all negatives of a contributing anchor.
///
/// Determinism: an anchor's results depend on its own lane only. Every s_ij is one chain of d
/// FMAs in k order; Z, V and the ages are sums over j in order; the maximum is taken over the
/// same groups of four rows (set by the blocks and segments, not by the anchors), and a lane
/// whose μ did not rise is rescaled by exactly 1; the positives are finished in j order. So the
/// bits do not change with the other anchors in the lanes, with the split of the groups over
/// threads or of the anchors over ranks — what `--deterministic` relies on
/// (`memoryTermIsPerAnchor`; LogSumExpStreamTests).
///
/// Against the product path: S (b × R floats, 4 MiB at b 64, M 16,384) is never written, zeroed
/// or read back, and the exponentials are Float vectors instead of a Double `exp` per pair. The
/// stored positives cost 8 bytes per positive pair (all of b × R only if every reference shared
/// every anchor's label) and their rows are read again at the end.
final class LogSumExpStream: OnePassTerm {
    /// The loss whose memory term this is.
    enum Loss: Sendable, Equatable {
        /// `LiftedStructureTerm`, m.
        case lifted(margin: Double)
        /// `NPairTerm`, τ.
        case npair(temperature: Double)
    }

    let loss: Loss
    let tuning: PairLossTuning
    /// The anchors, 16 lanes to a group.
    private var packedAnchors = PackedAnchorLanes()
    /// (groups, d, 16): V of each lane.
    private var weightedNegatives = FlatBuffer<Float>(count: 0)
    /// (b + 1): anchor i's positives are positives[offsets[i] ..< offsets[i + 1]], in j order.
    private var positiveOffsets = FlatBuffer<Int>(count: 0)
    private var positives = FlatBuffer<StreamedPositive>(count: 0, initialValue: StreamedPositive())
    private(set) var lastRecomputedFraction = 0.0

    convenience init(term: LiftedStructureTerm, tuning: PairLossTuning = PairLossTuning()) {
        self.init(loss: .lifted(margin: term.margin), tuning: tuning)
    }

    convenience init(term: NPairTerm, tuning: PairLossTuning = PairLossTuning()) {
        self.init(loss: .npair(temperature: term.temperature), tuning: tuning)
    }

    init(loss: Loss, tuning: PairLossTuning = PairLossTuning()) {
        self.loss = loss
        self.tuning = tuning
    }

    /// κ: the exponent's factor on s.
    private var exponentScale: Double {
        switch loss {
        case .lifted: 1
        case let .npair(temperature): 1 / temperature
        }
    }

    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>, results: UnsafeMutablePointer<RowResult>) -> MemoryTermPath {
        let b = input.anchorCount, d = input.dimension, R = input.referenceCount
        let groups = (b + vectorWidth - 1) / vectorWidth
        reserve(anchors: b, groups: groups, dimension: d)
        packedAnchors.pack(input.anchors, count: b, dimension: d)
        weightedNegatives.pointer.update(repeating: 0, count: groups * d * vectorWidth)
        let positiveCount = countPositives(input)
        if positives.count < positiveCount {
            positives = FlatBuffer(count: max(positiveCount, 2 * positives.count), initialValue: StreamedPositive())
        }

        let context = LogSumExpContext(
            anchorCount: b, dimension: d, exponentScale: exponentScale, loss: loss, reduction: reduction, scale: scale,
            packedAnchors: packedAnchors, weightedNegatives: weightedNegatives.pointer,
            anchorLabels: input.anchorLabels, ownIndex: input.ownIndex,
            positiveOffsets: positiveOffsets.pointer, positives: positives.pointer,
            anchorGradient: anchorGradient, results: results,
            now: Int32(clamping: input.now), hasStamps: input.references.allSatisfy { $0.stamps != nil },
            blockRows: PackedAnchorLanes.blockRows(dimension: d), prefetchRows: PackedAnchorLanes.prefetchRows(dimension: d))
        let segments = input.references
        // As in ContrastiveStream: groups split over the threads, each thread streams every
        // block once for all its groups (the first reads it from memory, the others from
        // cache). The states and the finish's scratch row live on the thread's stack.
        parallelChunks(groups, minimumChunk: max(1, tuning.rowsWorkPerThread / max(vectorWidth * R, 1))) { groupRange in
            withUnsafeTemporaryAllocation(of: LogSumExpGroup.self, capacity: groupRange.count) { states in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: d) { scratch in
                for (slot, group) in groupRange.enumerated() {
                    (states.baseAddress! + slot).initialize(to: LogSumExpGroup(context: context, group: group))
                }
                var column = 0
                for segment in segments {
                    var start = 0
                    while start < segment.count {
                        let end = min(start + context.blockRows, segment.count)
                        for slot in states.indices {
                            states[slot].consume(segment, rows: start..<end, firstColumn: column, prefetch: slot == 0)
                        }
                        start = end
                    }
                    column += segment.count
                }
                for slot in states.indices { states[slot].finish(segments, scratch: scratch.baseAddress!) }
                _ = states.deinitialize()
            }
            }
        }
        lastRecomputedFraction = R > 0 ? 1 : 0
        return .onePass
    }

    /// |P_i| of every anchor into `positiveOffsets` as running totals (16 lanes against each
    /// reference's label: R vector compares per group, against R · d FMAs for the similarities);
    /// returns Σ_i |P_i|.
    private func countPositives(_ input: PairLossInput) -> Int {
        let b = input.anchorCount, offsets = positiveOffsets.pointer
        var total = 0
        for group in 0..<(b + vectorWidth - 1) / vectorWidth {
            let lanes = LaneLabels(group: group, anchorCount: b, anchorLabels: input.anchorLabels, ownIndex: input.ownIndex)
            var counts = LabelVector.zero
            var column = 0
            for segment in input.references {
                for j in 0..<segment.count {
                    counts &+= LabelVector.zero.replacing(with: 1, where: lanes.pairs(label: segment.labels[j], column: column).positive)
                    column += 1
                }
            }
            for lane in 0..<lanes.count {
                offsets[group * vectorWidth + lane] = total
                total += Int(counts[lane])
            }
        }
        offsets[b] = total
        return total
    }

    private func reserve(anchors b: Int, groups: Int, dimension d: Int) {
        if weightedNegatives.count < groups * vectorWidth * d { weightedNegatives = FlatBuffer(count: groups * vectorWidth * d) }
        if positiveOffsets.count < b + 1 { positiveOffsets = FlatBuffer(count: b + 1) }
    }
}

/// A positive pair noted while streaming: s_ip and the column j of the reference.
struct StreamedPositive: BitwiseCopyable {
    var similarity: Float = 0
    var column: Int32 = 0
}

/// What every group of one evaluation shares (plain pointers, so the threads can hold it).
private struct LogSumExpContext: @unchecked Sendable {
    let anchorCount: Int, dimension: Int
    /// κ
    let exponentScale: Double
    let loss: LogSumExpStream.Loss
    let reduction: PairReduction
    let scale: Float
    let packedAnchors: PackedAnchorLanes
    let weightedNegatives: UnsafeMutablePointer<Float>
    let anchorLabels: UnsafePointer<Int32>
    let ownIndex: UnsafePointer<Int32>?
    let positiveOffsets: UnsafePointer<Int>
    let positives: UnsafeMutablePointer<StreamedPositive>
    let anchorGradient: UnsafeMutablePointer<Float>
    let results: UnsafeMutablePointer<RowResult>
    let now: Int32
    /// Whether every segment has stamps (the ages are summed only then).
    let hasStamps: Bool
    let blockRows: Int, prefetchRows: Int
}

/// The lanes of one group of 16 anchors: the negatives' running maximum μ, Z (Float within a
/// block, then a Double total), V (in the shared buffer), counts and ages, and where each lane's
/// next positive goes.
private struct LogSumExpGroup {
    let context: LogSumExpContext
    let first: Int, lanes: Int
    let anchors: AnchorLanes
    /// (d, 16) V of the lanes.
    let weighted: UnsafeMutablePointer<Float>
    /// The lanes' labels and own columns (a partial group's empty lanes take no pair).
    let laneLabels: LaneLabels
    /// κ in Float.
    let exponentScale: FloatVector
    /// μ, −∞ before the first negative.
    var maximum = FloatVector(repeating: -.infinity)
    var blockSum = FloatVector.zero
    var total = SIMD16<Double>.zero
    var negatives = LabelVector.zero
    var blockAges = LabelVector.zero
    var ageTotal = SIMD16<Int>.zero
    /// Positives noted so far per lane.
    var positiveCursor = LabelVector.zero

    init(context: LogSumExpContext, group: Int) {
        self.context = context
        first = group * vectorWidth
        lanes = min(vectorWidth, context.anchorCount - first)
        anchors = context.packedAnchors.lanes(group: group)
        weighted = context.weightedNegatives + group * context.dimension * vectorWidth
        laneLabels = LaneLabels(group: group, anchorCount: context.anchorCount, anchorLabels: context.anchorLabels,
                                ownIndex: context.ownIndex)
        exponentScale = FloatVector(repeating: Float(context.exponentScale))
    }

    /// References `rows` of `segment`, whose first row is column `firstColumn`; with `prefetch`,
    /// the rows `prefetchRows` ahead of each four are requested as they are multiplied.
    mutating func consume(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetch: Bool) {
        let d = context.dimension
        let ahead = context.prefetchRows, prefetchLimit = prefetch ? segment.count - ahead - 4 : -1
        var j = rows.lowerBound
        while j + 4 <= rows.upperBound {
            let r0 = segment.embeddings + j * d
            if j <= prefetchLimit { prefetchForReading(r0 + ahead * d, bytes: 4 * d * MemoryLayout<Float>.stride) }
            let (s0, s1, s2, s3) = anchors.similarities(r0, r0 + d, r0 + 2 * d, r0 + 3 * d)
            let n0 = split(s0, segment, row: j, column: firstColumn + j)
            let n1 = split(s1, segment, row: j + 1, column: firstColumn + j + 1)
            let n2 = split(s2, segment, row: j + 2, column: firstColumn + j + 2)
            let n3 = split(s3, segment, row: j + 3, column: firstColumn + j + 3)
            var raised = maximum
            raised.replace(with: s0, where: n0 .& (raised .< s0))
            raised.replace(with: s1, where: n1 .& (raised .< s1))
            raised.replace(with: s2, where: n2 .& (raised .< s2))
            raised.replace(with: s3, where: n3 .& (raised .< s3))
            rescale(to: raised)
            // Written out rather than through `weights`, which the compiler left out of line here.
            let zero = FloatVector.zero
            let w0 = zero.replacing(with: laneExp(zero.replacing(with: exponentScale * (s0 - maximum), where: n0)), where: n0)
            let w1 = zero.replacing(with: laneExp(zero.replacing(with: exponentScale * (s1 - maximum), where: n1)), where: n1)
            let w2 = zero.replacing(with: laneExp(zero.replacing(with: exponentScale * (s2 - maximum), where: n2)), where: n2)
            let w3 = zero.replacing(with: laneExp(zero.replacing(with: exponentScale * (s3 - maximum), where: n3)), where: n3)
            blockSum += w0
            blockSum += w1
            blockSum += w2
            blockSum += w3
            for k in 0..<d {
                let v = weighted + k * vectorWidth
                storeVector(loadVector(v).addingProduct(w0, r0[k]).addingProduct(w1, r0[d + k])
                                .addingProduct(w2, r0[2 * d + k]).addingProduct(w3, r0[3 * d + k]), v)
            }
            j += 4
        }
        while j < rows.upperBound {
            let r = segment.embeddings + j * d
            let s = anchors.similarity(r)
            let n = split(s, segment, row: j, column: firstColumn + j)
            var raised = maximum
            raised.replace(with: s, where: n .& (raised .< s))
            rescale(to: raised)
            let w = weights(s, n)
            blockSum += w
            for k in 0..<d {
                let v = weighted + k * vectorWidth
                storeVector(loadVector(v).addingProduct(w, r[k]), v)
            }
            j += 1
        }
        total += SIMD16<Double>(blockSum)
        blockSum = .zero
        ageTotal &+= SIMD16<Int>(truncatingIfNeeded: blockAges)
        blockAges = .zero
    }

    /// The negative lanes of reference `row` (column `column`), counted with their ages; its
    /// positive lanes noted with their similarity.
    @inline(__always)
    private mutating func split(_ s: FloatVector, _ segment: ReferenceSegment, row: Int, column: Int) -> SIMDMask<LabelVector> {
        let (positive, negative) = laneLabels.pairs(label: segment.labels[row], column: column)
        negatives &+= LabelVector.zero.replacing(with: 1, where: negative)
        if context.hasStamps, let stamps = segment.stamps {
            blockAges &+= LabelVector.zero.replacing(with: LabelVector(repeating: context.now &- stamps[row]), where: negative)
        }
        if any(positive) { note(positive, s, column: column) }
        return negative
    }

    /// Appends (s, column) to the positives of each lane of `positive`.
    private mutating func note(_ positive: SIMDMask<LabelVector>, _ s: FloatVector, column: Int) {
        for lane in 0..<lanes where positive[lane] {
            let slot = context.positiveOffsets[first + lane] + Int(positiveCursor[lane])
            context.positives[slot] = StreamedPositive(similarity: s[lane], column: Int32(truncatingIfNeeded: column))
            positiveCursor[lane] += 1
        }
    }

    /// μ ← `raised`: where it rose, Z and V times e^{κ(μ − μ')} (0 where μ was −∞: nothing was
    /// summed yet); elsewhere times exactly 1, so no other lane changes a lane's bits.
    @inline(__always)
    private mutating func rescale(to raised: FloatVector) {
        let rose = raised .> maximum
        guard any(rose) else { return }
        let argument = FloatVector.zero.replacing(with: exponentScale * (maximum - raised), where: rose .& (maximum .> -.infinity))
        var factor = laneExp(argument)
        factor.replace(with: 0, where: rose .& (maximum .== -.infinity))
        maximum = raised
        blockSum *= factor
        total *= SIMD16<Double>(factor)
        for k in 0..<context.dimension {
            let v = weighted + k * vectorWidth
            storeVector(loadVector(v) * factor, v)
        }
    }

    /// e^{κ(s − μ)} on the negative lanes, 0 on the others.
    @inline(__always)
    private func weights(_ s: FloatVector, _ negative: SIMDMask<LabelVector>) -> FloatVector {
        let argument = FloatVector.zero.replacing(with: exponentScale * (s - maximum), where: negative)
        return FloatVector.zero.replacing(with: laneExp(argument), where: negative)
    }

    /// Each anchor's loss, statistics and gradient from its lane and its positives. `scratch`
    /// holds d floats.
    func finish(_ segments: [ReferenceSegment], scratch: UnsafeMutablePointer<Float>) {
        let d = context.dimension
        for lane in 0..<lanes {
            let i = first + lane
            let start = context.positiveOffsets[i], end = context.positiveOffsets[i + 1]
            let anchorPositives = UnsafeBufferPointer(start: context.positives + start, count: end - start)
            var hardestPositive = Float.infinity
            for positive in anchorPositives where positive.similarity < hardestPositive { hardestPositive = positive.similarity }
            let negativeCount = Int(negatives[lane])
            var result = RowResult(loss: 0, hardestNegative: negativeCount > 0 ? maximum[lane] : -.infinity,
                                   hardestPositive: hardestPositive)
            defer { context.results[i] = result }
            guard !anchorPositives.isEmpty, negativeCount > 0 else { continue }

            let Z = total[lane], mu = Double(maximum[lane])
            let positiveWeight = context.reduction == .mean ? 1 / Double(anchorPositives.count) : 1
            let negativeWeight = context.reduction == .mean ? 1 / Double(negativeCount) : 1
            // The factor of V and the positives' factors (f_p in ∂ℓ_i/∂a_i = Σ_p f_p r_p + f_N V).
            let negativeFactor: Double
            scratch.update(repeating: 0, count: d)
            switch context.loss {
            case let .lifted(margin):
                let lowest = Double(hardestPositive)
                var positiveSum = 0.0
                for positive in anchorPositives { positiveSum += exp(lowest - Double(positive.similarity)) }
                let hinge = (1 - lowest) + log(positiveWeight * positiveSum) + (mu - margin) + log(negativeWeight * Z)
                guard hinge > 0 else { continue }
                result.loss = hinge
                let perPositive = Float(-1 / positiveSum)
                for positive in anchorPositives {
                    let g = Float(exp(lowest - Double(positive.similarity))) * perPositive
                    if g != 0 { result.activePositives += 1 }
                    addRow(g, positive.column, segments, into: scratch)
                }
                negativeFactor = 1 / Z
            case let .npair(temperature):
                let kappa = 1 / temperature
                let logSum = kappa * mu + log(negativeWeight * Z)
                var loss = 0.0, sigmaSum = 0.0
                let perPositive = kappa / Double(anchorPositives.count)
                for positive in anchorPositives {
                    let x = logSum - kappa * Double(positive.similarity)
                    let sigma = logistic(x)
                    loss += softplus(x)
                    sigmaSum += sigma
                    let g = Float(sigma) * Float(-perPositive)
                    if g != 0 { result.activePositives += 1 }
                    addRow(g, positive.column, segments, into: scratch)
                }
                result.loss = loss / Double(anchorPositives.count)
                negativeFactor = perPositive * sigmaSum / Z
            }
            let f = Float(negativeFactor)
            if f != 0 {
                result.activeNegatives = negativeCount
                result.activeNegativeAgeSum = ageTotal[lane]
            }
            let dA = context.anchorGradient + i * d, scale = context.scale
            for k in 0..<d { dA[k] += scale * (scratch[k] + f * weighted[k * vectorWidth + lane]) }
        }
    }

    /// scratch += g · r_column.
    @inline(__always)
    private func addRow(_ g: Float, _ column: Int32, _ segments: [ReferenceSegment], into scratch: UnsafeMutablePointer<Float>) {
        var row = Int(column)
        for segment in segments {
            if row < segment.count {
                let r = segment.embeddings + row * context.dimension
                for k in 0..<context.dimension { scratch[k] += g * r[k] }
                return
            }
            row -= segment.count
        }
    }
}
