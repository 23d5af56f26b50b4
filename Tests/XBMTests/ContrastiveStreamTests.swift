import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

/// The contrastive memory term in one pass (`ContrastiveStream`) against the product-and-passes
/// path it replaces, against central differences of the Double formula, and for the
/// independence its results promise: of the thread count, and of which anchors share lanes
/// (the split over ranks).
final class ContrastiveStreamTests: XCTestCase {
    private let threads = BLASThreads.current

    override func tearDown() {
        BLASThreads.set(threads)
    }

    /// The contrastive loss on the one-pass path (`makePairLoss`'s) or, `streamed` false, with
    /// every evaluation through S (the product-and-passes path the one pass replaces).
    private func contrastiveLoss(streamed: Bool, tuning: PairLossTuning = PairLossTuning()) -> PairLoss {
        let options = LossOptions()
        let term = ContrastiveTerm(margin: options.contrastiveMargin, epsilon: options.contrastiveEpsilon)
        return GemmPairLoss(term: term, tuning: tuning, onePass: streamed ? ContrastiveStream(term: term, tuning: tuning) : nil)
    }

    /// b anchors in 5 clusters (label = cluster); references near the clusters, a third with
    /// the cluster's label (positives, mostly active) and the rest with labels no anchor has
    /// (negatives, many above the margin), plus uniformly random ones (inactive negatives).
    private func memoryLikeProblem(b: Int, R: Int, d: Int, seed: UInt64) -> PairProblem {
        var random = RandomSource(seed: seed)
        let centres = randomUnitRows(count: 5, dimension: d, random: &random)
        func near(_ centre: Int, _ weight: Float) -> [Float] {
            unitRow(near: centre, of: centres, weight: weight, dimension: d, random: &random)
        }
        let anchors = (0..<b).flatMap { near($0 % 5, 0.9) }
        var references: [Float] = [], labels: [Int32] = []
        for j in 0..<R {
            switch j % 4 {
            case 0: references += near(j % 5, 0.8); labels.append(Int32(j % 5))
            case 1, 2: references += near(j % 5, 0.75); labels.append(Int32(5 + j % 11))
            default: references += randomUnitRows(count: 1, dimension: d, random: &random); labels.append(Int32(j % 5))
            }
        }
        let own = (0..<b).map { $0 % 3 == 0 ? Int32(-1) : Int32((7 * $0) % R) }
        return PairProblem(dimension: d, anchors: anchors, anchorLabels: (0..<b).map { Int32($0 % 5) },
                           references: references, referenceLabels: labels, ownIndex: own)
    }

    private func run(_ problem: PairProblem, _ reduction: PairReduction, streamed: Bool, cuts: [Int] = [],
                     tuning: PairLossTuning = PairLossTuning(),
                     scale: Float = 0.5, initial: Float = 0.25) -> (PairLossResult, PairStatistics) {
        let loss = contrastiveLoss(streamed: streamed, tuning: tuning)
        let result = evaluate(loss, problem, reduction: reduction, scale: scale, cuts: cuts, initialGradient: initial,
                              referenceGradient: false)
        return (result, loss.statistics)
    }

    /// 37 anchors (three groups, the last of 5 lanes), d = 20 (a vector and a tail), 301
    /// references in two segments (neither a multiple of 4), own entries in both segments.
    func testMatchesTheProductPath() {
        let problem = memoryLikeProblem(b: 37, R: 301, d: 20, seed: 3)
        for reduction in PairReduction.allCases {
            let (product, productStatistics) = run(problem, reduction, streamed: false, cuts: [117])
            let (streamed, streamedStatistics) = run(problem, reduction, streamed: true, cuts: [117])
            // The pair sets are the same (no similarity within rounding of a threshold here)...
            XCTAssertEqual(streamedStatistics.activePositives, productStatistics.activePositives, "\(reduction)")
            XCTAssertEqual(streamedStatistics.activeNegatives, productStatistics.activeNegatives, "\(reduction)")
            XCTAssertEqual(streamedStatistics.anchorsWithPositives, productStatistics.anchorsWithPositives)
            XCTAssertEqual(streamedStatistics.anchorsWithNegatives, productStatistics.anchorsWithNegatives)
            XCTAssertGreaterThan(productStatistics.activePositives, 37, "vacuous: few active positives")
            XCTAssertGreaterThan(productStatistics.activeNegatives, 37 * 20, "vacuous: few active negatives")
            XCTAssertLessThan(productStatistics.activeNegatives, 37 * 200, "vacuous: every negative active")
            // ...and the sums differ by the similarities' rounding and the order of the sums
            // (measured: the loss 8e-10 relative, hardest-pair sums 6e-8, the gradient 1.8e-7
            // of its largest element).
            XCTAssertEqual(streamed.value, product.value, accuracy: 4e-9 * abs(product.value), "\(reduction)")
            XCTAssertEqual(streamedStatistics.hardestNegativeSum, productStatistics.hardestNegativeSum, accuracy: 2.5e-7)
            XCTAssertEqual(streamedStatistics.hardestPositiveSum, productStatistics.hardestPositiveSum, accuracy: 2.5e-7)
            var largest: Float = 0, size: Float = 0
            for (x, y) in zip(streamed.anchorGradient, product.anchorGradient) { largest = max(largest, abs(x - y)); size = max(size, abs(y)) }
            XCTAssertLessThan(largest, 4e-7 * size, "\(reduction): anchor gradient")
            XCTAssertEqual(streamed.referenceGradient, product.referenceGradient, "no reference gradient is written")
        }
    }

