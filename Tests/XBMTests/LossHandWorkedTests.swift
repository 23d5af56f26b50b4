import Foundation
import TestSupport
import XBMModel
import XCTest


/// Each loss on three 2-D anchors whose similarities are worked out by hand (Pythagorean
/// unit vectors, so every cosine is a short decimal). Expected values are the hand formulas.
///
///     anchors (label, own index)          references (label)
///     a0 = (1, 0)      (0, own 0)         r0 = (1, 0)        0    a0's own entry
///     a1 = (0.6, 0.8)  (1, own 2)         r1 = (0.8, 0.6)    0
///     a2 = (0.8, 0.6)  (2, none)          r2 = (0.6, 0.8)    1    a1's own entry
///                                         r3 = (0.28, 0.96)  1
///                                         r4 = (1, 0)        0    a duplicate of a0 at another index
///                                         r5 = (0, 1)        2
///
///     s_ij    r0     r1     r2     r3     r4     r5
///     a0      own    .8     .6     .28    1      0        P = {r1 .8, r4 1}   N = {r2 .6, r3 .28, r5 0}
///     a1      .6     .96    own    .936   .6     .8       P = {r3 .936}       N = {r0 .6, r1 .96, r4 .6, r5 .8}
///     a2      .8     1      .96    .8     .8     .6       P = {r5 .6}         N = {r0 .8, r1 1, r2 .96, r3 .8, r4 .8}
///
/// (e.g. a1·r3 = 0.6·0.28 + 0.8·0.96 = 0.168 + 0.768 = 0.936; a2·r1 = 0.64 + 0.36 = 1.)
/// Tolerance: the inputs are Float (0.6, 0.8 … are not exact), so similarities are off by
/// ~1e-7; the steepest factor is MS's β = 40, so values and gradients agree to ~1e-5 relative.
final class LossHandWorkedTests: XCTestCase {
    let problem = PairProblem.handWorked
    let a: [[Double]] = [[1, 0], [0.6, 0.8], [0.8, 0.6]]
    let r: [[Double]] = [[1, 0], [0.8, 0.6], [0.6, 0.8], [0.28, 0.96], [1, 0], [0, 1]]

    func run(_ kind: LossKind, _ reduction: PairReduction) -> PairLossResult {
        evaluate(makePairLoss(kind, options: LossOptions()), problem, reduction: reduction)
    }

