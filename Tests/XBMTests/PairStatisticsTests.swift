import TestSupport
import XBMKernels
import XBMModel
import XCTest

/// The pair statistics a loss reports (Docs/losses.md, Diagnostics): active positives and
/// negatives (g_ij ≠ 0), the hardest negative and positive similarities, and the ages of the
/// active negatives. Expected values are worked out by hand on the problem of
/// LossHandWorkedTests, and by a naive Double reference on random problems wide enough for
/// the vectorised passes (rows of 16 lanes, blocks of 16 vectors, a scalar tail).
///
///     s_ij    r0     r1     r2     r3     r4     r5
///     a0      own    .8     .6     .28    1      0        P = {r1 .8, r4 1}   N = {r2 .6, r3 .28, r5 0}
///     a1      .6     .96    own    .936   .6     .8       P = {r3 .936}       N = {r0 .6, r1 .96, r4 .6, r5 .8}
///     a2      .8     1      .96    .8     .8     .6       P = {r5 .6}         N = {r0 .8, r1 1, r2 .96, r3 .8, r4 .8}
final class PairStatisticsTests: XCTestCase {
    let problem = PairProblem.handWorked

    /// Runs `loss` on `problem` with the references cut at `cuts`, each segment carrying its
    /// slice of `stamps` when given, and returns the statistics it reports.
    func statistics(_ loss: PairLoss, _ problem: PairProblem, reduction: PairReduction = .sum, cuts: [Int] = [],
                    stamps: [Int32]? = nil, now: Int = 0) -> PairStatistics {
        let d = problem.dimension, b = problem.anchorCount, R = problem.referenceCount
        var dA = [Float](repeating: 0, count: b * d), dR = [Float](repeating: 0, count: R * d)
        let stampValues = stamps ?? [Int32](repeating: 0, count: R)
        problem.anchors.withUnsafeBufferPointer { anchors in
            problem.anchorLabels.withUnsafeBufferPointer { anchorLabels in
                problem.references.withUnsafeBufferPointer { references in
                    problem.referenceLabels.withUnsafeBufferPointer { labels in
                        (problem.ownIndex ?? []).withUnsafeBufferPointer { own in
                            stampValues.withUnsafeBufferPointer { stampPointer in
                                let bounds = [0] + cuts + [R]
                                let segments = (0..<(bounds.count - 1)).map { k in
                                    ReferenceSegment(embeddings: references.baseAddress! + bounds[k] * d,
                                                     labels: labels.baseAddress! + bounds[k], count: bounds[k + 1] - bounds[k],
                                                     stamps: stamps == nil ? nil : stampPointer.baseAddress! + bounds[k])
                                }
                                var input = PairLossInput(anchors: anchors.baseAddress!, anchorLabels: anchorLabels.baseAddress!,
                                                          anchorCount: b, dimension: d, references: segments,
                                                          ownIndex: problem.ownIndex == nil ? nil : own.baseAddress!)
                                input.now = now
                                _ = loss.evaluate(input, reduction: reduction, scale: 1, anchorGradient: &dA, referenceGradient: &dR)
                            }
                        }
                    }
                }
            }
        }
        return loss.statistics
    }

    // MARK: - Hand-worked

    func testContrastiveByHand() {
        // m 0.5, ε 1e-5: positives active while s < 1 − ε, negatives once s > 0.5.
        // a0: P {r1 .8 active, r4 1 not}            → 1;  N {r2 .6 active, r3 .28, r5 0} → 1
        // a1: P {r3 .936}                            → 1;  N {.6, .96, .6, .8} all        → 4
        // a2: P {r5 .6}                              → 1;  N {.8, 1, .96, .8, .8} all      → 5
        // hardest negatives .6, .96, 1 (sum 2.56); hardest positives .8, .936, .6 (sum 2.336).
        for reduction in PairReduction.allCases {
            let s = statistics(makePairLoss(.contrastive), problem, reduction: reduction)
            XCTAssertEqual(s.anchors, 3)
            XCTAssertEqual(s.activePositives, 3, "\(reduction)")
            XCTAssertEqual(s.activeNegatives, 10, "\(reduction)")
            XCTAssertEqual(s.anchorsWithNegatives, 3)
            XCTAssertEqual(s.anchorsWithPositives, 3)
            XCTAssertEqual(s.hardestNegativeSum, 2.56, accuracy: 1e-6)
            XCTAssertEqual(s.hardestPositiveSum, 2.336, accuracy: 1e-6)
            XCTAssertEqual(s.meanActiveNegatives, 10.0 / 3, accuracy: 1e-12)
            XCTAssertEqual(s.meanActivePositives, 1, accuracy: 1e-12)
            XCTAssertEqual(s.meanHardestNegative!, 2.56 / 3, accuracy: 1e-6)
            XCTAssertEqual(s.meanHardestPositive!, 2.336 / 3, accuracy: 1e-6)
            XCTAssertEqual(s.activeNegativeAgeSum, 0, "no stamps, no ages")
        }
    }

