import Foundation
import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

// The triplet and multi-similarity memory terms in one pass (`TripletStream`,
// `MultiSimilarityStream`) against the product-and-passes path they replace (`GemmPairLoss`
// without `onePass`), per anchor, and for the independence their results promise.
//
// Tolerances. Both paths compute s_ij = a_i·r_j of unit rows in Float, in different orders (one
// FMA chain in k order; sgemm's blocking): each is within γ_d ≈ d·u of the exact value
// (u = 2⁻²⁴, |Σ a_k r_k| ≤ ‖a‖‖r‖ = 1), so they differ by at most τ = 2·d·u. A quantity that
// depends on the similarities with derivatives g_ij moves by at most Σ_j |g_ij| · τ. An anchor
// with a similarity within 2τ of a decision (a mining threshold, a near-tie for the hardest
// pair, the hinge) may legitimately decide differently on the two paths; such anchors (found
// from Double similarities) are left out of the per-anchor comparisons, and the tests check
// they are few.

/// The largest difference of two Float similarities of unit rows of dimension d, computed in
/// two orders.
private func similarityTolerance(_ d: Int) -> Double { 2 * Double(d) * 0x1p-24 }

/// b anchors around 6 centres (label = centre, but every 7th anchor has label 99, which no
/// reference has: no positives); references around the centres with labels 0..<9 (6, 7, 8 are
/// negatives of every anchor) at varying closeness, every 10th row an exact copy of a row
/// 7 before it (ties, first index wins); own entries for every third anchor. `allPositive`
/// gives every reference label 0 and the anchors labels 0 and 99: anchors without negatives.
private func streamProblem(b: Int, R: Int, d: Int, seed: UInt64, allPositive: Bool = false) -> PairProblem {
    var random = RandomSource(seed: seed)
    let centres = randomUnitRows(count: 6, dimension: d, random: &random)
    var anchors: [Float] = [], anchorLabels: [Int32] = []
    for i in 0..<b {
        anchors += unitRow(near: i % 6, of: centres, weight: 0.8, dimension: d, random: &random)
        anchorLabels.append(i % 7 == 6 ? 99 : allPositive ? 0 : Int32(i % 6))
    }
    var references: [Float] = [], labels: [Int32] = []
    for j in 0..<R {
        if j >= 10, j % 10 == 0 {
            references += references[((j - 7) * d)..<((j - 6) * d)]
            labels.append(labels[j - 7])
            continue
        }
        let label = Int32(j % 9)
        let weight = Float(0.3 + 0.6 * Double(random.next() % 1000) / 1000)
        references += unitRow(near: Int(label) % 6, of: centres, weight: weight, dimension: d, random: &random)
        labels.append(allPositive ? 0 : label)
    }
    let own = (0..<b).map { $0 % 3 == 1 ? Int32((5 * $0 + 2) % R) : -1 }
    return PairProblem(dimension: d, anchors: anchors, anchorLabels: anchorLabels, references: references,
                       referenceLabels: labels, ownIndex: own)
}

/// Anchor i's similarities in Double (exact up to 1e−16) and its positives and negatives.
private func doubleSimilarities(_ p: PairProblem, anchor i: Int) -> (s: [Double], positives: [Int], negatives: [Int]) {
    let d = p.dimension
    var s = [Double](repeating: 0, count: p.referenceCount), positives: [Int] = [], negatives: [Int] = []
    for j in 0..<p.referenceCount {
        var dot = 0.0
        for k in 0..<d { dot += Double(p.anchors[i * d + k]) * Double(p.references[j * d + k]) }
        s[j] = dot
        if let own = p.ownIndex, own[i] == j { continue }
        if p.referenceLabels[j] == p.anchorLabels[i] { positives.append(j) } else { negatives.append(j) }
    }
    return (s, positives, negatives)
}

/// One evaluation against the memory (no reference gradient), the references cut at `cuts`,
/// with stamps when given and `now` = 1010: its total, anchor gradient (starting at
/// `initial`) and per-anchor sums.
private struct MemoryRun {
    var value: Double
    var anchorGradient: [Float]
    var perAnchor: [(loss: Double, statistics: PairStatistics)]
    var statistics: PairStatistics
    var path: MemoryTermPath?
}

