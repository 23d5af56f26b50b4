/// A contiguous run of reference embeddings with their labels: the global batch, or the
/// cross-batch memory's valid rows.
public struct ReferenceSegment {
    /// (count, d), row major, unit-length rows.
    public var embeddings: UnsafePointer<Float>
    /// (count)
    public var labels: UnsafePointer<Int32>
    public var count: Int
    /// (count) or nil: the iteration at which each reference was computed (the memory's
    /// entries carry one). Read only by the statistics, for the age of the active negatives.
    public var stamps: UnsafePointer<Int32>?
    /// The rows' bf16 copies, or nil: what exact screening reads (the memory keeps them when
    /// screening is on). Without them the contrastive memory term runs its fp32 one pass.
    public var lowPrecision: LowPrecisionRows?

    public init(embeddings: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
                stamps: UnsafePointer<Int32>? = nil, lowPrecision: LowPrecisionRows? = nil) {
        self.embeddings = embeddings
        self.labels = labels
        self.count = count
        self.stamps = stamps
        self.lowPrecision = lowPrecision
    }
}

/// A segment's rows in bf16 for exact screening (Docs/losses.md, "Exact screening of the memory
/// term"): row j's `stride` values (`BF16.stride`) at `rows + j · stride`, rounded to nearest
/// even from the fp32 row, and ρ_j ≥ ‖r_j‖ (`ScreeningBound.normBound`) at `normBounds[j]`.
public struct LowPrecisionRows {
    public var rows: UnsafePointer<UInt16>
    public var stride: Int
    public var normBounds: UnsafePointer<Float>

    public init(rows: UnsafePointer<UInt16>, stride: Int, normBounds: UnsafePointer<Float>) {
        self.rows = rows
        self.stride = stride
        self.normBounds = normBounds
    }
}

/// How a per-anchor term sums its pairs (Docs/losses.md, `--xbm-reduce`).
public enum PairReduction: String, Sendable, CaseIterable, Codable {
    /// The paper's: every active pair adds its full term.
    case sum
    /// The positive part and the negative part are each divided by the number of pairs
    /// active in them (at least 1).
    case mean
}

/// The arguments of one pair-loss evaluation: b anchors against R references.
public struct PairLossInput {
    /// (b, d) unit-length anchors.
    public var anchors: UnsafePointer<Float>
    /// (b)
    public var anchorLabels: UnsafePointer<Int32>
    public var anchorCount: Int
    /// d
    public var dimension: Int
    /// The references, concatenated in order: reference j of the loss is row j of this
    /// concatenation. One or two segments (two when a ring buffer has wrapped).
    public var references: [ReferenceSegment]
    /// (b) or nil: for each anchor, the index (in the concatenation) of its own entry, which
    /// is excluded by index — never by similarity; -1 when it has none.
    public var ownIndex: UnsafePointer<Int32>?
    /// The current iteration, against which the segments' `stamps` are aged:
    /// age_j = now − stamp_j (statistics only).
    public var now = 0

    public init(anchors: UnsafePointer<Float>, anchorLabels: UnsafePointer<Int32>, anchorCount: Int, dimension: Int,
                references: [ReferenceSegment], ownIndex: UnsafePointer<Int32>?) {
        self.anchors = anchors
        self.anchorLabels = anchorLabels
        self.anchorCount = anchorCount
        self.dimension = dimension
        self.references = references
        self.ownIndex = ownIndex
    }

    public var referenceCount: Int { references.reduce(0) { $0 + $1.count } }
}

/// A pair-based loss (Docs/losses.md): per anchor ℓ_i over the anchor's similarities to all
/// references, with analytic gradients for both.
///
/// Implementations hold their own similarity workspace (b × R), grown on first use and reused,
/// and compute similarities and gradients with `gemm`, so a memory of M rows costs about one
/// (b × d) · (d × M) product forward and one backward.
public protocol PairLoss: AnyObject {
    /// The loss's name (`contrastive`, `multi-similarity`, `triplet`, `lifted`, `npair`).
    var name: String { get }

    /// Returns Σ_i ℓ_i over the b anchors (not divided by anything). Adds
    /// `scale` · ∂(Σ_i ℓ_i)/∂anchors into `anchorGradient` (b, d) and, when
    /// `referenceGradient` is non-nil, `scale` · ∂(Σ_i ℓ_i)/∂references into it (R, d, in the
    /// concatenated order). Similarities are cosines of unit vectors; the gradients are those
    /// of the formula in s = a·r, without any projection onto the unit sphere (the network's
    /// L2-normalisation backward does that).
    func evaluate(_ input: PairLossInput, reduction: PairReduction, scale: Float,
                  anchorGradient: UnsafeMutablePointer<Float>,
                  referenceGradient: UnsafeMutablePointer<Float>?) -> Double

    /// What the last `evaluate` saw (all zero before the first call).
    var statistics: PairStatistics { get }

    /// True when each anchor's results against references that take no gradient (the memory)
    /// have the same bits whatever other anchors are evaluated with it (the one-pass kernels,
    /// every loss's by default); false when they come from matrix products, whose rounding BLAS
    /// may choose by the product's shape (small products take other kernels).
    var memoryTermIsPerAnchor: Bool { get }