    func testActivePairsOfTheOtherLossesByHand() {
        // triplet (m 0.1): a0: .6 − .8 + .1 < 0, inactive; a1: .96 − .936 + .1 > 0 and a2:
        // 1 − .6 + .1 > 0, one positive and one negative each → 2 and 2.
        // multi-similarity (μ 0.1): a0 mines nothing (no negative above .8 − .1, no positive
        // below .6 + .1); a1: Ñ = {s > .836} = {r1}, P̃ = {r3}; a2: Ñ = {s > .5} = all 5, P̃ = {r5}
        // → 2 positives, 6 negatives.
        // lifted (m 0.5): every anchor's hinge is positive (a0: log(e^.2 + e^0) + log(e^.1 +
        // e^−.22 + e^−.5) = .80 + .92), so every pair of P and N is active → 4 and 12; npair
        // likewise weights every pair → 4 and 12.
        let expected: [(LossKind, Int, Int)] = [(.triplet, 2, 2), (.multiSimilarity, 2, 6), (.lifted, 4, 12), (.npair, 4, 12)]
        for (kind, positives, negatives) in expected {
            let s = statistics(makePairLoss(kind), problem)
            XCTAssertEqual(s.activePositives, positives, "\(kind)")
            XCTAssertEqual(s.activeNegatives, negatives, "\(kind)")
            // The hardest pairs are taken before the term overwrites the row: the same for all.
            XCTAssertEqual(s.hardestNegativeSum, 2.56, accuracy: 1e-6, "\(kind)")
            XCTAssertEqual(s.hardestPositiveSum, 2.336, accuracy: 1e-6, "\(kind)")
        }
    }

    func testOwnEntryIsNeitherPositiveNorHardest() {
        // a0 = (1, 0) label 0, own r0 = (1, 0): its only same-label reference is itself, so it
        // has no positive (counting r0 would give a hardest positive of 1).
        // a1 = (0, 1) label 1, own r2: P = {r1 .8}, N = {r0 0}.
        //     a0: N = {r1 .6 active, r2 0}        a1: P {r1 .8} active, N {r0 0} inactive
        let p = PairProblem(dimension: 2, anchors: [1, 0, 0, 1], anchorLabels: [0, 1],
                            references: [1, 0, 0.6, 0.8, 0, 1], referenceLabels: [0, 1, 1], ownIndex: [0, 2])
        let s = statistics(makePairLoss(.contrastive), p)
        XCTAssertEqual(s.activePositives, 1)
        XCTAssertEqual(s.activeNegatives, 1)
        XCTAssertEqual(s.anchorsWithPositives, 1)
        XCTAssertEqual(s.hardestPositiveSum, 0.8, accuracy: 1e-6)
        XCTAssertEqual(s.anchorsWithNegatives, 2)
        XCTAssertEqual(s.hardestNegativeSum, 0.6, accuracy: 1e-6)
    }

    func testAgesOfTheActiveNegativesByHand() {
        // Stamps 10…15 at now = 20: ages r0 10, r1 9, r2 8, r3 7, r4 6, r5 5. Contrastive's active
        // negatives: a0 {r2} 8; a1 {r0, r1, r4, r5} 10 + 9 + 6 + 5 = 30; a2 {r0, r1, r2, r3, r4}
        // 10 + 9 + 8 + 7 + 6 = 40 → 78 over 10 pairs. The same over two segments.
        for cuts in [[], [2], [1, 4]] {
            let s = statistics(makePairLoss(.contrastive), problem, cuts: cuts, stamps: [10, 11, 12, 13, 14, 15], now: 20)
            XCTAssertEqual(s.activeNegativeAgeSum, 78, "cuts \(cuts)")
            XCTAssertEqual(s.meanActiveNegativeAge!, 7.8, accuracy: 1e-12)
            XCTAssertEqual(s.activeNegatives, 10)
        }
    }

    func testEmptyEvaluationAndStatisticsArithmetic() {
        let loss = makePairLoss(.contrastive)
        _ = statistics(loss, problem)
        let empty = PairProblem(dimension: 2, anchors: [], anchorLabels: [], references: [1, 0], referenceLabels: [0], ownIndex: nil)
        XCTAssertEqual(statistics(loss, empty), PairStatistics(), "an evaluation without anchors reports nothing")
        XCTAssertNil(PairStatistics().meanHardestNegative)
        XCTAssertNil(PairStatistics().meanActiveNegativeAge)

        var a = PairStatistics(), b = PairStatistics()
        a.anchors = 2; a.activeNegatives = 3; a.hardestNegativeSum = 1.5; a.anchorsWithNegatives = 2; a.activeNegativeAgeSum = 7
        b.anchors = 1; b.activePositives = 4; b.hardestPositiveSum = 0.25; b.anchorsWithPositives = 1; b.activeNegatives = 1
        let sum = a + b
        XCTAssertEqual([sum.anchors, sum.activePositives, sum.activeNegatives, sum.anchorsWithNegatives,
                        sum.anchorsWithPositives, sum.activeNegativeAgeSum], [3, 4, 4, 2, 1, 7])
        XCTAssertEqual(sum.hardestNegativeSum, 1.5)
        XCTAssertEqual(sum.hardestPositiveSum, 0.25)
        // The Float round trip of the allreduce keeps integer counts exact.
        var floats = [Float](repeating: .nan, count: PairStatistics.floatCount)
        floats.withUnsafeMutableBufferPointer { sum.write(to: $0.baseAddress!) }
        XCTAssertEqual(floats.withUnsafeBufferPointer { PairStatistics(reading: $0.baseAddress!, anchors: 3) }, sum)
    }