private func runMemory(_ loss: PairLoss, _ p: PairProblem, _ reduction: PairReduction, cuts: [Int] = [],
                       stamps: [Int32]? = nil, scale: Float = 0.5, initial: Float = 0.25) -> MemoryRun {
    let d = p.dimension, b = p.anchorCount, R = p.referenceCount
    var dA = [Float](repeating: initial, count: b * d)
    let stampValues = stamps ?? [Int32](repeating: 0, count: R)
    let value = p.anchors.withUnsafeBufferPointer { a in
        p.anchorLabels.withUnsafeBufferPointer { y in
            p.references.withUnsafeBufferPointer { r in
                p.referenceLabels.withUnsafeBufferPointer { ry in
                    stampValues.withUnsafeBufferPointer { t in
                        (p.ownIndex ?? []).withUnsafeBufferPointer { own in
                            dA.withUnsafeMutableBufferPointer { dA in
                                let bounds = [0] + cuts + [R]
                                let segments = (0..<(bounds.count - 1)).map { k in
                                    ReferenceSegment(embeddings: r.baseAddress! + bounds[k] * d, labels: ry.baseAddress! + bounds[k],
                                                     count: bounds[k + 1] - bounds[k],
                                                     stamps: stamps == nil ? nil : t.baseAddress! + bounds[k])
                                }
                                var input = PairLossInput(anchors: a.baseAddress!, anchorLabels: y.baseAddress!, anchorCount: b,
                                                          dimension: d, references: segments,
                                                          ownIndex: p.ownIndex == nil ? nil : own.baseAddress!)
                                input.now = 1010
                                return loss.evaluate(input, reduction: reduction, scale: scale, anchorGradient: dA.baseAddress!,
                                                     referenceGradient: nil)
                            }
                        }
                    }
                }
            }
        }
    }
    return MemoryRun(value: value, anchorGradient: dA, perAnchor: (0..<b).map { loss.sums(ofAnchors: $0..<$0 + 1) },
                     statistics: loss.statistics, path: loss.memoryTermPath)
}

/// The shapes every comparison runs: b at, below and above a group of 16 and a partial third
/// group, d a vector's worth, a tail, and the usual embedding size, R in one or two segments.
private let shapes: [(b: Int, R: Int, d: Int, cuts: [Int])] = [
    (1, 37, 8, []), (15, 300, 33, [117]), (16, 301, 128, []), (17, 1200, 8, [400, 401]), (40, 517, 33, [200]),
    (40, 64, 128, [31]),
]

final class TripletStreamTests: XCTestCase {
    private let threads = BLASThreads.current

    override func tearDown() {
        BLASThreads.set(threads)
    }

    private let term = TripletTerm(margin: LossOptions().tripletMargin)

    private func streamed(_ tuning: PairLossTuning = PairLossTuning()) -> (GemmPairLoss<TripletTerm>, TripletStream) {
        let stream = TripletStream(term: term, tuning: tuning)
        return (GemmPairLoss(term: term, tuning: tuning, onePass: stream), stream)
    }

