import TestSupport
import XBMKernels
import XBMModel
import XCTest

/// Every loss × both reductions: the value against a brute-force Double implementation of the
/// formula of Docs/losses.md, and both analytic gradients against Double central differences of that formula.
///
/// Why differences of the brute-force formula and not of the Float kernel: the kernel's
/// similarities are Float, so its own differences would carry ~1e-7/h of rounding noise. The
/// value check ties the kernel to the formula; the difference check ties its gradient to the
/// formula's derivative. Together they say the kernel's gradient is its value's derivative.
///
/// Step and tolerance: h = 1e-6 in Double gives truncation ~h²·ℓ''' ≲ 1e-9 even with β = 40,
/// and rounding ~1e-16/h = 1e-10. The kernel's gradient has Float similarities (error ≲ 4 ulp
/// ≈ 5e-7) amplified by at most β = 40 in multi-similarity's exponentials (2e-5 relative),
/// then a Float product over ≤ 16 terms (~1e-6 relative). So |analytic − numeric| ≤ 1e-4 ·
/// max|numeric| (+1e-6 absolute, for rows that are all zero) leaves a 5× margin.
/// Problems are drawn until no similarity is within 1e-4 of a kink (hinge, threshold, mining
/// boundary, change of hardest pair), ≫ the step's effect on a similarity (≤ h).
final class LossGradientTests: XCTestCase {
    let options = LossOptions()

    /// Anchors that are also references (the batch term: own entry at index i), labels with
    /// repeats, one anchor (label 9) whose only same-label reference is its own entry.
    func batchLikeProblem(_ random: inout RandomSource) -> PairProblem {
        let d = 4, b = 6, extra = 10
        let anchors = randomUnitRows(count: b, dimension: d, random: &random)
        let anchorLabels: [Int32] = [0, 0, 1, 2, 1, 9]
        let extraLabels = (0..<extra).map { _ in Int32(random.nextInt(below: 3)) }
        return PairProblem(dimension: d, anchors: anchors, anchorLabels: anchorLabels,
                           references: anchors + randomUnitRows(count: extra, dimension: d, random: &random),
                           referenceLabels: anchorLabels + extraLabels, ownIndex: (0..<Int32(b)).map { $0 })
    }

    /// All references share label 0 and there is no own entry (a memory-like call with nil
    /// ownIndex): anchors labelled 0 have no negative, the one labelled 3 has no positive.
    func singleLabelProblem(_ random: inout RandomSource) -> PairProblem {
        let d = 4, R = 8
        return PairProblem(dimension: d, anchors: randomUnitRows(count: 4, dimension: d, random: &random),
                           anchorLabels: [0, 0, 0, 3],
                           references: randomUnitRows(count: R, dimension: d, random: &random),
                           referenceLabels: [Int32](repeating: 0, count: R), ownIndex: nil)
    }

    func testGradientsMatchCentralDifferencesForEveryLossAndReduction() {
        for kind in LossKind.allCases {
            for reduction in PairReduction.allCases {
                for (name, make) in [("batch-like", batchLikeProblem), ("single-label", singleLabelProblem)] {
                    var random = RandomSource(seed: 7)
                    var problem = make(&random)
                    var draws = 1
                    while BruteForcePairLoss.kinkDistance(kind, options: options, reduction: reduction, problem: problem) < 1e-4 {
                        problem = make(&random); draws += 1
                        precondition(draws < 100, "no problem away from kinks in 100 draws")
                    }
                    check(kind, reduction, problem, "\(kind.rawValue) \(reduction) \(name)")
                }
            }
        }
    }

    func check(_ kind: LossKind, _ reduction: PairReduction, _ problem: PairProblem, _ context: String) {
        let loss = makePairLoss(kind, options: options)
        XCTAssertEqual(loss.name, kind.rawValue)
        // scale 0.5 onto gradients that start at 0.25: checks the scaling and the "adds into".
        let scale: Float = 0.5, initial: Float = 0.25
        let result = evaluate(loss, problem, reduction: reduction, scale: scale, initialGradient: initial)

        let exact = BruteForcePairLoss.value(kind, options: options, reduction: reduction, problem: problem)
        XCTAssertEqual(result.value, exact, accuracy: 1e-5 * max(1, abs(exact)), "value, \(context)")

        let d = problem.dimension
        let anchors = problem.anchors.map(Double.init), references = problem.references.map(Double.init)
        func f(_ anchors: [Double], _ references: [Double]) -> Double {
            BruteForcePairLoss.value(kind, options: options, reduction: reduction, anchors: anchors,
                                     anchorLabels: problem.anchorLabels, references: references,
                                     referenceLabels: problem.referenceLabels, ownIndex: problem.ownIndex, dimension: d)
        }
        let h = 1e-6
        func centralDifference(_ values: [Double], _ evaluate: ([Double]) -> Double) -> [Double] {
            (0..<values.count).map { k in
                var plus = values, minus = values
                plus[k] += h; minus[k] -= h
                return (evaluate(plus) - evaluate(minus)) / (2 * h)
            }
        }
        let numericA = centralDifference(anchors) { f($0, references) }
        let numericR = centralDifference(references) { f(anchors, $0) }
        if problem.ownIndex != nil {
            XCTAssertGreaterThan(numericA.map(abs).max()!, 0.01, "the batch-like problem must have active pairs, \(context)")
        }
        compare(result.anchorGradient, numericA, scale: scale, initial: initial, "anchor gradient, \(context)")
        compare(result.referenceGradient, numericR, scale: scale, initial: initial, "reference gradient, \(context)")
        // In the single-label problem, anchor 3 has no positive: it must get exactly nothing,
        // except from contrastive, whose negative pairs stand alone.
        if problem.ownIndex == nil, kind != .contrastive {
            XCTAssertEqual(Array(result.anchorGradient[(3 * d)..<(4 * d)]), [Float](repeating: initial, count: d),
                           "anchor with no positive, \(context)")
        }
    }