    // MARK: - Against a naive reference on wide rows

    /// Contrastive and triplet activity, hardest pairs and ages by plain loops in Double.
    struct Naive {
        var activePositives = 0, activeNegatives = 0, ageSum = 0
        var hardestNegativeSum = 0.0, anchorsWithNegatives = 0, hardestPositiveSum = 0.0, anchorsWithPositives = 0
    }

    func naive(_ kind: LossKind, _ p: PairProblem, stamps: [Int32], now: Int) -> Naive {
        let o = LossOptions(), d = p.dimension
        var result = Naive()
        for i in 0..<p.anchorCount {
            var positives: [(s: Double, j: Int)] = [], negatives: [(s: Double, j: Int)] = []
            for j in 0..<p.referenceCount where j != Int(p.ownIndex?[i] ?? -1) {
                var s = 0.0
                for k in 0..<d { s += Double(p.anchors[i * d + k]) * Double(p.references[j * d + k]) }
                if p.referenceLabels[j] == p.anchorLabels[i] { positives.append((s, j)) } else { negatives.append((s, j)) }
            }
            if let hardest = negatives.map(\.s).max() { result.hardestNegativeSum += hardest; result.anchorsWithNegatives += 1 }
            if let hardest = positives.map(\.s).min() { result.hardestPositiveSum += hardest; result.anchorsWithPositives += 1 }
            var activeNegatives: [Int] = []
            switch kind {
            case .contrastive:
                result.activePositives += positives.filter { $0.s < 1 - o.contrastiveEpsilon }.count
                activeNegatives = negatives.filter { $0.s > o.contrastiveMargin }.map(\.j)
            case .triplet:
                guard let n = negatives.max(by: { $0.s < $1.s }), let q = positives.min(by: { $0.s < $1.s }),
                      n.s - q.s + o.tripletMargin > 0 else { continue }
                result.activePositives += 1
                activeNegatives = [n.j]
            default:
                fatalError("no naive activity for \(kind)")
            }
            result.activeNegatives += activeNegatives.count
            result.ageSum += activeNegatives.reduce(0) { $0 + now - Int(stamps[$1]) }
        }
        return result
    }

    func testWideRowsMatchTheNaiveReference() {
        var random = RandomSource(seed: 17)
        let d = 4   // low dimension: many similarities above the margin, both sides of it
        for (R, cuts) in [(16, [Int]()), (277, []), (300, [37, 200]), (533, [256])] {
            let b = 7
            let anchors = randomUnitRows(count: b, dimension: d, random: &random)
            let references = randomUnitRows(count: R, dimension: d, random: &random)
            let labels = (0..<R).map { _ in Int32(random.nextInt(below: 5)) }
            let anchorLabels = (0..<b).map { _ in Int32(random.nextInt(below: 5)) }
            // Own entries inside vectors, in the tail, and none; an own entry carries its anchor's label.
            let own: [Int32] = [3, Int32(R - 1), -1, 17 % Int32(R), 0, Int32(R / 2), -1]
            var referenceLabels = labels
            for i in 0..<b where own[i] >= 0 { referenceLabels[Int(own[i])] = anchorLabels[i] }
            let stamps = (0..<R).map { _ in Int32(random.nextInt(below: 1000)) }
            let p = PairProblem(dimension: d, anchors: anchors, anchorLabels: anchorLabels, references: references,
                                referenceLabels: referenceLabels, ownIndex: own)
            for kind in [LossKind.contrastive, .triplet] {
                let expected = naive(kind, p, stamps: stamps, now: 5000)
                let s = statistics(makePairLoss(kind), p, cuts: cuts, stamps: stamps, now: 5000)
                let context = "\(kind), R \(R), cuts \(cuts)"
                XCTAssertGreaterThan(expected.activeNegatives, 0, "vacuous: \(context)")
                XCTAssertEqual(s.activePositives, expected.activePositives, context)
                XCTAssertEqual(s.activeNegatives, expected.activeNegatives, context)
                XCTAssertEqual(s.activeNegativeAgeSum, expected.ageSum, context)
                XCTAssertEqual(s.anchorsWithNegatives, expected.anchorsWithNegatives, context)
                XCTAssertEqual(s.anchorsWithPositives, expected.anchorsWithPositives, context)
                XCTAssertEqual(s.hardestNegativeSum, expected.hardestNegativeSum, accuracy: 1e-5, context)
                XCTAssertEqual(s.hardestPositiveSum, expected.hardestPositiveSum, accuracy: 1e-5, context)
            }
        }
    }
}