    /// Per anchor: the hardest pairs as the first index of the Double extremes (exact ties from
    /// copied rows included), the loss within 2τ, the statistics, and the gradient rows of
    /// anchors that agree on their pairs within rounding, against the product path and, for
    /// the indices, against Double similarities.
    func testMatchesTheProductPath() {
        for (b, R, d, cuts) in shapes {
            for (index, problem) in [streamProblem(b: b, R: R, d: d, seed: UInt64(b * 1000 + d)),
                                     streamProblem(b: b, R: R, d: d, seed: UInt64(b + d), allPositive: true)].enumerated() {
                for reduction in PairReduction.allCases {
                    let (loss, stream) = streamed()
                    let one = runMemory(loss, problem, reduction, cuts: cuts)
                    let product = runMemory(GemmPairLoss(term: term), problem, reduction, cuts: cuts)
                    let label = "b \(b) R \(R) d \(d) \(reduction) problem \(index)"
                    XCTAssertEqual(one.path, .onePass)
                    XCTAssertEqual(product.path, .products)
                    XCTAssertTrue(loss.memoryTermIsPerAnchor)
                    let tau = similarityTolerance(d)
                    var compared = 0, activeHinges = 0, ties = 0
                    for i in 0..<b {
                        let (s, positives, negatives) = doubleSimilarities(problem, anchor: i)
                        let pairs = stream.hardestPairs(ofAnchor: i)
                        // The first index of the Double extremes; near-ties (distinct values within 2τ) are left out.
                        func hardest(_ set: [Int], _ harder: (Double, Double) -> Bool) -> (index: Int, nearTie: Bool, exactTie: Bool) {
                            guard var best = set.first else { return (-1, false, false) }
                            for j in set where harder(s[j], s[best]) { best = j }
                            let nearTie = set.contains { $0 != best && s[$0] != s[best] && abs(s[$0] - s[best]) <= 2 * tau }
                            return (best, nearTie, set.contains { $0 != best && s[$0] == s[best] })
                        }
                        let n = hardest(negatives, >), p = hardest(positives, <)
                        let hinge = n.index >= 0 && p.index >= 0 ? s[n.index] - s[p.index] + term.margin : -1
                        if n.exactTie || p.exactTie { ties += 1 }
                        if n.nearTie || p.nearTie || abs(hinge) <= 4 * tau { continue }
                        compared += 1
                        XCTAssertEqual(Int(pairs.negativeColumn), n.index, "\(label) anchor \(i): n*")
                        XCTAssertEqual(Int(pairs.positiveColumn), p.index, "\(label) anchor \(i): p*")
                        let mine = one.perAnchor[i], theirs = product.perAnchor[i]
                        XCTAssertEqual(mine.loss, theirs.loss, accuracy: 2 * tau, "\(label) anchor \(i)")
                        XCTAssertEqual(mine.statistics.activePositives, theirs.statistics.activePositives, "\(label) anchor \(i)")
                        XCTAssertEqual(mine.statistics.activeNegatives, theirs.statistics.activeNegatives, "\(label) anchor \(i)")
                        XCTAssertEqual(mine.statistics.anchorsWithNegatives, theirs.statistics.anchorsWithNegatives)
                        XCTAssertEqual(mine.statistics.anchorsWithPositives, theirs.statistics.anchorsWithPositives)
                        XCTAssertEqual(mine.statistics.hardestNegativeSum, theirs.statistics.hardestNegativeSum, accuracy: tau)
                        XCTAssertEqual(mine.statistics.hardestPositiveSum, theirs.statistics.hardestPositiveSum, accuracy: tau)
                        if hinge > 0 { activeHinges += 1 }
                        // dA_i = 0.25 + 0.5 (r_n* − r_p*): the same rows, added in the same order; a few ulps of 1.25.
                        for k in 0..<d {
                            XCTAssertEqual(one.anchorGradient[i * d + k], product.anchorGradient[i * d + k],
                                           accuracy: 4 * 0x1p-24 * 1.25, "\(label) anchor \(i) k \(k)")
                        }
                    }
                    XCTAssertGreaterThanOrEqual(compared, b - b / 8, "\(label): too many anchors near a decision")
                    if index == 0, b >= 15 {
                        XCTAssertGreaterThan(activeHinges, 0, "\(label): vacuous, no active hinge")
                        XCTAssertLessThan(activeHinges, compared, "\(label): vacuous, every hinge active")
                        XCTAssertGreaterThan(ties, 0, "\(label): vacuous, no exact tie")
                    }
                    if index == 1 {
                        XCTAssertEqual(one.statistics.anchorsWithNegatives, b / 7, "\(label): only the label-99 anchors have negatives")
                    }
                }
            }
        }
    }

    /// The ages of the active negatives, with stamps on both segments, as the product path counts them.
    func testActiveNegativeAgesMatchTheProductPath() {
        let problem = streamProblem(b: 20, R: 130, d: 16, seed: 4)
        let stamps = (0..<130).map { Int32(1000 + $0 / 16) }
        let one = runMemory(streamed().0, problem, .mean, cuts: [50], stamps: stamps)
        let product = runMemory(GemmPairLoss(term: term), problem, .mean, cuts: [50], stamps: stamps)
        XCTAssertGreaterThan(product.statistics.activeNegativeAgeSum, 0, "vacuous: no aged active negative")
        XCTAssertEqual(one.statistics.activeNegativeAgeSum, product.statistics.activeNegativeAgeSum)
    }

