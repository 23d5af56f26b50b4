import Foundation
import XBMKernels

// The machinery shared by the five pair losses (Docs/losses.md): similarities by one matrix product
// per reference segment, one anchor row at a time mined and differentiated in place, and the
// two gradient products. The loss-specific part is an `AnchorTerm`.
//
// Letters: b anchors, d embedding size, R references (the concatenation of the segments),
// S (b, R) similarities s_ij = a_i·r_j, G (b, R) with g_ij = ∂ℓ_i/∂s_ij.

/// One anchor's row of the similarity workspace: similarities s_ij on entry, and on return
/// g_ij = ∂ℓ_i/∂s_ij for every j (zero for pairs that do not contribute).
struct AnchorRow {
    /// (R) s_ij in, g_ij out.
    let values: UnsafeMutablePointer<Float>
    /// (R) labels of the references.
    let labels: UnsafePointer<Int32>
    /// R
    let count: Int
    /// y_i
    let label: Int32
    /// The anchor's own entry among the references, or -1.
    let ownIndex: Int

    /// j ∈ P_i: same label, and not the anchor's own entry (excluded by index, Docs/distributed.md).
    @inline(__always) func isPositive(_ j: Int) -> Bool { labels[j] == label && j != ownIndex }
    /// j ∈ N_i: a different label. The own entry is excluded here too, so that "∖{i}" holds
    /// even if a caller's own entry carried another label.
    @inline(__always) func isNegative(_ j: Int) -> Bool { labels[j] != label && j != ownIndex }

    /// Writes zeros over the whole row: the gradient of an anchor that contributes nothing.
    @inline(__always) func zero() { values.update(repeating: 0, count: count) }
}

/// The per-anchor part of a pair loss: reads one row of similarities, returns ℓ_i and leaves
/// ∂ℓ_i/∂s_ij in the row. Per-row sums are accumulated in Double.
protocol AnchorTerm: Sendable {
    var name: String { get }
    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double
}

/// A `PairLoss` made of an `AnchorTerm` and the similarity/gradient products:
///
///     forward:   S = A · Rᵀ                       (gemm per segment, into S's columns)
///     per row:   ℓ_i, and G's row i = ∂ℓ_i/∂S_i    (in place over S)
///     backward:  dA += scale · G · R              (gemm per segment)
///                dR += scale · Gᵀ · A             (gemm per segment, when requested)
///
/// The workspace (b × R floats and R labels) grows on first use and is then reused, so a
/// steady-state step allocates nothing. Not thread-safe: one loss object per thread.
final class GemmPairLoss<Term: AnchorTerm>: PairLoss {
    let term: Term
    /// (b, R) S, then G.
    private var similarities = FlatBuffer<Float>(count: 0)
    /// (R) the references' labels, concatenated (the embeddings are never copied).
    private var referenceLabels = FlatBuffer<Int32>(count: 0)
    /// (R) their stamps, concatenated, when every segment has them.
    private var referenceStamps = FlatBuffer<Int32>(count: 0)
    /// (b) what each anchor's row gave, before the sums in row order.
    private var rowResults = FlatBuffer<RowResult>(count: 0, initialValue: RowResult())

    private(set) var statistics = PairStatistics()
    /// b of the last evaluation (its rows in `rowResults`).
    private var lastAnchorCount = 0
    private(set) var memoryTermPath: MemoryTermPath?
    private(set) var memoryTermRecomputedFraction: Double?
    let tuning: PairLossTuning
    /// The term against references without a gradient in one pass, when the term has one
    /// (`ContrastiveStream`, `TripletStream`, `MultiSimilarityStream`, `LogSumExpStream`); nil
    /// runs every evaluation through S.
    let onePass: (any OnePassTerm)?

    init(term: Term, tuning: PairLossTuning = PairLossTuning(), onePass: (any OnePassTerm)? = nil) {
        self.term = term
        self.tuning = tuning
        self.onePass = onePass
    }

    var name: String { term.name }

