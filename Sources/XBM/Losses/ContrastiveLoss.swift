/// XBM's contrastive loss (SPEC §5, `contrastive`):
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

    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double {
        let s = row.values
        let positiveLimit = 1 - epsilon
        var positiveSum = 0.0, negativeSum = 0.0
        var positiveCount = 0, negativeCount = 0
        for j in 0..<row.count {
            let sij = Double(s[j])
            if row.isPositive(j) {
                if sij < positiveLimit { positiveSum += 1 - sij; positiveCount += 1 }
            } else if row.isNegative(j), sij > margin {
                negativeSum += sij; negativeCount += 1
            }
        }
        let positiveWeight = reduction == .mean ? 1 / Double(max(positiveCount, 1)) : 1
        let negativeWeight = reduction == .mean ? 1 / Double(max(negativeCount, 1)) : 1
        let positiveGradient = Float(-positiveWeight), negativeGradient = Float(negativeWeight)
        for j in 0..<row.count {
            let sij = Double(s[j])
            if row.isPositive(j) {
                s[j] = sij < positiveLimit ? positiveGradient : 0
            } else if row.isNegative(j) {
                s[j] = sij > margin ? negativeGradient : 0
            } else {
                s[j] = 0
            }
        }
        return positiveWeight * positiveSum + negativeWeight * negativeSum
    }
}