    /// The same bits on one thread or two, and whatever anchors share an anchor's lanes.
    func testSameBitsOverThreadsAndAnchorSplits() {
        checkSameBitsOverThreadsAndAnchorSplits { tuning in self.streamed(tuning).0 }
    }
}

final class MultiSimilarityStreamTests: XCTestCase {
    private let threads = BLASThreads.current

    override func tearDown() {
        BLASThreads.set(threads)
    }

    private let term: MultiSimilarityTerm = {
        let o = LossOptions()
        return MultiSimilarityTerm(alpha: o.msAlpha, beta: o.msBeta, lambda: o.msLambda, mu: o.msMu)
    }()

    private func streamed(_ tuning: PairLossTuning = PairLossTuning()) -> GemmPairLoss<MultiSimilarityTerm> {
        GemmPairLoss(term: term, tuning: tuning, onePass: MultiSimilarityStream(term: term, tuning: tuning))
    }

    /// Anchor i in Double: whether a similarity lies within 2τ of a mining threshold (then the
    /// two paths may mine different pairs), and the g_ij of the formula.
    private func reference(_ p: PairProblem, anchor i: Int, reduction: PairReduction, tau: Double) -> (nearThreshold: Bool, g: [Double]) {
        let (s, positives, negatives) = doubleSimilarities(p, anchor: i)
        var g = [Double](repeating: 0, count: p.referenceCount)
        guard let minimum = positives.map({ s[$0] }).min(), let maximum = negatives.map({ s[$0] }).max() else { return (false, g) }
        let floor = minimum - term.mu, ceiling = maximum + term.mu
        let near = negatives.contains { abs(s[$0] - floor) <= 2 * tau } || positives.contains { abs(s[$0] - ceiling) <= 2 * tau }
        let minedNegatives = negatives.filter { s[$0] > floor }, minedPositives = positives.filter { s[$0] < ceiling }
        guard !minedNegatives.isEmpty, !minedPositives.isEmpty else { return (near, g) }
        let wp = reduction == .mean ? 1 / Double(minedPositives.count) : 1
        let wn = reduction == .mean ? 1 / Double(minedNegatives.count) : 1
        let ep = minedPositives.map { exp(-term.alpha * (s[$0] - term.lambda)) }
        let en = minedNegatives.map { exp(term.beta * (s[$0] - term.lambda)) }
        let dp = 1 + wp * ep.reduce(0, +), dn = 1 + wn * en.reduce(0, +)
        for (j, e) in zip(minedPositives, ep) { g[j] = -wp * e / dp }
        for (j, e) in zip(minedNegatives, en) { g[j] = wn * e / dn }
        return (near, g)
    }