    func compare(_ analytic: [Float], _ numeric: [Double], scale: Float, initial: Float, _ context: String) {
        let largest = numeric.map(abs).max() ?? 0
        let tolerance = 1e-4 * largest + 1e-6
        for k in 0..<numeric.count {
            let got = (Double(analytic[k]) - Double(initial)) / Double(scale)
            XCTAssertEqual(got, numeric[k], accuracy: tolerance, "\(context), element \(k)")
        }
    }

    /// The brief's independent check of contrastive at a realistic size: a pairs loop with its
    /// own analytic gradient (not a difference), with the references in three segments and
    /// without the reference gradient (as for the memory term).
    func testContrastiveMatchesPairsLoopOnLargerRandomCase() {
        var random = RandomSource(seed: 11)
        let b = 16, d = 32, R = 200
        let anchors = randomUnitRows(count: b, dimension: d, random: &random)
        // Make similarities larger than random in 32-D so that many pairs pass the margin.
        var references = randomUnitRows(count: R, dimension: d, random: &random)
        for j in 0..<R {
            let i = j % b
            var norm: Float = 0
            for k in 0..<d { references[j * d + k] += 0.9 * anchors[i * d + k]; norm += references[j * d + k] * references[j * d + k] }
            for k in 0..<d { references[j * d + k] /= norm.squareRoot() }
        }
        let anchorLabels = (0..<b).map { Int32($0 % 5) }
        let referenceLabels = (0..<R).map { _ in Int32(random.nextInt(below: 5)) }
        let own = (0..<b).map { Int32(3 * $0) }
        let problem = PairProblem(dimension: d, anchors: anchors, anchorLabels: anchorLabels, references: references,
                                  referenceLabels: referenceLabels, ownIndex: own)

        for reduction in PairReduction.allCases {
            let result = evaluate(makePairLoss(.contrastive, options: options), problem, reduction: reduction,
                                  cuts: [50, 120], referenceGradient: false)
            var value = 0.0
            var dA = [Double](repeating: 0, count: b * d)
            var activePairs = 0
            for i in 0..<b {
                var positive: [(Int, Double)] = [], negative: [(Int, Double)] = []
                for j in 0..<R where j != Int(own[i]) {
                    var s = 0.0
                    for k in 0..<d { s += Double(anchors[i * d + k]) * Double(references[j * d + k]) }
                    if referenceLabels[j] == anchorLabels[i] { if s < 1 - 1e-5 { positive.append((j, s)) } }
                    else if s > 0.5 { negative.append((j, s)) }
                }
                activePairs += positive.count + negative.count
                let wp = reduction == .mean ? 1 / Double(max(positive.count, 1)) : 1
                let wn = reduction == .mean ? 1 / Double(max(negative.count, 1)) : 1
                for (j, s) in positive {
                    value += wp * (1 - s)
                    for k in 0..<d { dA[i * d + k] -= wp * Double(references[j * d + k]) }
                }
                for (j, s) in negative {
                    value += wn * s
                    for k in 0..<d { dA[i * d + k] += wn * Double(references[j * d + k]) }
                }
            }
            XCTAssertGreaterThan(activePairs, 200, "the case should exercise many pairs")
            // Float similarities (error ≲ 1e-6 for d = 32) times ≤ 200 unit terms per anchor.
            XCTAssertEqual(result.value, value, accuracy: 1e-4 * max(1, value), "\(reduction)")
            for k in 0..<(b * d) {
                XCTAssertEqual(Double(result.anchorGradient[k]), dA[k], accuracy: 1e-4, "\(reduction) element \(k)")
            }
            XCTAssertTrue(result.referenceGradient.allSatisfy { $0 == 0 }, "no reference gradient was asked for")
        }
    }
}
