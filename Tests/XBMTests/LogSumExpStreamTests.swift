import Foundation
import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

/// The lifted and N-pair memory terms in one pass (`LogSumExpStream`) against the
/// product-and-passes path (`GemmPairLoss` without `onePass`), anchor by anchor, and for the
/// independence their results promise: of the other anchors in the lanes, of the thread count
/// and of the split of the anchors (over ranks).
///
/// Tolerances. With u = 2⁻²⁴, the two paths' similarities are Float dot products of d terms in
/// different orders, so |Δs_ij| ≤ ε_s = 2 d u ‖a_i‖ ‖r_j‖ (each within d u Σ|a_k r_k| of the exact
/// value). Each loss is a log-sum-exp (or softplus of one) with κ = 1 or 1/τ in front of s, whose
/// derivatives in s are soft-max weights summing to at most 1 per log-sum, so |Δℓ_i| ≤ 2 κ ε_s
/// from the similarities; the one pass adds the rounding of its Float exponentials (laneExp,
/// ≤ 2u relative, and the rescaling factors, one per rise of μ) and of Z's Float sums within a
/// block (≤ blockRows · u relative, then Double): ≤ (blockRows + 8) u on log Z. The gradient is a
/// Float sum of R weighted rows on both paths (≤ R u Σ_j |g_ij| ‖r_j‖∞ ≤ 2 R u max‖r‖∞ per
/// element, the weights summing to ≤ 2, both paths) plus the weights' change from Δs and Δ log Z
/// (≤ 2 κ ε_s + the above, relative, times the same 2 max‖r‖∞).
final class LogSumExpStreamTests: XCTestCase {
    private let threads = BLASThreads.current
    private let unit = Double(Float.ulpOfOne) / 2
    /// m of the lifted loss under test (LossOptions' 0.5 unless a test moves it).
    private var liftedMargin = LossOptions().liftedMargin
    /// The largest error / bound ratios seen by `compare` (loss, gradient), for the record.
    private var worstRatios = (loss: 0.0, gradient: 0.0)

    override func tearDown() {
        BLASThreads.set(threads)
    }

    private enum Kind: CaseIterable { case lifted, npair }

    private func term(_ kind: Kind) -> LogSumExpStream.Loss {
        let options = LossOptions()
        switch kind {
        case .lifted: return .lifted(margin: liftedMargin)
        case .npair: return .npair(temperature: options.npairTemperature)
        }
    }

    /// κ of the loss.
    private func exponentScale(_ kind: Kind) -> Double { kind == .lifted ? 1 : 1 / LossOptions().npairTemperature }

    /// The loss on the one-pass path or, `streamed` false, with every evaluation through S.
    private func makeLoss(_ kind: Kind, streamed: Bool, tuning: PairLossTuning = PairLossTuning()) -> PairLoss {
        let options = LossOptions()
        switch kind {
        case .lifted:
            let term = LiftedStructureTerm(margin: liftedMargin)
            return GemmPairLoss(term: term, tuning: tuning, onePass: streamed ? LogSumExpStream(term: term, tuning: tuning) : nil)
        case .npair:
            let term = NPairTerm(temperature: options.npairTemperature)
            return GemmPairLoss(term: term, tuning: tuning, onePass: streamed ? LogSumExpStream(term: term, tuning: tuning) : nil)
        }
    }

    /// b anchors in 5 clusters (labels 0..<5) except every seventh, whose label 77 no reference
    /// has (no positive); references near the clusters, a quarter with the cluster's label, half
    /// with labels no anchor has, a quarter random; own entries for two anchors in three, some
    /// on a positive. Anchors are scaled by `anchorScale` (similarities up to ± that).
    private func problem(b: Int, R: Int, d: Int, seed: UInt64, anchorScale: Float = 1) -> PairProblem {
        var random = RandomSource(seed: seed)
        let centres = randomUnitRows(count: 5, dimension: d, random: &random)
        func near(_ centre: Int, _ weight: Float) -> [Float] {
            unitRow(near: centre, of: centres, weight: weight, dimension: d, random: &random)
        }
        let anchors = (0..<b).flatMap { near($0 % 5, 0.9).map { $0 * anchorScale } }
        var references: [Float] = [], labels: [Int32] = []
        for j in 0..<R {
            switch j % 4 {
            case 0: references += near(j % 5, 0.8); labels.append(Int32(j % 5))
            case 1, 2: references += near(j % 5, 0.7); labels.append(Int32(5 + j % 11))
            default: references += randomUnitRows(count: 1, dimension: d, random: &random); labels.append(Int32(j % 5))
            }
        }
        let anchorLabels = (0..<b).map { $0 % 7 == 6 ? Int32(77) : Int32($0 % 5) }
        let own = (0..<b).map { $0 % 3 == 0 ? Int32(-1) : Int32((5 * $0 + 20 * ($0 % 5)) % R) }
        return PairProblem(dimension: d, anchors: anchors, anchorLabels: anchorLabels,
                           references: references, referenceLabels: labels, ownIndex: own)
    }