    /// Per anchor away from the mining thresholds: the mined pair counts exactly, the hardest
    /// pairs within τ, the loss within Σ|g_ij| τ, and the gradient row within
    /// scale · (2β τ + (2n + 8) u) · Σ_j |g_ij| |r_jk| (e^{β s} moves by β τ relative, the
    /// denominator as much; n Float additions on each path) plus the rounding of the 0.25 it
    /// is added to.
    func testMatchesTheProductPath() {
        for (b, R, d, cuts) in shapes {
            for (index, problem) in [streamProblem(b: b, R: R, d: d, seed: UInt64(b * 1000 + d)),
                                     streamProblem(b: b, R: R, d: d, seed: UInt64(b + d), allPositive: true)].enumerated() {
                for reduction in PairReduction.allCases {
                    let loss = streamed()
                    let one = runMemory(loss, problem, reduction, cuts: cuts)
                    let product = runMemory(GemmPairLoss(term: term), problem, reduction, cuts: cuts)
                    let label = "b \(b) R \(R) d \(d) \(reduction) problem \(index)"
                    XCTAssertEqual(one.path, .onePass)
                    XCTAssertEqual(product.path, .products)
                    XCTAssertTrue(loss.memoryTermIsPerAnchor)
                    let tau = similarityTolerance(d), u = 0x1p-24
                    var compared = 0, contributing = 0, negatives = 0
                    for i in 0..<b {
                        let (near, g) = reference(problem, anchor: i, reduction: reduction, tau: tau)
                        negatives += doubleSimilarities(problem, anchor: i).negatives.count
                        if near { continue }
                        compared += 1
                        let mine = one.perAnchor[i], theirs = product.perAnchor[i]
                        let gSum = g.reduce(0) { $0 + abs($1) }, n = g.filter { $0 != 0 }.count
                        if n > 0 { contributing += 1 }
                        XCTAssertEqual(mine.loss, theirs.loss, accuracy: gSum * tau + 1e-12 * abs(theirs.loss), "\(label) anchor \(i)")
                        XCTAssertEqual(mine.statistics.activePositives, theirs.statistics.activePositives, "\(label) anchor \(i)")
                        XCTAssertEqual(mine.statistics.activeNegatives, theirs.statistics.activeNegatives, "\(label) anchor \(i)")
                        XCTAssertEqual(mine.statistics.anchorsWithNegatives, theirs.statistics.anchorsWithNegatives)
                        XCTAssertEqual(mine.statistics.anchorsWithPositives, theirs.statistics.anchorsWithPositives)
                        XCTAssertEqual(mine.statistics.hardestNegativeSum, theirs.statistics.hardestNegativeSum, accuracy: tau)
                        XCTAssertEqual(mine.statistics.hardestPositiveSum, theirs.statistics.hardestPositiveSum, accuracy: tau)
                        for k in 0..<d {
                            var size = 0.0
                            for j in 0..<R where g[j] != 0 { size += abs(g[j]) * abs(Double(problem.references[j * d + k])) }
                            let tolerance = 0.5 * (2 * term.beta * tau + Double(2 * n + 8) * u) * size + 2 * u * 0.25 * 2
                            XCTAssertEqual(Double(one.anchorGradient[i * d + k]), Double(product.anchorGradient[i * d + k]),
                                           accuracy: tolerance, "\(label) anchor \(i) k \(k)")
                        }
                    }
                    XCTAssertGreaterThanOrEqual(compared, b - b / 8, "\(label): too many anchors near a mining threshold")
                    if index == 0, b >= 15 {
                        XCTAssertGreaterThan(contributing, b / 2, "\(label): vacuous, few anchors mine pairs")
                        XCTAssertGreaterThan(one.statistics.activeNegatives, b, "\(label): vacuous, few mined negatives")
                        XCTAssertLessThan(one.statistics.activeNegatives, negatives * 9 / 10, "\(label): vacuous, every negative mined")
                    }
                    if index == 1 { XCTAssertEqual(one.statistics.activeNegatives, product.statistics.activeNegatives) }
                }
            }
        }
    }

    /// The anchor gradient against central differences of the Double formula, both reductions.
    func testGradientMatchesCentralDifferences() {
        let problem = streamProblem(b: 19, R: 45, d: 6, seed: 8)
        let options = LossOptions()
        for reduction in PairReduction.allCases {
            XCTAssertGreaterThan(BruteForcePairLoss.kinkDistance(.multiSimilarity, options: options, reduction: reduction, problem: problem),
                                 1e-4, "the problem must sit away from the mining thresholds")
            let result = runMemory(streamed(), problem, reduction)
            let exact = BruteForcePairLoss.value(.multiSimilarity, options: options, reduction: reduction, problem: problem)
            XCTAssertEqual(result.value, exact, accuracy: 1e-5 * max(1, abs(exact)), "\(reduction)")
            let (largestError, largest) = BruteForcePairLoss.centralDifferenceError(
                .multiSimilarity, options: options, reduction: reduction, problem: problem) { k in (Double(result.anchorGradient[k]) - 0.25) / 0.5 }
            XCTAssertGreaterThan(largest, 0.1, "vacuous: no gradient")
            XCTAssertLessThan(largestError, 1e-4 * largest + 1e-6, "\(reduction)")
        }
    }

    /// The ages of the mined negatives, with stamps on both segments, as the product path counts them.
    func testActiveNegativeAgesMatchTheProductPath() {
        let problem = streamProblem(b: 20, R: 130, d: 16, seed: 4)
        let stamps = (0..<130).map { Int32(1000 + $0 / 16) }
        let one = runMemory(streamed(), problem, .mean, cuts: [50], stamps: stamps)
        let product = runMemory(GemmPairLoss(term: term), problem, .mean, cuts: [50], stamps: stamps)
        XCTAssertGreaterThan(product.statistics.activeNegativeAgeSum, 0, "vacuous: no aged active negative")
        XCTAssertEqual(one.statistics.activeNegativeAgeSum, product.statistics.activeNegativeAgeSum)
    }