    var memoryTermIsPerAnchor: Bool { onePass != nil }

    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>,
                  referenceGradient: UnsafeMutablePointer<Float>?) -> Double {
        let b = input.anchorCount, d = input.dimension, R = input.referenceCount
        precondition(b >= 0 && d >= 1, "pair loss needs b ≥ 0 anchors of dimension d ≥ 1, got b \(b), d \(d)")
        statistics = PairStatistics()
        lastAnchorCount = 0
        guard b > 0, R > 0 else { return 0 }
        // References without a gradient (the memory) never build S when the term has a one-pass kernel.
        if referenceGradient == nil, let onePass {
            reserveRows(b)
            memoryTermPath = onePass.evaluate(input, reduction: reduction, scale: scale, anchorGradient: anchorGradient,
                                              results: rowResults.pointer)
            memoryTermRecomputedFraction = onePass.lastRecomputedFraction
            return summarizeRows(b)
        }
        if referenceGradient == nil {
            memoryTermPath = .products
            memoryTermRecomputedFraction = nil
        }
        reserve(similarityCount: b * R, referenceCount: R, anchorCount: b)
        let S = similarities.pointer, labels = referenceLabels.pointer
        let hasStamps = input.references.allSatisfy { $0.stamps != nil }
        let stamps: UnsafePointer<Int32>? = hasStamps ? UnsafePointer(referenceStamps.pointer) : nil

        // S[:, c ..< c+n] = A · segmentᵀ, written straight into the segment's columns (ldc = R).
        var column = 0
        for segment in input.references {
            gemm(.none, .transposed, m: b, n: segment.count, k: d,
                 a: input.anchors, lda: d, b: segment.embeddings, ldb: d, c: S + column, ldc: R)
            (labels + column).update(from: segment.labels, count: segment.count)
            if hasStamps { (referenceStamps.pointer + column).update(from: segment.stamps!, count: segment.count) }
            column += segment.count
        }

        // Per row: the hardest pairs while the row still holds similarities, the term, then
        // the active pairs of the gradient it left (which also decide the backward below).
        // Rows are independent, so they are split over the threads; each row's results land
        // in its own slot and are summed in row order below, so the totals do not depend on
        // the thread count.
        let results = rowResults.pointer
        let ownIndex = input.ownIndex, anchorLabels = input.anchorLabels, now = input.now
        for i in 0..<b {
            let own = ownIndex.map { Int($0[i]) } ?? -1
            precondition(own >= -1 && own < R, "anchor \(i)'s own index \(own) is outside -1..<\(R)")
        }
        parallelChunks(b, minimumChunk: max(1, tuning.rowsWorkPerThread / R)) { anchors in
            for i in anchors {
                let row = AnchorRow(values: S + i * R, labels: labels, count: R,
                                    label: anchorLabels[i], ownIndex: ownIndex.map { Int($0[i]) } ?? -1)
                let (hardestNegative, hardestPositive) = hardestPairs(row)
                let loss = term.lossAndGradient(row, reduction: reduction)
                let active = activePairs(row, stamps: stamps, now: now)
                results[i] = RowResult(loss: loss, hardestNegative: hardestNegative, hardestPositive: hardestPositive,
                                       activePositives: active.positives, activeNegatives: active.negatives,
                                       activeNegativeAgeSum: active.negativeAgeSum)
            }
        }
        let total = summarizeRows(b)

        // dA += scale · G · R and dR += scale · Gᵀ · A. When few pairs are active (a hinge
        // loss against a large memory, most negatives below the margin) the products are
        // mostly multiplications by zero, so the active pairs are added one by one instead.
        // (Every term leaves g = 0 at the own entry, so the active pairs are all the g ≠ 0.)
        let active = self.statistics.activePositives + self.statistics.activeNegatives
        if Double(active) <= tuning.sparseBackwardDensity * Double(b * R) {
            sparseBackward(input, S: S, R: R, scale: scale, anchorGradient: anchorGradient, referenceGradient: referenceGradient)
            return total
        }
        column = 0
        for segment in input.references {
            gemm(.none, .none, m: b, n: d, k: segment.count, alpha: scale,
                 a: S + column, lda: R, b: segment.embeddings, ldb: d, beta: 1, c: anchorGradient, ldc: d)
            if let dR = referenceGradient {
                gemm(.transposed, .none, m: segment.count, n: d, k: b, alpha: scale,
                     a: S + column, lda: R, b: input.anchors, ldb: d, beta: 1, c: dR + column * d, ldc: d)
            }
            column += segment.count
        }
        return total
    }

    /// The backward of the products above over the non-zero g_ij only: for each active pair,
    /// dA_i += scale·g_ij·r_j and dR_j += scale·g_ij·a_i (d multiply-adds each). A row is
    /// scanned 16 lanes at a time, skipping blocks with no active pair. Without dR the
    /// anchors are independent and split over the threads; with it (the batch term, whose
    /// references are few) dR_j must add the anchors in order, so one thread runs.
    private func sparseBackward(_ input: PairLossInput, S: UnsafeMutablePointer<Float>, R: Int, scale: Float,
                                anchorGradient: UnsafeMutablePointer<Float>, referenceGradient: UnsafeMutablePointer<Float>?) {
        let b = input.anchorCount, d = input.dimension
        let anchors = input.anchors, segments = input.references
        let minimumChunk = referenceGradient == nil ? max(1, tuning.rowsWorkPerThread / R) : b + 1
        parallelChunks(b, minimumChunk: minimumChunk) { anchorRange in
            var column = 0
            for segment in segments {
                for i in anchorRange {
                    let g = S + i * R + column
                    let dA = anchorGradient + i * d, a = anchors + i * d
                    let n = segment.count
                    var j = 0
                    while j < n {
                        if j + vectorWidth <= n, !any(loadVector(g + j) .!= 0) { j += vectorWidth; continue }
                        let end = min(j + vectorWidth, n)
                        while j < end {
                            if g[j] != 0 {
                                let weight = scale * g[j]
                                let r = segment.embeddings + j * d
                                for k in 0..<d { dA[k] += weight * r[k] }
                                if let dR = referenceGradient.map({ $0 + (column + j) * d }) {
                                    for k in 0..<d { dR[k] += weight * a[k] }
                                }
                            }
                            j += 1
                        }
                    }
                }
                column += segment.count
            }
        }
    }

    /// max_{j∈N_i} s_ij and min_{j∈P_i} s_ij of a row of similarities (−∞ / +∞ when N_i / P_i
    /// is empty), in one vectorised pass. The own entry is made NaN for the pass, which fails
    /// both comparisons, and then restored.
    private func hardestPairs(_ row: AnchorRow) -> (negative: Float, positive: Float) {
        let s = row.values, labels = row.labels, n = row.count
        let own = row.ownIndex, saved = own >= 0 ? s[own] : 0
        if own >= 0 { s[own] = .nan }
        defer { if own >= 0 { s[own] = saved } }
        let label = LabelVector(repeating: row.label)
        var maximum = FloatVector(repeating: -.infinity), minimum = FloatVector(repeating: .infinity)
        var j = 0
        while j + vectorWidth <= n {
            let v = loadVector(s + j), same = loadLabels(labels + j) .== label
            maximum.replace(with: v, where: .!same .& (maximum .< v))
            minimum.replace(with: v, where: same .& (v .< minimum))
            j += vectorWidth
        }
        var negative = maximum.max(), positive = minimum.min()
        while j < n {
            let v = s[j]
            if labels[j] == row.label { if v < positive { positive = v } } else if v > negative { negative = v }
            j += 1
        }
        return (negative, positive)
    }

    /// The active pairs of a row of gradients: g_ij ≠ 0 among the positives and among the
    /// negatives, and the sum of the active negatives' ages (now − stamp) when there are stamps.
    private func activePairs(_ row: AnchorRow, stamps: UnsafePointer<Int32>?, now: Int)
        -> (positives: Int, negatives: Int, negativeAgeSum: Int) {
        let g = row.values, labels = row.labels, n = row.count
        let label = LabelVector(repeating: row.label), zero = LabelVector(), one = LabelVector(repeating: 1)
        let clock = Int32(clamping: now), nowVector = LabelVector(repeating: clock)
        var positives = 0, negatives = 0, ageSum = 0
        var j = 0
        // Lane counters in blocks of 16 vectors: a lane adds at most 16 ages, far from overflow.
        while j + vectorWidth <= n {
            var positiveLanes = zero, negativeLanes = zero, ageLanes = zero
            let end = min(n - n % vectorWidth, j + 16 * vectorWidth)
            while j < end {
                let active = loadVector(g + j) .!= 0, same = loadLabels(labels + j) .== label
                positiveLanes &+= zero.replacing(with: one, where: active .& same)
                let activeNegative = active .& .!same
                negativeLanes &+= zero.replacing(with: one, where: activeNegative)
                // Stamps are read only where a negative is active: rarely, against a memory
                // whose negatives mostly sit below a hinge's margin.
                if let stamps, any(activeNegative) {
                    ageLanes &+= zero.replacing(with: nowVector &- loadLabels(stamps + j), where: activeNegative)
                }
                j += vectorWidth
            }
            positives += Int(positiveLanes.wrappedSum())
            negatives += Int(negativeLanes.wrappedSum())
            if stamps != nil { for lane in 0..<vectorWidth { ageSum += Int(ageLanes[lane]) } }
        }
        while j < n {
            if g[j] != 0 {
                if labels[j] == row.label { positives += 1 } else {
                    negatives += 1
                    if let stamps { ageSum += Int(clock &- stamps[j]) }
                }
            }
            j += 1
        }
        // The own entry is neither a positive nor a negative (every term leaves it at 0).
        if row.ownIndex >= 0, g[row.ownIndex] != 0 {
            if labels[row.ownIndex] == row.label { positives -= 1 } else {
                negatives -= 1
                if let stamps { ageSum -= Int(clock &- stamps[row.ownIndex]) }
            }
        }
        return (positives, negatives, ageSum)
    }

    /// Σ_i ℓ_i of the first b row results, summed in row order (so the totals do not depend on
    /// the thread count), and their statistics into `statistics`.
    private func summarizeRows(_ b: Int) -> Double {
        lastAnchorCount = b
        let (total, statistics) = sums(ofAnchors: 0..<b)
        self.statistics = statistics
        return total
    }

    func sums(ofAnchors anchors: Range<Int>) -> (loss: Double, statistics: PairStatistics) {
        precondition(anchors.lowerBound >= 0 && anchors.upperBound <= lastAnchorCount,
                     "anchors \(anchors) outside the \(lastAnchorCount) of the last evaluation")
        var total = 0.0
        var statistics = PairStatistics()
        statistics.anchors = anchors.count
        for i in anchors {
            let result = rowResults[i]
            if result.hardestNegative > -.infinity {
                statistics.hardestNegativeSum += Double(result.hardestNegative); statistics.anchorsWithNegatives += 1
            }
            if result.hardestPositive < .infinity {
                statistics.hardestPositiveSum += Double(result.hardestPositive); statistics.anchorsWithPositives += 1
            }
            total += result.loss
            statistics.activePositives += result.activePositives
            statistics.activeNegatives += result.activeNegatives
            statistics.activeNegativeAgeSum += result.activeNegativeAgeSum
        }
        return (total, statistics)
    }

    private func reserveRows(_ anchorCount: Int) {
        if rowResults.count < anchorCount {
            rowResults = FlatBuffer(count: max(anchorCount, 2 * rowResults.count), initialValue: RowResult())
        }
    }

    /// Grows the workspace geometrically, so a memory that fills up over many steps
    /// reallocates only a few times.
    private func reserve(similarityCount: Int, referenceCount: Int, anchorCount: Int) {
        reserveRows(anchorCount)
        if similarities.count < similarityCount {
            similarities = FlatBuffer<Float>(count: max(similarityCount, 2 * similarities.count))
        }
        if referenceLabels.count < referenceCount {
            referenceLabels = FlatBuffer<Int32>(count: max(referenceCount, 2 * referenceLabels.count))
            referenceStamps = FlatBuffer<Int32>(count: referenceLabels.count)
        }
    }
}