    private struct Run {
        var result: PairLossResult
        /// Each anchor's loss and statistics (`sums(ofAnchors: i ..< i + 1)`).
        var anchors: [(loss: Double, statistics: PairStatistics)]
        var statistics: PairStatistics
        var path: MemoryTermPath?
    }

    private func run(_ kind: Kind, _ problem: PairProblem, _ reduction: PairReduction, streamed: Bool, cuts: [Int] = [],
                     tuning: PairLossTuning = PairLossTuning(), scale: Float = 0.5) -> Run {
        let loss = makeLoss(kind, streamed: streamed, tuning: tuning)
        let result = evaluate(loss, problem, reduction: reduction, scale: scale, cuts: cuts, initialGradient: 0.25,
                              referenceGradient: false)
        let anchors = (0..<problem.anchorCount).map { loss.sums(ofAnchors: $0..<($0 + 1)) }
        return Run(result: result, anchors: anchors, statistics: loss.statistics, path: loss.memoryTermPath)
    }

    /// Compares the paths anchor by anchor within the bounds of the class comment; returns the
    /// number of anchors that contribute (for the callers' vacuity checks).
    @discardableResult
    private func compare(_ kind: Kind, _ problem: PairProblem, _ reduction: PairReduction, cuts: [Int],
                         _ label: String, file: StaticString = #filePath, line: UInt = #line) -> Int {
        let streamed = run(kind, problem, reduction, streamed: true, cuts: cuts)
        let product = run(kind, problem, reduction, streamed: false, cuts: cuts)
        XCTAssertEqual(streamed.path, .onePass, file: file, line: line)
        XCTAssertEqual(product.path, .products, file: file, line: line)
        let d = problem.dimension, R = problem.referenceCount, kappa = exponentScale(kind)
        func norm(_ rows: [Float], _ i: Int) -> Double {
            Double(rows[(i * d)..<((i + 1) * d)].reduce(0) { $0 + $1 * $1 }).squareRoot()
        }
        let referenceNorm = (0..<R).map { norm(problem.references, $0) }.max()!
        let referenceMax = Double(problem.references.map(abs).max()!)
        // Z's Float sum within a block has at most this many terms.
        let blockRows = Double(min(PackedAnchorLanes.blockRows(dimension: d), R))
        var contributing = 0
        for i in 0..<problem.anchorCount {
            let epsilonS = 2 * Double(d) * unit * norm(problem.anchors, i) * referenceNorm
            let logSumError = (blockRows + 8) * unit
            let (s, p) = (streamed.anchors[i], product.anchors[i])
            let where_ = "\(label) anchor \(i)"
            let lossBound = 2 * kappa * epsilonS + 2 * logSumError + 1e-12 * abs(p.loss)
            XCTAssertEqual(s.loss, p.loss, accuracy: lossBound, where_, file: file, line: line)
            worstRatios.loss = max(worstRatios.loss, abs(s.loss - p.loss) / lossBound)
            XCTAssertEqual(s.statistics.activePositives, p.statistics.activePositives, where_, file: file, line: line)
            XCTAssertEqual(s.statistics.activeNegatives, p.statistics.activeNegatives, where_, file: file, line: line)
            XCTAssertEqual(s.statistics.anchorsWithPositives, p.statistics.anchorsWithPositives, where_, file: file, line: line)
            XCTAssertEqual(s.statistics.anchorsWithNegatives, p.statistics.anchorsWithNegatives, where_, file: file, line: line)
            XCTAssertEqual(s.statistics.hardestNegativeSum, p.statistics.hardestNegativeSum, accuracy: epsilonS, where_, file: file, line: line)
            XCTAssertEqual(s.statistics.hardestPositiveSum, p.statistics.hardestPositiveSum, accuracy: epsilonS, where_, file: file, line: line)
            if p.statistics.activeNegatives > 0 { contributing += 1 }
            // Both scale 0.5 on a start of 0.25; the weights of a log-sum sum to ≤ 1 per side.
            let gradientBound = 0.5 * 2 * referenceMax * (Double(R) * unit + 2 * kappa * epsilonS + 2 * logSumError) + 4 * unit
            for k in 0..<d {
                let x = Double(streamed.result.anchorGradient[i * d + k]), y = Double(product.result.anchorGradient[i * d + k])
                worstRatios.gradient = max(worstRatios.gradient, abs(x - y) / gradientBound)
                if abs(x - y) > gradientBound {
                    XCTFail("\(where_): dA[\(k)] \(x) against \(y), beyond \(gradientBound)", file: file, line: line)
                    break
                }
            }
        }
        XCTAssertEqual(streamed.result.value, product.result.value,
                       accuracy: streamed.anchors.indices.reduce(0) { $0 + abs(streamed.anchors[$1].loss - product.anchors[$1].loss) } + 1e-9,
                       "\(label): total", file: file, line: line)
        XCTAssertEqual(streamed.result.referenceGradient, product.result.referenceGradient, "no reference gradient is written")
        return contributing
    }

