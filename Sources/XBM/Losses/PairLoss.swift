/// A contiguous run of reference embeddings with their labels: the global batch, or the
/// cross-batch memory's valid rows.
public struct ReferenceSegment {
    /// (count, d), row major, unit-length rows.
    public var embeddings: UnsafePointer<Float>
    /// (count)
    public var labels: UnsafePointer<Int32>
    public var count: Int

    public init(embeddings: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int) {
        self.embeddings = embeddings
        self.labels = labels
        self.count = count
    }
}

/// How a per-anchor term sums its pairs (SPEC §5, `--xbm-reduce`).
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

/// A pair-based loss (SPEC §5): per anchor ℓ_i over the anchor's similarities to all
/// references, with analytic gradients for both.
///
/// Implementations hold their own similarity workspace (b × R), grown on first use and reused,
/// and compute similarities and gradients with `gemm`, so a memory of M rows costs about one
/// (b × d) · (d × M) product forward and one backward.
public protocol PairLoss: AnyObject {
    /// The §5 name (`contrastive`, `multi-similarity`, `triplet`, `lifted`, `npair`).
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
}