/// One anchor row's contribution to the loss and to `PairStatistics`.
struct RowResult: BitwiseCopyable {
    var loss = 0.0
    var hardestNegative: Float = -.infinity, hardestPositive: Float = .infinity
    var activePositives = 0, activeNegatives = 0, activeNegativeAgeSum = 0
}

typealias LabelVector = SIMD16<Int32>

@inline(__always)
func loadLabels(_ pointer: UnsafePointer<Int32>) -> LabelVector {
    UnsafeRawPointer(pointer).loadUnaligned(as: LabelVector.self)
}

/// Tuning of the loss kernels: a value each loss is built with (`makePairLoss`), so that tests
/// can build losses on either backward path or thread split side by side.
public struct PairLossTuning: Sendable, Equatable {
    /// The largest fraction of non-zero g_ij for which the backward adds the active pairs one
    /// by one instead of running the two dense products. Measured (`XBM_BENCH=1 swift test -c
    /// release --filter LossBenchmarkTests`, contrastive, b 64, d 128, M 16,384, AVX2, one
    /// thread): the sparse path costs 8.7 ms at no active pair, 10.2 ms at 8.3% and 14.4 ms at
    /// 16%, the dense one 11.6–12.3 ms throughout; break-even near 9%, so 1/12.
    public var sparseBackwardDensity = 1.0 / 12
    /// Similarities per thread below which the per-row passes stay on one thread (Int.max: one
    /// thread under the same matrix products).
    public var rowsWorkPerThread = 32768
    /// The kernel of the contrastive memory term's exact screening (Docs/losses.md, "Exact
    /// screening of the memory term"), or nil for the fp32 one pass. Either gives the same bits;
    /// screening runs only against references that carry bf16 rows (a memory built with
    /// `lowPrecisionCopy`). Default nil: on the host measured (an AVX512-BF16 Xeon whose
    /// `VDPBF16PS` issues at a quarter of its FMA rate) the screen costs more than the fp32 one
    /// pass it saves (Docs/performance.md, "Exact screening"); `XBM_SCREENING=on` picks this
    /// CPU's best kernel.
    public var screening: ScreeningKernel?
    /// Whether the memory term (references without a gradient) runs in one pass
    /// (`ContrastiveStream`, `TripletStream`, `MultiSimilarityStream`, `LogSumExpStream`; the
    /// default) or through S = A · Mᵀ and the passes over it (a comparison's way to time the
    /// product path: `XBM_MEMORY_PATH=gemm`).
    public var onePass = true