    /// Both losses, both reductions, b across the lane boundaries (1, 15, 16, 17, 40), d of 8
    /// (half a vector), 33 (two vectors and a tail) and 128, R not a multiple of 4 in two
    /// segments; anchors without positives among them; the values also against the Double
    /// brute force of Docs/losses.md.
    func testMatchesTheProductPath() {
        let shapes: [(R: Int, d: Int)] = [(45, 8), (301, 33), (203, 128)]
        // Lifted at m 0.5 (most hinges on), 0.8 and 1.2 (under `.mean`, 131 and 1 of the 234
        // anchors with pairs on: hinges near 0 and off; `.sum`'s log |N| keeps them all on).
        let cases: [(Kind, Double)] = [(.lifted, 0.5), (.lifted, 0.8), (.lifted, 1.2), (.npair, 0)]
        var inactiveHinges = 0
        for (kind, margin) in cases {
            liftedMargin = kind == .lifted ? margin : LossOptions().liftedMargin
            for reduction in PairReduction.allCases {
                var contributing = 0, anchors = 0, withBoth = 0
                for b in [1, 15, 16, 17, 40] {
                    for (index, shape) in shapes.enumerated() {
                        let problem = problem(b: b, R: shape.R, d: shape.d, seed: UInt64(100 * b + index))
                        contributing += compare(kind, problem, reduction, cuts: [shape.R / 3],
                                                "\(kind) \(reduction) b \(b) R \(shape.R) d \(shape.d)")
                        anchors += b
                        withBoth += problem.anchorLabels.filter { $0 != 77 }.count
                    }
                }
                let problem = problem(b: 17, R: 301, d: 33, seed: 1)
                let streamed = run(kind, problem, reduction, streamed: true, cuts: [100])
                var options = LossOptions()
                options.liftedMargin = liftedMargin
                let exact = BruteForcePairLoss.value(kind == .lifted ? .lifted : .npair, options: options,
                                                     reduction: reduction, problem: problem)
                XCTAssertEqual((streamed.result.value - exact) / max(1, abs(exact)), 0, accuracy: 1e-5, "\(kind) \(reduction)")
                if kind == .npair || margin == 0.5 {
                    XCTAssertGreaterThan(contributing, anchors / 4, "\(kind) \(reduction): vacuous, few anchors contribute")
                }
                if kind == .lifted { inactiveHinges += withBoth - contributing }
            }
        }
        XCTAssertGreaterThan(inactiveHinges, 50, "vacuous: lifted's hinge always on")
        print("LogSumExpStreamTests: worst error / bound, loss \(worstRatios.loss), gradient \(worstRatios.gradient)")
    }