    func testSameBitsOverThreadsAndAnchorSplits() {
        checkSameBitsOverThreadsAndAnchorSplits { tuning in self.streamed(tuning) }
    }
}

/// The same bits whether the anchor groups run on one thread or two, and whatever anchors
/// share an anchor's lanes: anchors 0..<64 at once against 0..<21 and 21..<64 (the split of
/// two ranks with unequal shares, which moves every anchor to another lane).
private func checkSameBitsOverThreadsAndAnchorSplits(file: StaticString = #filePath, line: UInt = #line,
                                                     _ makeLoss: (PairLossTuning) -> PairLoss) {
    let b = 64, d = 24
    let problem = streamProblem(b: b, R: 2003, d: d, seed: 5)
    BLASThreads.set(2)
    let one = runMemory(makeLoss(PairLossTuning(rowsWorkPerThread: Int.max)), problem, .mean, cuts: [1500])
    let two = runMemory(makeLoss(PairLossTuning(rowsWorkPerThread: 1)), problem, .mean, cuts: [1500])
    XCTAssertEqual(one.value, two.value, file: file, line: line)
    XCTAssertEqual(one.anchorGradient, two.anchorGradient, file: file, line: line)
    XCTAssertEqual(one.statistics, two.statistics, file: file, line: line)

    func part(_ range: Range<Int>) -> PairProblem {
        PairProblem(dimension: d, anchors: Array(problem.anchors[(range.lowerBound * d)..<(range.upperBound * d)]),
                    anchorLabels: Array(problem.anchorLabels[range]), references: problem.references,
                    referenceLabels: problem.referenceLabels, ownIndex: Array(problem.ownIndex![range]))
    }
    let split = PairLossTuning(rowsWorkPerThread: 1)
    let first = runMemory(makeLoss(split), part(0..<21), .mean, cuts: [1500])
    let second = runMemory(makeLoss(split), part(21..<64), .mean, cuts: [1500])
    // Each anchor's gradient row and results are the same bits (the initial 0.25 is in both).
    XCTAssertEqual(first.anchorGradient + second.anchorGradient, one.anchorGradient, file: file, line: line)
    for (i, result) in (first.perAnchor + second.perAnchor).enumerated() {
        XCTAssertEqual(result.loss, one.perAnchor[i].loss, "anchor \(i)", file: file, line: line)
        XCTAssertEqual(result.statistics, one.perAnchor[i].statistics, "anchor \(i)", file: file, line: line)
    }
    XCTAssertGreaterThan(one.statistics.activeNegatives, 0, "vacuous: no active pair", file: file, line: line)
}

/// `makePairLoss` puts every loss's memory term on the one pass unless `PairLossTuning.onePass`
/// is off, which `XBM_MEMORY_PATH` sets.
final class OnePassStreamWiringTests: XCTestCase {
    func testOnePassByDefaultAndGemmOnRequest() throws {
        let problem = streamProblem(b: 17, R: 90, d: 8, seed: 2)
        for kind in LossKind.allCases {
            let streamed = makePairLoss(kind), products = makePairLoss(kind, tuning: PairLossTuning(onePass: false))
            XCTAssertTrue(streamed.memoryTermIsPerAnchor, "\(kind)")
            XCTAssertFalse(products.memoryTermIsPerAnchor, "\(kind)")
            XCTAssertEqual(runMemory(streamed, problem, .sum).path, .onePass, "\(kind)")
            XCTAssertEqual(runMemory(products, problem, .sum).path, .products, "\(kind)")
        }
        XCTAssertTrue(try PairLossTuning.onePass(environment: [:]))
        XCTAssertTrue(try PairLossTuning.onePass(environment: ["XBM_MEMORY_PATH": "one-pass"]))
        XCTAssertFalse(try PairLossTuning.onePass(environment: ["XBM_MEMORY_PATH": "gemm"]))
        XCTAssertThrowsError(try PairLossTuning.onePass(environment: ["XBM_MEMORY_PATH": "GEMM"])) { error in
            XCTAssertTrue("\(error)".contains("one-pass (the default) or gemm"), "\(error)")
        }
    }
}