    /// Σ ℓ_i and the statistics of the anchors `anchors` of the last `evaluate`, added in anchor
    /// order as its totals are: the sums of parts of a batch (`--deterministic`'s chunks, whose
    /// sums must not depend on which other anchors were evaluated with them). Empty before the
    /// first call or after one that had no references.
    func sums(ofAnchors anchors: Range<Int>) -> (loss: Double, statistics: PairStatistics)

    /// The computation of the last evaluation without a reference gradient (the memory term);
    /// nil before the first.
    var memoryTermPath: MemoryTermPath? { get }

    /// For the one-pass paths, the share of the memory rows × groups of 16 anchors that the last
    /// such evaluation computed in fp32: 1 unscreened, what the screen kept when screened; nil
    /// on the GEMM path or before the first.
    var memoryTermRecomputedFraction: Double? { get }
}

/// Diagnostics of one pair-loss evaluation, summed over its anchors so that the sums of
/// several evaluations (the ranks' anchors) add up; Docs/losses.md, Diagnostics.
///
/// A pair (i, j) is active when g_ij = ∂ℓ_i/∂s_ij ≠ 0 after the loss; P_i and N_i are the
/// positives and negatives of anchor i (by label, the own entry excluded by index).
public struct PairStatistics: Sendable, Equatable {
    /// Anchors evaluated.
    public var anchors = 0
    /// Σ_i |{ j ∈ P_i : g_ij ≠ 0 }|
    public var activePositives = 0
    /// Σ_i |{ j ∈ N_i : g_ij ≠ 0 }|
    public var activeNegatives = 0
    /// Σ over the anchors with N_i ≠ ∅ of max_{j∈N_i} s_ij, and the number of those anchors.
    public var hardestNegativeSum = 0.0
    public var anchorsWithNegatives = 0
    /// Σ over the anchors with P_i ≠ ∅ of min_{j∈P_i} s_ij, and the number of those anchors.
    public var hardestPositiveSum = 0.0
    public var anchorsWithPositives = 0
    /// Σ over the active negatives of their age (now − stamp); 0 without stamps.
    public var activeNegativeAgeSum = 0

    public init() {}

    /// Sums of two disjoint sets of anchors.
    public static func + (a: PairStatistics, b: PairStatistics) -> PairStatistics {
        var sum = a
        sum.anchors += b.anchors
        sum.activePositives += b.activePositives
        sum.activeNegatives += b.activeNegatives
        sum.hardestNegativeSum += b.hardestNegativeSum
        sum.anchorsWithNegatives += b.anchorsWithNegatives
        sum.hardestPositiveSum += b.hardestPositiveSum
        sum.anchorsWithPositives += b.anchorsWithPositives
        sum.activeNegativeAgeSum += b.activeNegativeAgeSum
        return sum
    }

    /// Active positive pairs per anchor.
    public var meanActivePositives: Double { anchors > 0 ? Double(activePositives) / Double(anchors) : 0 }
    /// Active negative pairs per anchor.
    public var meanActiveNegatives: Double { anchors > 0 ? Double(activeNegatives) / Double(anchors) : 0 }
    /// Mean over the anchors that have a negative of their largest similarity to one.
    public var meanHardestNegative: Double? {
        anchorsWithNegatives > 0 ? hardestNegativeSum / Double(anchorsWithNegatives) : nil
    }
    /// Mean over the anchors that have a positive of their smallest similarity to one.
    public var meanHardestPositive: Double? {
        anchorsWithPositives > 0 ? hardestPositiveSum / Double(anchorsWithPositives) : nil
    }
    /// Mean age of the active negative pairs (meaningful when the references had stamps).
    public var meanActiveNegativeAge: Double? {
        activeNegatives > 0 ? Double(activeNegativeAgeSum) / Double(activeNegatives) : nil
    }

    /// The sums as Float or Double, to ride on a collective (`floatCount` values). `anchors` is
    /// not among them: the caller knows the global count.
    public static let floatCount = 7

    public func write<T: BinaryFloatingPoint>(to values: UnsafeMutablePointer<T>) {
        values[0] = T(activePositives)
        values[1] = T(activeNegatives)
        values[2] = T(hardestNegativeSum)
        values[3] = T(anchorsWithNegatives)
        values[4] = T(hardestPositiveSum)
        values[5] = T(anchorsWithPositives)
        values[6] = T(activeNegativeAgeSum)
    }

    /// The inverse of `write(to:)` (counts rounded to integers), for `anchors` anchors.
    public init<T: BinaryFloatingPoint>(reading values: UnsafePointer<T>, anchors: Int) {
        self.anchors = anchors
        activePositives = Int(values[0].rounded())
        activeNegatives = Int(values[1].rounded())
        hardestNegativeSum = Double(values[2])
        anchorsWithNegatives = Int(values[3].rounded())
        hardestPositiveSum = Double(values[4])
        anchorsWithPositives = Int(values[5].rounded())
        activeNegativeAgeSum = Int(values[6].rounded())
    }
}