    /// Similarities up to ±45 (lifted) and ±4.5 (N-pair, τ 0.1), so exponents spread over ~90,
    /// the references sorted by their similarity to anchor 0 so that its μ rises at almost
    /// every row and the rescaling runs with factors down to e^{−90}; and the references
    /// reversed (μ found first, no rescaling after it).
    func testLargeSpreadsExerciseTheRescaling() {
        for kind in Kind.allCases {
            let c: Float = kind == .lifted ? 45 : 4.5
            var base = problem(b: 20, R: 257, d: 33, seed: 7, anchorScale: c)
            base.ownIndex = nil
            let d = base.dimension
            let order = (0..<base.referenceCount).sorted { x, y in
                func s(_ j: Int) -> Float { (0..<d).reduce(0) { $0 + base.anchors[$1] * base.references[j * d + $1] } }
                return s(x) < s(y)
            }
            for ascending in [true, false] {
                let sequence = ascending ? order : order.reversed()
                var problem = base
                problem.references = sequence.flatMap { Array(base.references[($0 * d)..<(($0 + 1) * d)]) }
                problem.referenceLabels = sequence.map { base.referenceLabels[$0] }
                for reduction in PairReduction.allCases {
                    let contributing = compare(kind, problem, reduction, cuts: [100], "\(kind) \(reduction) ascending \(ascending)")
                    XCTAssertGreaterThan(contributing, 5, "vacuous")
                }
            }
        }
        print("LogSumExpStreamTests: large spreads, worst error / bound, loss \(worstRatios.loss), gradient \(worstRatios.gradient)")
    }

    /// Anchors with no positive or no negative give 0 on both paths; the own entry is excluded
    /// by index even when its label differs (it is then not a negative either).
    func testAnchorsWithoutPositivesOrNegatives() {
        let d = 8
        var random = RandomSource(seed: 11)
        let references = randomUnitRows(count: 10, dimension: d, random: &random)
        let referenceLabels: [Int32] = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        // 0: label 0, own 3 (the only label-1 row): no negative. 1: label 0, no own: one negative.
        // 2: label 1, own 3: no positive. 3: label 5: no positive. 4: label 0, own 0.
        let problem = PairProblem(dimension: d, anchors: randomUnitRows(count: 5, dimension: d, random: &random),
                                  anchorLabels: [0, 0, 1, 5, 0], references: references, referenceLabels: referenceLabels,
                                  ownIndex: [3, -1, 3, -1, 0])
        for kind in Kind.allCases {
            for reduction in PairReduction.allCases {
                compare(kind, problem, reduction, cuts: [4], "\(kind) \(reduction)")
                let streamed = run(kind, problem, reduction, streamed: true, cuts: [4])
                for i in [0, 2, 3] {
                    XCTAssertEqual(streamed.anchors[i].loss, 0, "\(kind) anchor \(i)")
                    XCTAssertEqual(Array(streamed.result.anchorGradient[(i * d)..<((i + 1) * d)]), [Float](repeating: 0.25, count: d))
                }
                XCTAssertEqual(streamed.anchors[0].statistics.anchorsWithNegatives, 0)
                XCTAssertEqual(streamed.anchors[2].statistics.anchorsWithPositives, 0)
                XCTAssertEqual(streamed.anchors[4].statistics.anchorsWithPositives, 1, "rows 1, 2, 4... are positives")
                XCTAssertGreaterThan(streamed.anchors[1].loss, 0, "\(kind) \(reduction): anchor 1 has a pair of each")
            }
        }
    }

    /// The ages of the active negatives, with stamps on both segments, as the product path counts them.
    func testActiveNegativeAgesMatchTheProductPath() {
        let problem = problem(b: 20, R: 130, d: 16, seed: 4)
        let stamps = (0..<130).map { Int32(1000 + $0 / 16) }
        for kind in Kind.allCases {
            var sums: [Int] = []
            for streamed in [false, true] {
                let loss = makeLoss(kind, streamed: streamed)
                var dA = [Float](repeating: 0, count: 20 * 16)
                withStampedSegments(problem, cut: 50, stamps: stamps, now: 1010) { input in
                    _ = loss.evaluate(input, reduction: .sum, scale: 1, anchorGradient: &dA, referenceGradient: nil)
                }
                sums.append(loss.statistics.activeNegativeAgeSum)
            }
            XCTAssertGreaterThan(sums[0], 0, "\(kind): vacuous, no aged active negative")
            XCTAssertEqual(sums[1], sums[0], "\(kind)")
        }
    }

