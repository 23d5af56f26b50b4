import Foundation
import TestSupport
import XBMKernels
import XBMModel
import XCTest


/// Properties every loss must have whatever its formula: the order and the segmentation of
/// the references do not matter, and the own entry is excluded by index, never by value.
///
/// Tolerance: a permutation or a split changes only how BLAS blocks the products, so each
/// similarity may move by an ulp or so (~1e-7) and the per-row Double sums by less; with β = 40
/// in MS that is ≲ 1e-5 relative, asserted as 1e-5 · max(1, |x|) for values and 1e-5 · max|g|
/// for gradients.
final class LossInvarianceTests: XCTestCase {
    let options = LossOptions()

    func randomProblem(seed: UInt64) -> PairProblem {
        var random = RandomSource(seed: seed)
        let b = 5, d = 6, R = 23
        let anchors = randomUnitRows(count: b, dimension: d, random: &random)
        let extra = randomUnitRows(count: R - b, dimension: d, random: &random)
        let anchorLabels = (0..<b).map { _ in Int32(random.nextInt(below: 3)) }
        let labels = anchorLabels + (0..<(R - b)).map { _ in Int32(random.nextInt(below: 3)) }
        return PairProblem(dimension: d, anchors: anchors, anchorLabels: anchorLabels, references: anchors + extra,
                           referenceLabels: labels, ownIndex: (0..<Int32(b)).map { $0 })
    }

    func assertClose(_ x: [Float], _ y: [Float], _ context: String, file: StaticString = #filePath, line: UInt = #line) {
        let tolerance = 1e-5 * Double(max(1, x.map(abs).max() ?? 0))
        for k in 0..<x.count {
            XCTAssertEqual(Double(x[k]), Double(y[k]), accuracy: tolerance, "\(context) element \(k)", file: file, line: line)
        }
    }

    func testPermutingReferencesChangesNothingButTheOrderOfTheirGradients() {
        let problem = randomProblem(seed: 3)
        var random = RandomSource(seed: 4)
        let R = problem.referenceCount, d = problem.dimension
        // newOrder[k] = old index of the reference now at k (Fisher–Yates).
        var newOrder = Array(0..<R)
        for k in stride(from: R - 1, to: 0, by: -1) { newOrder.swapAt(k, random.nextInt(below: k + 1)) }
        var oldToNew = [Int](repeating: 0, count: R)
        for (k, old) in newOrder.enumerated() { oldToNew[old] = k }
        var permuted = problem
        permuted.references = newOrder.flatMap { problem.references[($0 * d)..<($0 * d + d)] }
        permuted.referenceLabels = newOrder.map { problem.referenceLabels[$0] }
        permuted.ownIndex = problem.ownIndex!.map { Int32(oldToNew[Int($0)]) }

        for kind in LossKind.allCases {
            for reduction in PairReduction.allCases {
                let context = "\(kind.rawValue) \(reduction)"
                let original = evaluate(makePairLoss(kind, options: options), problem, reduction: reduction)
                let shuffled = evaluate(makePairLoss(kind, options: options), permuted, reduction: reduction)
                XCTAssertGreaterThan(original.value, 0, "the case must exercise \(context)")
                XCTAssertEqual(shuffled.value, original.value, accuracy: 1e-5 * max(1, original.value), context)
                assertClose(shuffled.anchorGradient, original.anchorGradient, "dA, \(context)")
                let unshuffled = (0..<R).flatMap { old in shuffled.referenceGradient[(oldToNew[old] * d)..<(oldToNew[old] * d + d)] }
                assertClose(unshuffled, original.referenceGradient, "dR, \(context)")
            }
        }
    }

    func testReferencesInSegmentsGiveTheSameAsOneSegment() {
        let problem = randomProblem(seed: 5)
        for kind in LossKind.allCases {
            for reduction in PairReduction.allCases {
                // One loss object across the calls: the reused workspace must not leak state.
                let loss = makePairLoss(kind, options: options)
                let whole = evaluate(loss, problem, reduction: reduction)
                for cuts in [[1], [11], [22], [4, 17]] {
                    let context = "\(kind.rawValue) \(reduction) cut at \(cuts)"
                    let split = evaluate(loss, problem, reduction: reduction, cuts: cuts)
                    XCTAssertEqual(split.value, whole.value, accuracy: 1e-5 * max(1, whole.value), context)
                    assertClose(split.anchorGradient, whole.anchorGradient, "dA, \(context)")
                    assertClose(split.referenceGradient, whole.referenceGradient, "dR, \(context)")
                }
            }
        }
    }

    /// a = (1, 0) with label 0; references: its own entry, an exact duplicate at another index
    /// (label 0), and a negative n = (0.96, 0.28) with s = .96.
    func duplicateProblem(ownIndex: Int32, withDuplicate: Bool = true) -> PairProblem {
        PairProblem(dimension: 2, anchors: [1, 0], anchorLabels: [0],
                    references: withDuplicate ? [1, 0, 1, 0, 0.96, 0.28] : [1, 0, 0.96, 0.28],
                    referenceLabels: withDuplicate ? [0, 0, 1] : [0, 1], ownIndex: [ownIndex])
    }

