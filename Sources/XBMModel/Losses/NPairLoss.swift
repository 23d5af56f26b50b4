import Foundation

/// Multi-class N-pair loss (Sohn 2016, with temperature τ; Docs/losses.md, `npair`):
///
///     ℓ_i = (1/|P_i|) Σ_{p∈P_i} log(1 + w_N Σ_{n∈N_i} e^{(s_in − s_ip)/τ})
///
/// With L = log(w_N Σ_n e^{s_in/τ}) and σ_p = logistic(L − s_ip/τ), each term is
/// softplus(L − s_ip/τ), and
///
///     ∂ℓ_i/∂s_ip = −σ_p / (τ |P_i|)
///     ∂ℓ_i/∂s_in = q_n · Σ_p σ_p / (τ |P_i|),   q_n = e^{s_in/τ} / Σ_{n'} e^{s_in'/τ}
///     then ∂ℓ_i/∂a_i = Σ_j g_ij r_j, ∂ℓ_i/∂r_j = g_ij a_i,
///
/// so a row costs O(R), not O(|P_i|·|N_i|).
///
/// Mining is soft, as in a soft-max classifier: each positive competes against all negatives
/// and hard negatives (large s_in) dominate q. An anchor with no positive or no negative
/// contributes 0.
///
/// `.sum` is the table's formula (w_N = 1; the positives are already averaged). `.mean`:
/// w_N = 1/|N_i|, the negatives' sum inside the log becomes a mean, so the term does not
/// grow by log |N_i| with the memory size; the positive part stays the mean it already is.
struct NPairTerm: AnchorTerm {
    /// τ
    let temperature: Double

    var name: String { LossKind.npair.rawValue }

    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double {
        let s = row.values
        let inverseTemperature = 1 / temperature
        var maximumNegative = -Double.infinity
        var positiveCount = 0, negativeCount = 0
        for j in 0..<row.count {
            if row.isPositive(j) { positiveCount += 1 }
            else if row.isNegative(j) { maximumNegative = max(maximumNegative, Double(s[j])); negativeCount += 1 }
        }
        guard positiveCount > 0, negativeCount > 0 else { row.zero(); return 0 }

        // The row ends up holding q_n's numerators for negatives and σ_p for positives, then
        // both are scaled into gradients: one exp per negative, three per positive.
        let negativeShift = inverseTemperature * maximumNegative
        var negativeSum = 0.0
        for j in 0..<row.count {
            if row.isNegative(j) {
                let e = exp(inverseTemperature * Double(s[j]) - negativeShift); negativeSum += e; s[j] = Float(e)
            }
        }
        let negativeWeight = reduction == .mean ? 1 / Double(negativeCount) : 1
        let logSum = negativeShift + log(negativeWeight * negativeSum)

        var loss = 0.0, sigmaSum = 0.0
        for j in 0..<row.count {
            if row.isPositive(j) {
                let x = logSum - inverseTemperature * Double(s[j])
                let sigma = logistic(x)
                loss += softplus(x); sigmaSum += sigma; s[j] = Float(sigma)
            }
        }
        let perPositive = inverseTemperature / Double(positiveCount)
        let positiveFactor = Float(-perPositive), negativeFactor = Float(perPositive * sigmaSum / negativeSum)
        for j in 0..<row.count {
            if row.isPositive(j) { s[j] *= positiveFactor }
            else if row.isNegative(j) { s[j] *= negativeFactor }
            else { s[j] = 0 }
        }
        return loss / Double(positiveCount)
    }
}