    /// An anchor's results are the same bits evaluated alone, among 40 others (in another lane:
    /// the split 0..<13, 13..<40 of two ranks moves every later anchor to another lane), and on
    /// one thread or two.
    func testSameBitsAloneAmongOthersAndOverThreads() {
        let b = 40, d = 24
        BLASThreads.set(2)
        for kind in Kind.allCases {
            let problem = problem(b: b, R: 1003, d: d, seed: 5)
            let one = run(kind, problem, .mean, streamed: true, cuts: [700], tuning: PairLossTuning(rowsWorkPerThread: Int.max))
            let two = run(kind, problem, .mean, streamed: true, cuts: [700], tuning: PairLossTuning(rowsWorkPerThread: 1))
            XCTAssertEqual(one.result.value, two.result.value)
            XCTAssertEqual(one.result.anchorGradient, two.result.anchorGradient)
            XCTAssertEqual(one.statistics, two.statistics)

            func part(_ range: Range<Int>) -> PairProblem {
                PairProblem(dimension: d, anchors: Array(problem.anchors[(range.lowerBound * d)..<(range.upperBound * d)]),
                            anchorLabels: Array(problem.anchorLabels[range]), references: problem.references,
                            referenceLabels: problem.referenceLabels, ownIndex: Array(problem.ownIndex![range]))
            }
            var contributing = 0
            for range in [0..<13, 13..<40, 21..<22, 39..<40, 0..<1] {
                let piece = run(kind, part(range), .mean, streamed: true, cuts: [700], tuning: PairLossTuning(rowsWorkPerThread: 1))
                XCTAssertEqual(piece.result.anchorGradient, Array(one.result.anchorGradient[(range.lowerBound * d)..<(range.upperBound * d)]),
                               "\(kind) \(range)")
                for (offset, i) in range.enumerated() {
                    XCTAssertEqual(piece.anchors[offset].loss.bitPattern, one.anchors[i].loss.bitPattern, "\(kind) anchor \(i)")
                    XCTAssertEqual(piece.anchors[offset].statistics, one.anchors[i].statistics, "\(kind) anchor \(i)")
                    if one.anchors[i].loss > 0 { contributing += 1 }
                }
            }
            XCTAssertGreaterThan(contributing, 10, "\(kind): vacuous")
        }
    }

    /// `makePairLoss` puts lifted's and npair's memory term on the one pass (per anchor), and
    /// `PairLossTuning.onePass` off (`XBM_MEMORY_PATH=gemm`) back on the products.
    func testMakePairLossWiring() {
        let problem = problem(b: 5, R: 40, d: 8, seed: 2)
        for kind in [LossKind.lifted, .npair] {
            let loss = makePairLoss(kind)
            XCTAssertTrue(loss.memoryTermIsPerAnchor)
            _ = evaluate(loss, problem, reduction: .sum, referenceGradient: false)
            XCTAssertEqual(loss.memoryTermPath, .onePass)
            _ = evaluate(loss, problem, reduction: .sum, referenceGradient: true)
            XCTAssertEqual(loss.memoryTermPath, .onePass, "the batch term (with dR) leaves the memory path as it was")
            let products = makePairLoss(kind, tuning: PairLossTuning(onePass: false))
            XCTAssertFalse(products.memoryTermIsPerAnchor)
            _ = evaluate(products, problem, reduction: .sum, referenceGradient: false)
            XCTAssertEqual(products.memoryTermPath, .products)
        }
    }

    /// laneExp against Double exp over the range the stream uses (and past its clamp).
    func testLaneExpAccuracy() {
        var worst = 0.0
        var x: Float = -87
        while x <= 5 {
            let lanes = FloatVector((0..<16).map { x + Float($0) * 0.001 })
            let e = laneExp(lanes)
            for lane in 0..<16 {
                let exact = exp(Double(lanes[lane]))
                worst = max(worst, abs(Double(e[lane]) - exact) / exact)
            }
            x += 0.173
        }
        XCTAssertLessThan(worst, 2 * Double(Float.ulpOfOne), "relative error of laneExp")
        XCTAssertEqual(laneExp(FloatVector(repeating: 0)), FloatVector(repeating: 1), "e⁰ is exactly 1: unrisen lanes keep their bits")
        XCTAssertLessThan(laneExp(FloatVector(repeating: -1000))[0], 1.3e-38)
    }
}