    func assertRows(_ got: [Float], _ expected: [[Double]], accuracy: Double = 1e-5, _ context: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count * 2, context, file: file, line: line)
        for (i, row) in expected.enumerated() {
            for k in 0..<2 {
                XCTAssertEqual(Double(got[i * 2 + k]), row[k], accuracy: accuracy * max(1, abs(row[k])),
                               "\(context) row \(i) component \(k)", file: file, line: line)
            }
        }
    }

    /// Weighted sum of 2-vectors: Σ w_k v_k.
    func combine(_ terms: [(Double, [Double])]) -> [Double] {
        terms.reduce([0, 0]) { [$0[0] + $1.0 * $1.1[0], $0[1] + $1.0 * $1.1[1]] }
    }

    func testContrastive() {
        // m 0.5, ε 1e-5. Active positives s < 1 − ε, active negatives s > 0.5.
        // a0: positives r1 (.8 → 1 − .8 = .2), r4 (s = 1: inactive); negatives r2 (.6) only.   ℓ0 = .2 + .6 = .8
        // a1: positive r3 (1 − .936 = .064); negatives .6 + .96 + .6 + .8 = 2.96.              ℓ1 = 3.024
        // a2: positive r5 (1 − .6 = .4); negatives .8 + 1 + .96 + .8 + .8 = 4.36.              ℓ2 = 4.76
        let sum = run(.contrastive, .sum)
        XCTAssertEqual(sum.value, 0.8 + 3.024 + 4.76, accuracy: 1e-5)
        // g = −1 on active positives, +1 on active negatives; dA_i = Σ_j g_ij r_j:
        // a0: −r1 + r2 = (−.2, .2); a1: −r3 + r0 + r1 + r4 + r5 = (2.52, .64);
        // a2: −r5 + r0 + r1 + r2 + r3 + r4 = (3.68, 1.36).
        assertRows(sum.anchorGradient, [[-0.2, 0.2], [2.52, 0.64], [3.68, 1.36]], "contrastive sum dA")
        // dR_j = Σ_i g_ij a_i: r0: a1 + a2; r1: −a0 + a1 + a2; r2: a0 + a2 (a1's own); r3: −a1 + a2
        // (a0's .28 inactive); r4: a1 + a2 (a0's duplicate inactive); r5: a1 − a2 (a0's 0 inactive).
        assertRows(sum.referenceGradient, [[1.4, 1.4], [0.4, 1.4], [1.8, 0.6], [0.2, -0.2], [1.4, 1.4], [-0.2, 0.2]],
                   "contrastive sum dR")

        // mean: a0: .2/1 + .6/1 = .8; a1: .064/1 + 2.96/4 = .804; a2: .4/1 + 4.36/5 = 1.272.
        let mean = run(.contrastive, .mean)
        XCTAssertEqual(mean.value, 0.8 + 0.804 + 1.272, accuracy: 1e-5)
        // a1: −r3 + (r0 + r1 + r4 + r5)/4 = (−.28 + 2.8/4, −.96 + 1.6/4) = (.42, −.56)
        // a2: −r5 + (r0 + … + r4)/5 = (3.68/5, −1 + 2.36/5) = (.736, −.528)
        assertRows(mean.anchorGradient, [[-0.2, 0.2], [0.42, -0.56], [0.736, -0.528]], "contrastive mean dA")
    }

    func testTriplet() {
        // m 0.1. a0: hardest positive .8, hardest negative .6 → [.6 − .8 + .1]_+ = 0.
        // a1: [.96 (r1) − .936 (r3) + .1]_+ = .124.  a2: [1 (r1) − .6 (r5) + .1]_+ = .5.
        for reduction in PairReduction.allCases {
            let result = run(.triplet, reduction)
            XCTAssertEqual(result.value, 0.124 + 0.5, accuracy: 1e-5, "\(reduction)")
            // dA: a0 0; a1 r1 − r3 = (.52, −.36); a2 r1 − r5 = (.8, −.4).
            assertRows(result.anchorGradient, [[0, 0], [0.52, -0.36], [0.8, -0.4]], "triplet \(reduction) dA")
            // dR: r1 gets a1 + a2 (hardest negative of both), r3 −a1, r5 −a2.
            assertRows(result.referenceGradient, [[0, 0], [1.4, 1.4], [0, 0], [-0.6, -0.8], [0, 0], [-0.8, -0.6]],
                       "triplet \(reduction) dR")
        }
    }

    func testMultiSimilarity() {
        // α 2, β 40, λ .5, μ .1.
        // a0: min positive .8, max negative .6: keep negatives > .7 (none), positives < .7 (none) → 0.
        // a1: negatives > .936 − .1 = .836 → {r1 .96}; positives < .96 + .1 → {r3 .936}.
        //     ℓ1 = ½ log(1 + e^{−2(.936−.5)}) + (1/40) log(1 + e^{40(.96−.5)}) = ½ log(1 + e^{−.872}) + log(1 + e^{18.4})/40
        // a2: negatives > .6 − .1 = .5 → all five (.8, 1, .96, .8, .8); positives < 1.1 → {r5 .6}.
        //     ℓ2 = ½ log(1 + e^{−.2}) + log(1 + 3e^{12} + e^{20} + e^{18.4})/40
        let l1 = 0.5 * log(1 + exp(-0.872)) + log(1 + exp(18.4)) / 40
        let negatives2 = 3 * exp(12.0) + exp(20.0) + exp(18.4)
        let sum = run(.multiSimilarity, .sum)
        XCTAssertEqual(sum.value, l1 + 0.5 * log(1 + exp(-0.2)) + log(1 + negatives2) / 40, accuracy: 1e-5)
        // mean: a1's mined sets have one pair each (unchanged); a2's negative sum is divided by 5.
        let mean = run(.multiSimilarity, .mean)
        XCTAssertEqual(mean.value, l1 + 0.5 * log(1 + exp(-0.2)) + log(1 + negatives2 / 5) / 40, accuracy: 1e-5)
        // dA1 = −e^{−.872}/(1 + e^{−.872}) · r3 + e^{18.4}/(1 + e^{18.4}) · r1; a0 gets nothing.
        let dA1 = combine([(-exp(-0.872) / (1 + exp(-0.872)), r[3]), (exp(18.4) / (1 + exp(18.4)), r[1])])
        // dA2 (sum) = −e^{−.2}/(1 + e^{−.2}) · r5 + [e^{12}(r0 + r3 + r4) + e^{20} r1 + e^{18.4} r2] / (1 + negatives2)
        let dA2 = combine([(-exp(-0.2) / (1 + exp(-0.2)), r[5]),
                           (exp(12) / (1 + negatives2), r[0]), (exp(12) / (1 + negatives2), r[3]),
                           (exp(12) / (1 + negatives2), r[4]), (exp(20) / (1 + negatives2), r[1]),
                           (exp(18.4) / (1 + negatives2), r[2])])
        assertRows(sum.anchorGradient, [[0, 0], dA1, dA2], "multi-similarity sum dA")
    }

    func testLifted() {
        // m .5. ℓ_i = [log Σ_p e^{1−s_ip} + log Σ_n e^{s_in−.5}]_+
        // a0: log(e^{.2} + e^{0}) + log(e^{.1} + e^{−.22} + e^{−.5})          (≈ .798 + .922 > 0)
        // a1: log e^{.064} + log(2e^{.1} + e^{.46} + e^{.3})
        // a2: log e^{.4} + log(3e^{.3} + e^{.5} + e^{.46})
        let n0 = exp(0.1) + exp(-0.22) + exp(-0.5), n1 = 2 * exp(0.1) + exp(0.46) + exp(0.3)
        let n2 = 3 * exp(0.3) + exp(0.5) + exp(0.46)
        let sum = run(.lifted, .sum)
        XCTAssertEqual(sum.value, log(exp(0.2) + 1) + log(n0) + 0.064 + log(n1) + 0.4 + log(n2), accuracy: 1e-5)
        // dA1 = −r3 (its only positive) + [e^{.1}(r0 + r4) + e^{.46} r1 + e^{.3} r5] / n1
        let dA1 = combine([(-1, r[3]), (exp(0.1) / n1, r[0]), (exp(0.1) / n1, r[4]),
                           (exp(0.46) / n1, r[1]), (exp(0.3) / n1, r[5])])
        // dA0 = −[e^{.2} r1 + e^{0} r4]/(e^{.2} + 1) + [e^{.1} r2 + e^{−.22} r3 + e^{−.5} r5]/n0
        let dA0 = combine([(-exp(0.2) / (exp(0.2) + 1), r[1]), (-1 / (exp(0.2) + 1), r[4]),
                           (exp(0.1) / n0, r[2]), (exp(-0.22) / n0, r[3]), (exp(-0.5) / n0, r[5])])
        assertRows(Array(sum.anchorGradient[0..<4]), [dA0, dA1], "lifted sum dA")

        // mean: log-mean-exps. a0: log((e^{.2} + 1)/2) + log(n0/3) ≈ .105 − .177 < 0 → 0 (hinge off);
        // a1: .064 + log(n1/4); a2: .4 + log(n2/5).
        let mean = run(.lifted, .mean)
        XCTAssertLessThan(log((exp(0.2) + 1) / 2) + log(n0 / 3), 0)
        XCTAssertEqual(mean.value, 0.064 + log(n1 / 4) + 0.4 + log(n2 / 5), accuracy: 1e-5)
        assertRows(Array(mean.anchorGradient[0..<4]), [[0, 0], dA1], "lifted mean dA (same soft-max weights)")
    }

    func testNPair() {
        // τ .1. ℓ_i = mean_p log(1 + Σ_n e^{(s_in − s_ip)/τ}).
        // a0 (positives r1 .8 and the duplicate r4 1; negatives .6, .28, 0):
        //   ½[log(1 + e^{−2} + e^{−5.2} + e^{−8}) + log(1 + e^{−4} + e^{−7.2} + e^{−10})]
        // a1 (positive .936): log(1 + 2e^{−3.36} + e^{.24} + e^{−1.36})
        // a2 (positive .6):   log(1 + 3e^{2} + e^{4} + e^{3.6})
        let x0 = [exp(-2) + exp(-5.2) + exp(-8), exp(-4) + exp(-7.2) + exp(-10)]
        let x1 = 2 * exp(-3.36) + exp(0.24) + exp(-1.36), x2 = 3 * exp(2.0) + exp(4.0) + exp(3.6)
        let sum = run(.npair, .sum)
        XCTAssertEqual(sum.value, 0.5 * (log(1 + x0[0]) + log(1 + x0[1])) + log(1 + x1) + log(1 + x2), accuracy: 1e-5)
        // mean: the negatives' sums become means (÷3, ÷4, ÷5).
        let mean = run(.npair, .mean)
        XCTAssertEqual(mean.value, 0.5 * (log(1 + x0[0] / 3) + log(1 + x0[1] / 3)) + log(1 + x1 / 4) + log(1 + x2 / 5),
                       accuracy: 1e-5)
        // dA2 (sum): ∂/∂s_p = −(1/τ) X/(1 + X), ∂/∂s_n = (1/τ) e^{(s_n − s_p)/τ}/(1 + X), X = x2:
        //   dA2 = 10/(1 + x2) · [−x2 r5 + e²(r0 + r3 + r4) + e⁴ r1 + e^{3.6} r2]
        let k = 10 / (1 + x2)
        let dA2 = combine([(-k * x2, r[5]), (k * exp(2), r[0]), (k * exp(2), r[3]), (k * exp(2), r[4]),
                           (k * exp(4), r[1]), (k * exp(3.6), r[2])])
        assertRows(Array(sum.anchorGradient[4..<6]), [dA2], "npair sum dA2")
    }
}