    /// The anchor gradient against central differences of the Double formula, both reductions.
    func testGradientMatchesCentralDifferences() {
        let problem = memoryLikeProblem(b: 19, R: 45, d: 6, seed: 8)
        let options = LossOptions()
        for reduction in PairReduction.allCases {
            XCTAssertGreaterThan(BruteForcePairLoss.kinkDistance(.contrastive, options: options, reduction: reduction, problem: problem),
                                 1e-4, "the problem must sit away from the hinges")
            let (result, _) = run(problem, reduction, streamed: true)
            let exact = BruteForcePairLoss.value(.contrastive, options: options, reduction: reduction, problem: problem)
            XCTAssertEqual(result.value, exact, accuracy: 1e-5 * max(1, abs(exact)), "\(reduction)")
            let (largestError, largest) = BruteForcePairLoss.centralDifferenceError(
                .contrastive, options: options, reduction: reduction, problem: problem) { k in (Double(result.anchorGradient[k]) - 0.25) / 0.5 }
            XCTAssertGreaterThan(largest, 0.1, "vacuous: no gradient")
            XCTAssertLessThan(largestError, 1e-4 * largest + 1e-6, "\(reduction)")
        }
    }

    /// The ages of the active negatives, with stamps on both segments, as the product path counts them.
    func testActiveNegativeAgesMatchTheProductPath() {
        let problem = memoryLikeProblem(b: 20, R: 130, d: 16, seed: 4)
        let stamps = (0..<130).map { Int32(1000 + $0 / 16) }
        var sums: [Int] = []
        for streamed in [false, true] {
            let loss = contrastiveLoss(streamed: streamed)
            var dA = [Float](repeating: 0, count: 20 * 16)
            withStampedSegments(problem, cut: 50, stamps: stamps, now: 1010) { input in
                _ = loss.evaluate(input, reduction: .mean, scale: 1, anchorGradient: &dA, referenceGradient: nil)
            }
            sums.append(loss.statistics.activeNegativeAgeSum)
        }
        XCTAssertGreaterThan(sums[0], 0, "vacuous: no aged active negative")
        XCTAssertEqual(sums[1], sums[0])
    }

    /// The same bits whether the anchor groups run on one thread or two, and whatever anchors
    /// share an anchor's lanes: anchors 0..<64 at once against 0..<21 and 21..<64 (the split
    /// of two ranks with unequal shares, which moves every anchor to another lane).
    func testSameBitsOverThreadsAndAnchorSplits() {
        let b = 64, d = 24
        let problem = memoryLikeProblem(b: b, R: 2003, d: d, seed: 5)
        BLASThreads.set(2)
        let (one, oneStatistics) = run(problem, .mean, streamed: true, cuts: [1500],
                                       tuning: PairLossTuning(rowsWorkPerThread: Int.max))
        let (two, twoStatistics) = run(problem, .mean, streamed: true, cuts: [1500], tuning: PairLossTuning(rowsWorkPerThread: 1))
        XCTAssertEqual(one.value, two.value)
        XCTAssertEqual(one.anchorGradient, two.anchorGradient)
        XCTAssertEqual(oneStatistics, twoStatistics)

        func part(_ range: Range<Int>) -> PairProblem {
            PairProblem(dimension: d, anchors: Array(problem.anchors[(range.lowerBound * d)..<(range.upperBound * d)]),
                        anchorLabels: Array(problem.anchorLabels[range]), references: problem.references,
                        referenceLabels: problem.referenceLabels, ownIndex: Array(problem.ownIndex![range]))
        }
        let split = PairLossTuning(rowsWorkPerThread: 1)
        let (first, firstStatistics) = run(part(0..<21), .mean, streamed: true, cuts: [1500], tuning: split)
        let (second, secondStatistics) = run(part(21..<64), .mean, streamed: true, cuts: [1500], tuning: split)
        XCTAssertEqual(first.anchorGradient + second.anchorGradient, one.anchorGradient)
        let parts = firstStatistics + secondStatistics
        XCTAssertEqual(parts.activePositives, oneStatistics.activePositives)
        XCTAssertEqual(parts.activeNegatives, oneStatistics.activeNegatives)
        XCTAssertEqual(parts.hardestNegativeSum, oneStatistics.hardestNegativeSum, accuracy: 1e-9)
        // Per-anchor losses are the same bits; only the order of the sum over anchors differs.
        XCTAssertEqual(first.value + second.value, one.value, accuracy: 1e-12 * abs(one.value))
        XCTAssertGreaterThan(oneStatistics.activeNegatives, 0, "vacuous: no active pair")
    }
}
