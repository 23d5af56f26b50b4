import Foundation

/// Generalised lifted-structure loss (Hermans et al. 2017, in similarities; Docs/losses.md, `lifted`):
///
///     ℓ_i = [ log(w_P Σ_{p∈P_i} e^{1−s_ip}) + log(w_N Σ_{n∈N_i} e^{s_in−m}) ]_+
///
///     when the hinge is active:
///     ∂ℓ_i/∂s_ip = −e^{1−s_ip} / Σ_{p'} e^{1−s_ip'}     (a soft-min over the positives)
///     ∂ℓ_i/∂s_in = +e^{s_in−m} / Σ_{n'} e^{s_in'−m}     (a soft-max over the negatives)
///     then ∂ℓ_i/∂a_i = Σ_j g_ij r_j, ∂ℓ_i/∂r_j = g_ij a_i.
///
/// Mining is soft: the log-sum-exps are smooth versions of the hardest positive's distance
/// and the hardest negative's similarity, so every pair gets a gradient weighted by how
/// hard it is, and none is discarded. An anchor with no positive or no negative contributes
/// 0 (a log-sum over nothing is −∞, which the hinge clips).
///
/// `.sum`: w_P = w_N = 1. `.mean`: w_P = 1/|P_i|, w_N = 1/|N_i| — log-mean-exp instead of
/// log-sum-exp, so the term does not grow by log |N_i| when the memory adds negatives. The
/// weights do not change the soft-max gradients, only where the hinge switches on.
struct LiftedStructureTerm: AnchorTerm {
    /// m
    let margin: Double

    var name: String { LossKind.lifted.rawValue }

    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double {
        let s = row.values
        var minimumPositive = Double.infinity, maximumNegative = -Double.infinity
        var positiveCount = 0, negativeCount = 0
        for j in 0..<row.count {
            if row.isPositive(j) { minimumPositive = min(minimumPositive, Double(s[j])); positiveCount += 1 }
            else if row.isNegative(j) { maximumNegative = max(maximumNegative, Double(s[j])); negativeCount += 1 }
        }
        guard positiveCount > 0, negativeCount > 0 else { row.zero(); return 0 }

        // Shift each log-sum-exp by its largest exponent.
        let positiveShift = 1 - minimumPositive, negativeShift = maximumNegative - margin
        // Each pair's shifted exponential is left in the row: the gradient is it, normalised.
        var positiveSum = 0.0, negativeSum = 0.0
        for j in 0..<row.count {
            let sij = Double(s[j])
            if row.isPositive(j) {
                let e = exp(1 - sij - positiveShift); positiveSum += e; s[j] = Float(e)
            } else if row.isNegative(j) {
                let e = exp(sij - margin - negativeShift); negativeSum += e; s[j] = Float(e)
            } else {
                s[j] = 0
            }
        }
        let positiveWeight = reduction == .mean ? 1 / Double(positiveCount) : 1
        let negativeWeight = reduction == .mean ? 1 / Double(negativeCount) : 1
        let hinge = positiveShift + log(positiveWeight * positiveSum)
                  + negativeShift + log(negativeWeight * negativeSum)
        guard hinge > 0 else { row.zero(); return 0 }

        let positiveFactor = Float(-1 / positiveSum), negativeFactor = Float(1 / negativeSum)
        for j in 0..<row.count {
            if row.isPositive(j) { s[j] *= positiveFactor } else if row.isNegative(j) { s[j] *= negativeFactor }
        }
        return hinge
    }
}
