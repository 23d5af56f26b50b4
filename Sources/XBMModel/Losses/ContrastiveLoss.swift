import XBMKernels
/// XBM's contrastive loss (Docs/losses.md, `contrastive`):
///
///     ℓ_i = Σ_{j∈P_i, s_ij<1−ε} (1 − s_ij)  +  Σ_{j∈N_i, s_ij>m} s_ij
///
///     ∂ℓ_i/∂s_ij = −1 for an active positive, +1 for an active negative, 0 otherwise;
///     then ∂ℓ_i/∂a_i = Σ_j g_ij r_j and ∂ℓ_i/∂r_j = g_ij a_i.
///
/// Mining: a positive is active until it is (numerically) identical to the anchor, so an
/// exact duplicate at another index adds nothing but is not an error; a negative is active
/// once it is more similar than the margin m, so easy negatives cost nothing.
/// Pairs are independent, so an anchor with no positive still pays for its negatives and one
/// with no negative still pays for its positives (as in XBM's and the peer's code).
///
/// `.mean`: the positive sum is divided by the number of active positives and the negative
/// sum by the number of active negatives (each at least 1), so each g_ij is ∓1/count.
struct ContrastiveTerm: AnchorTerm {
    /// m
    let margin: Double
    /// ε
    let epsilon: Double

    var name: String { LossKind.contrastive.rawValue }

    /// One branch-free pass writes g_ij ∈ {−1, 0, +1} and the sums (16 lane sums within blocks
    /// of 256, then Double across blocks); `.mean` then rescales the row. The own entry is made
    /// NaN first, which fails both activity tests and so gets g = 0 without a test per pair.
    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double {
        let s = row.values, labels = row.labels, label = row.label, n = row.count
        let positiveLimit = Float(1 - epsilon), m = Float(margin)
        if row.ownIndex >= 0 { s[row.ownIndex] = .nan }
        var positiveSum = 0.0, negativeSum = 0.0
        var positiveCount = 0, negativeCount = 0
        let anchorLabel = SIMD16<Int32>(repeating: label)
        var start = 0
        while start < n {
            let end = min(start + 256, n)
            var lanePositive = FloatVector.zero, laneNegative = FloatVector.zero
            var lanePositiveCount = SIMD16<Int32>.zero, laneNegativeCount = SIMD16<Int32>.zero
            var j = start
            while j + vectorWidth <= end {
                let sij = loadVector(s + j)
                let same = UnsafeRawPointer(labels + j).loadUnaligned(as: SIMD16<Int32>.self) .== anchorLabel
                let activePositive = same .& (sij .< positiveLimit)
                let activeNegative = .!same .& (sij .> m)
                lanePositive += FloatVector.zero.replacing(with: 1 - sij, where: activePositive)
                laneNegative += FloatVector.zero.replacing(with: sij, where: activeNegative)
                lanePositiveCount &+= SIMD16<Int32>.zero.replacing(with: 1, where: activePositive)
                laneNegativeCount &+= SIMD16<Int32>.zero.replacing(with: 1, where: activeNegative)
                storeVector(FloatVector.zero.replacing(with: -1, where: activePositive).replacing(with: 1, where: activeNegative),
                            s + j)
                j += vectorWidth
            }
            var blockPositive = lanePositive.sum(), blockNegative = laneNegative.sum()
            var blockPositiveCount = lanePositiveCount.wrappedSum(), blockNegativeCount = laneNegativeCount.wrappedSum()
            while j < end {
                let sij = s[j]
                let same = labels[j] == label
                let activePositive = same && sij < positiveLimit
                let activeNegative = !same && sij > m
                blockPositive += activePositive ? 1 - sij : 0
                blockNegative += activeNegative ? sij : 0
                blockPositiveCount &+= activePositive ? 1 : 0
                blockNegativeCount &+= activeNegative ? 1 : 0
                s[j] = activePositive ? -1 : (activeNegative ? 1 : 0)
                j += 1
            }
            positiveSum += Double(blockPositive)
            negativeSum += Double(blockNegative)
            positiveCount += Int(blockPositiveCount)
            negativeCount += Int(blockNegativeCount)
            start = end
        }
        guard reduction == .mean else { return positiveSum + negativeSum }
        let positiveWeight = 1 / Double(max(positiveCount, 1)), negativeWeight = 1 / Double(max(negativeCount, 1))
        let wp = Float(positiveWeight), wn = Float(negativeWeight)
        for j in 0..<n { s[j] *= s[j] < 0 ? wp : wn }
        return positiveWeight * positiveSum + negativeWeight * negativeSum
    }
}
