import Foundation

/// Multi-similarity loss (Wang et al. 2019; Docs/losses.md, `multi-similarity`):
///
///     mining:  Ñ_i = { n ∈ N_i : s_in > min_{p∈P_i} s_ip − μ }
///              P̃_i = { p ∈ P_i : s_ip < max_{n∈N_i} s_in + μ }
///     ℓ_i = (1/α) log(1 + w_P Σ_{p∈P̃_i} e^{−α(s_ip−λ)}) + (1/β) log(1 + w_N Σ_{n∈Ñ_i} e^{β(s_in−λ)})
///
///     ∂ℓ_i/∂s_ip = −w_P e^{−α(s_ip−λ)} / (1 + w_P Σ_{p'∈P̃_i} e^{−α(s_ip'−λ)})      (p ∈ P̃_i)
///     ∂ℓ_i/∂s_in = +w_N e^{β(s_in−λ)}  / (1 + w_N Σ_{n'∈Ñ_i} e^{β(s_in'−λ)})       (n ∈ Ñ_i)
///     then ∂ℓ_i/∂a_i = Σ_j g_ij r_j, ∂ℓ_i/∂r_j = g_ij a_i.
///
/// `.sum`: w_P = w_N = 1 (the paper's). `.mean`: w_P = 1/|P̃_i|, w_N = 1/|Ñ_i| — the sums
/// inside the logarithms become means over the mined pairs, so the term no longer grows like
/// log M with the memory size while keeping the soft-max weighting among pairs.
///
/// Mining keeps negatives harder than the hardest positive (and positives harder than the
/// hardest negative) by the margin μ: the pairs that violate the ordering or nearly do.
/// An anchor with no positive or no negative cannot be mined and contributes 0. P̃_i is
/// empty exactly when Ñ_i is (both say max_n s_in ≤ min_p s_ip − μ), and then ℓ_i = 0.
/// The log-sums are shifted by their largest exponent (never below 0, for the "1 +").
struct MultiSimilarityTerm: AnchorTerm {
    /// α, β, λ, μ
    let alpha: Double, beta: Double, lambda: Double, mu: Double

    var name: String { LossKind.multiSimilarity.rawValue }

    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double {
        let s = row.values
        var minimumPositive = Double.infinity, maximumNegative = -Double.infinity
        for j in 0..<row.count {
            if row.isPositive(j) { minimumPositive = min(minimumPositive, Double(s[j])) }
            else if row.isNegative(j) { maximumNegative = max(maximumNegative, Double(s[j])) }
        }
        guard minimumPositive.isFinite, maximumNegative.isFinite else { row.zero(); return 0 }
        let negativeFloor = minimumPositive - mu, positiveCeiling = maximumNegative + mu

        // The largest exponents belong to the hardest pairs, which are mined whenever any is.
        let positiveShift = max(0, -alpha * (minimumPositive - lambda))
        let negativeShift = max(0, beta * (maximumNegative - lambda))
        // Each mined pair's shifted exponential is left in the row (0 for the others): the
        // gradient is it times a per-part factor.
        var positiveSum = 0.0, negativeSum = 0.0
        var positiveCount = 0, negativeCount = 0
        for j in 0..<row.count {
            let sij = Double(s[j])
            if row.isPositive(j), sij < positiveCeiling {
                let e = exp(-alpha * (sij - lambda) - positiveShift)
                positiveSum += e; positiveCount += 1; s[j] = Float(e)
            } else if row.isNegative(j), sij > negativeFloor {
                let e = exp(beta * (sij - lambda) - negativeShift)
                negativeSum += e; negativeCount += 1; s[j] = Float(e)
            } else {
                s[j] = 0
            }
        }
        guard positiveCount > 0, negativeCount > 0 else { row.zero(); return 0 }

        let positiveWeight = reduction == .mean ? 1 / Double(positiveCount) : 1
        let negativeWeight = reduction == .mean ? 1 / Double(negativeCount) : 1
        // 1 + w Σ e^x = e^c · (e^{−c} + w Σ e^{x−c})
        let positiveDenominator = exp(-positiveShift) + positiveWeight * positiveSum
        let negativeDenominator = exp(-negativeShift) + negativeWeight * negativeSum
        let loss = (positiveShift + log(positiveDenominator)) / alpha
                 + (negativeShift + log(negativeDenominator)) / beta

        let positiveFactor = Float(-positiveWeight / positiveDenominator)
        let negativeFactor = Float(negativeWeight / negativeDenominator)
        for j in 0..<row.count {
            if row.isPositive(j) { s[j] *= positiveFactor } else if row.isNegative(j) { s[j] *= negativeFactor }
        }
        return loss
    }
}