    func testDuplicateOfTheAnchorAtAnotherIndexIsAPositive() {
        // The duplicate's s = 1 is a real positive; without it the anchor has none and gives 0.
        //   triplet: [.96 − 1 + .1]_+ = .06
        //   multi-similarity: min positive 1, max negative .96 → both mined:
        //     ½ log(1 + e^{−2(1 − .5)}) + log(1 + e^{40(.96 − .5)})/40 = ½ log(1 + e^{−1}) + log(1 + e^{18.4})/40
        //   lifted: log e^{1−1} + log e^{.96−.5} = .46
        //   npair: log(1 + e^{(.96 − 1)/.1}) = log(1 + e^{−.4})
        let expected: [LossKind: Double] = [
            .triplet: 0.06, .multiSimilarity: 0.5 * log(1 + exp(-1)) + log(1 + exp(18.4)) / 40,
            .lifted: 0.46, .npair: log(1 + exp(-0.4)),
        ]
        for (kind, value) in expected {
            for reduction in PairReduction.allCases {
                let loss = makePairLoss(kind, options: options)
                XCTAssertEqual(evaluate(loss, duplicateProblem(ownIndex: 0), reduction: reduction).value, value,
                               accuracy: 1e-5, "\(kind.rawValue) \(reduction) with the duplicate")
                XCTAssertEqual(evaluate(loss, duplicateProblem(ownIndex: 0, withDuplicate: false), reduction: reduction).value, 0,
                               "\(kind.rawValue) \(reduction) without it")
            }
        }
        // contrastive: s = 1 ≥ 1 − ε makes the duplicate inactive (the ε rule, not exclusion):
        // only the negative's .96 counts, whichever entry is the own one.
        for own: Int32 in [0, 1] {
            XCTAssertEqual(evaluate(makePairLoss(.contrastive, options: options), duplicateProblem(ownIndex: own),
                                    reduction: .sum).value, 0.96, accuracy: 1e-6)
        }
    }

    func testOwnEntryIsExcludedByIndexAmongDuplicates() {
        // lifted (sum) counts positives in log Σ_p e^{1 − s_p}: one positive at s = 1 gives
        // log 1 = 0, two give log 2. Excluding either copy gives .46; excluding none, log 2 + .46.
        let loss = makePairLoss(.lifted, options: options)
        for own: Int32 in [0, 1] {
            let result = evaluate(loss, duplicateProblem(ownIndex: own), reduction: .sum)
            XCTAssertEqual(result.value, 0.46, accuracy: 1e-5, "own entry \(own)")
            // The excluded copy gets no gradient at all; the other gets −a · (its soft-min weight 1).
            XCTAssertEqual(Array(result.referenceGradient[(2 * Int(own))..<(2 * Int(own) + 2)]), [0, 0], "own entry \(own)")
            let other = 1 - Int(own)
            XCTAssertEqual(Array(result.referenceGradient[(2 * other)..<(2 * other + 2)]), [-1, 0], "other copy")
        }
        XCTAssertEqual(evaluate(loss, duplicateProblem(ownIndex: -1), reduction: .sum).value, log(2) + 0.46, accuracy: 1e-5)
        // multi-similarity (sum) likewise: k mined positives at s = 1 give ½ log(1 + k e^{−1}).
        let ms = makePairLoss(.multiSimilarity, options: options)
        let negativePart = log(1 + exp(18.4)) / 40
        XCTAssertEqual(evaluate(ms, duplicateProblem(ownIndex: 1), reduction: .sum).value,
                       0.5 * log(1 + exp(-1)) + negativePart, accuracy: 1e-5)
        XCTAssertEqual(evaluate(ms, duplicateProblem(ownIndex: -1), reduction: .sum).value,
                       0.5 * log(1 + 2 * exp(-1)) + negativePart, accuracy: 1e-5)
    }

    func testNoAnchorsOrNoReferencesGiveZeroAndTouchNothing() {
        var problem = randomProblem(seed: 9)
        problem.references = []; problem.referenceLabels = []; problem.ownIndex = nil
        for kind in LossKind.allCases {
            let result = evaluate(makePairLoss(kind, options: options), problem, reduction: .mean, initialGradient: 0.5)
            XCTAssertEqual(result.value, 0)
            XCTAssertTrue(result.anchorGradient.allSatisfy { $0 == 0.5 }, kind.rawValue)
        }
    }

    func testFactoryNamesAndDefaults() {
        XCTAssertEqual(LossKind.allCases.map(\.rawValue), ["contrastive", "multi-similarity", "triplet", "lifted", "npair"])
        let defaults = LossOptions()
        XCTAssertEqual([defaults.contrastiveMargin, defaults.contrastiveEpsilon, defaults.msAlpha, defaults.msBeta,
                        defaults.msLambda, defaults.msMu, defaults.tripletMargin, defaults.liftedMargin,
                        defaults.npairTemperature], [0.5, 1e-5, 2, 40, 0.5, 0.1, 0.1, 0.5, 0.1])
    }
}