    public init(sparseBackwardDensity: Double = 1.0 / 12, rowsWorkPerThread: Int = 32768,
                screening: ScreeningKernel? = nil, onePass: Bool = true) {
        self.sparseBackwardDensity = sparseBackwardDensity
        self.rowsWorkPerThread = rowsWorkPerThread
        self.screening = screening
        self.onePass = onePass
    }

    /// `onePass` from `XBM_MEMORY_PATH`: unset or `one-pass` true (the default), `gemm` false.
    /// Throws when the value is neither.
    public static func onePass(environment: [String: String]) throws -> Bool {
        switch environment["XBM_MEMORY_PATH"] {
        case nil, "one-pass": return true
        case "gemm": return false
        case let value?:
            throw MemoryPathSettingError("XBM_MEMORY_PATH=\(value) is not one of one-pass (the default) or gemm; "
                                        + "unset it for the one-pass memory term")
        }
    }

    /// `screening` from `XBM_SCREENING`: `on` this CPU's best kernel (none without AVX2), unset
    /// or `off` none (the fp32 one pass, the default), or a kernel by name (`scalar`, `avx2`,
    /// `avx512-bf16`; a test's way to run one). Throws when the value is unknown or the CPU lacks
    /// the kernel's ISA.
    public static func screening(environment: [String: String]) throws -> ScreeningKernel? {
        guard let value = environment["XBM_SCREENING"], value != "off" else { return nil }
        if value == "on" { return .detected }
        let named: [String: ScreeningKernel] = ["scalar": .scalar, "avx2": .avx2, "avx512-bf16": .avx512BF16]
        guard let kernel = named[value] else {
            throw ScreeningSettingError("XBM_SCREENING=\(value) is not one of on, off, scalar, avx2, avx512-bf16")
        }
        if let problem = kernel.problem(features: .detected(environment: environment)) { throw ScreeningSettingError("XBM_SCREENING=\(value): \(problem)") }
        return kernel
    }
}

