/// Batch-hard triplet loss on similarities (Docs/losses.md, `triplet`):
///
///     ℓ_i = [ s_in* − s_ip* + m ]_+ ,  n* = argmax_{n∈N_i} s_in,  p* = argmin_{p∈P_i} s_ip
///
///     when the hinge is active: ∂ℓ_i/∂s_in* = +1, ∂ℓ_i/∂s_ip* = −1, every other g_ij = 0;
///     then ∂ℓ_i/∂a_i = r_n* − r_p*, ∂ℓ_i/∂r_n* = a_i, ∂ℓ_i/∂r_p* = −a_i.
///
/// Mining: only the hardest positive and the hardest negative matter (batch-hard), which is
/// what makes triplets informative without enumerating all of them. An anchor with no
/// positive or no negative contributes 0. Ties keep the first index.
///
/// `.mean` equals `.sum`: each part is already a single pair.
struct TripletTerm: AnchorTerm {
    /// m
    let margin: Double

    var name: String { LossKind.triplet.rawValue }

    func lossAndGradient(_ row: AnchorRow, reduction: PairReduction) -> Double {
        let s = row.values
        var hardestPositive = -1, hardestNegative = -1
        var minimumPositive = Float.infinity, maximumNegative = -Float.infinity
        for j in 0..<row.count {
            if row.isPositive(j) {
                if s[j] < minimumPositive { minimumPositive = s[j]; hardestPositive = j }
            } else if row.isNegative(j) {
                if s[j] > maximumNegative { maximumNegative = s[j]; hardestNegative = j }
            }
        }
        row.zero()
        guard hardestPositive >= 0, hardestNegative >= 0 else { return 0 }
        let hinge = Double(maximumNegative) - Double(minimumPositive) + margin
        guard hinge > 0 else { return 0 }
        s[hardestNegative] = 1
        s[hardestPositive] = -1
        return hinge
    }
}