/// An `XBM_MEMORY_PATH` this process does not know, with what to set instead.
public struct MemoryPathSettingError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A screening setting this process cannot honour, with what to set instead.
public struct ScreeningSettingError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Which computation the memory term (references without a gradient) ran, for `bench step`.
public enum MemoryTermPath: Sendable, Equatable, CustomStringConvertible {
    /// S = A · Mᵀ by sgemm, then passes over S.
    case products
    /// A one-pass term (`ContrastiveStream`, `TripletStream`, `MultiSimilarityStream`,
    /// `LogSumExpStream`) in fp32.
    case onePass
    /// `ContrastiveStream` screened with a bf16 kernel, the candidates recomputed in fp32.
    case screened(ScreeningKernel)

    public var description: String {
        switch self {
        case .products: "GEMM"
        case .onePass: "fp32 one-pass"
        case let .screened(kernel): "screened bf16 (\(kernel))"
        }
    }
}

/// A term's evaluation against references that take no gradient (the cross-batch memory) in
/// one pass, without the b × R similarity matrix: fills each anchor's `RowResult`, adds
/// `scale` · ∂L/∂a into the anchor gradient and returns nothing else.
/// Returns the path it took.
protocol OnePassTerm: AnyObject {
    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>, results: UnsafeMutablePointer<RowResult>) -> MemoryTermPath
    /// The share of the rows × anchor groups of the last evaluation computed in fp32.
    var lastRecomputedFraction: Double { get }
}

// Numerically stable scalar helpers for the per-row sums (Double).

/// log(1 + eˣ) without overflow.
@inline(__always) func softplus(_ x: Double) -> Double {
    max(x, 0) + log1p(exp(-abs(x)))
}

/// 1 / (1 + e⁻ˣ) without overflow.
@inline(__always) func logistic(_ x: Double) -> Double {
    x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
}
