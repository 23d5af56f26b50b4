import TestSupport
import XBMKernels
@testable import XBMModel
import XCTest

/// The backward over active pairs only (taken when few g_ij are non-zero) gives the gradients
/// of the dense products: both paths forced in turn on every loss, with two segments, a
/// non-zero starting gradient and a scale, on data where only some pairs are active.
final class LossSparseBackwardTests: XCTestCase {
    func testSparseAndDenseBackwardAgreeForEveryLoss() {
        var random = RandomSource(seed: 21)
        let b = 6, R = 40, d = 16
        let problem = PairProblem(dimension: d, anchors: randomUnitRows(count: b, dimension: d, random: &random),
                                  anchorLabels: [0, 1, 2, 0, 3, 1],
                                  references: randomUnitRows(count: R, dimension: d, random: &random),
                                  referenceLabels: (0..<R).map { Int32($0 % 7) },
                                  ownIndex: [3, -1, 9, -1, 17, 30])
        for kind in LossKind.allCases {
            for reduction in PairReduction.allCases {
                let dense = evaluate(makePairLoss(kind, tuning: PairLossTuning(sparseBackwardDensity: 0)),   // dense products
                                     problem, reduction: reduction, scale: 0.5, cuts: [13], initialGradient: 0.25)
                let sparse = evaluate(makePairLoss(kind, tuning: PairLossTuning(sparseBackwardDensity: 1)),  // active pairs one by one
                                      problem, reduction: reduction, scale: 0.5, cuts: [13], initialGradient: 0.25)
                XCTAssertEqual(dense.value, sparse.value, "\(kind) \(reduction)")
                // Same sums in another order: Float rounding of a few terms of size ≤ 1.
                for (x, y) in zip(dense.anchorGradient + dense.referenceGradient, sparse.anchorGradient + sparse.referenceGradient) {
                    XCTAssertEqual(x, y, accuracy: 1e-5, "\(kind) \(reduction)")
                }
                XCTAssertNotEqual(dense.anchorGradient, [Float](repeating: 0.25, count: b * d), "\(kind): vacuous, no gradient")
            }
        }
    }

    /// The anchors' rows (and, without dR, the sparse backward) are split over the BLAS threads
    /// once a row is wide: the loss, the statistics and the gradients must be the same bits
    /// split or not, on both backward paths. (The matrix products run on two threads either
    /// way: OpenBLAS' own results may change with its thread count.)
    func testRowsSplitOverThreadsGiveTheSameBits() throws {
        let threads = BLASThreads.current
        defer { BLASThreads.set(threads) }
        BLASThreads.set(2)
        var random = RandomSource(seed: 5)
        let b = 8, R = 16384, d = 16
        let problem = PairProblem(dimension: d, anchors: randomUnitRows(count: b, dimension: d, random: &random),
                                  anchorLabels: (0..<b).map { Int32($0 % 5) },
                                  references: randomUnitRows(count: R, dimension: d, random: &random),
                                  referenceLabels: (0..<R).map { Int32($0 % 97) },
                                  ownIndex: (0..<b).map { Int32($0 * 3) })
        for (path, make) in pathsWithoutReferenceGradient() {
            func run(split: Bool) -> (PairLossResult, PairStatistics) {
                let loss = make(split ? 1024 : Int.max)
                let result = evaluate(loss, problem, reduction: .sum, scale: 0.5, referenceGradient: false)
                return (result, loss.statistics)
            }
            let (one, oneStatistics) = run(split: false), (two, twoStatistics) = run(split: true)
            XCTAssertEqual(one.value, two.value, path)
            XCTAssertEqual(one.anchorGradient, two.anchorGradient, path)
            XCTAssertEqual(oneStatistics, twoStatistics, path)
            XCTAssertGreaterThan(oneStatistics.activeNegatives, 0, "\(path): vacuous, no active pair")
        }
    }

    /// Every path a memory term (no dR) can take, each built with a given rows-per-thread
    /// work: the products with the dense and with the sparse backward for every loss, and for
    /// contrastive, whose memory term `makePairLoss` gives the one-pass kernel, that kernel too.
    private func pathsWithoutReferenceGradient() -> [(String, (Int) -> PairLoss)] {
        var paths: [(String, (Int) -> PairLoss)] = []
        for kind in LossKind.allCases {
            for density in [0.0, 1.0] {
                paths.append(("\(kind), products, density \(density)", { work in
                    let tuning = PairLossTuning(sparseBackwardDensity: density, rowsWorkPerThread: work)
                    guard kind == .contrastive else { return makePairLoss(kind, tuning: tuning) }
                    return GemmPairLoss(term: ContrastiveTerm(margin: LossOptions().contrastiveMargin,
                                                              epsilon: LossOptions().contrastiveEpsilon), tuning: tuning)
                }))
            }
        }
        paths.append(("contrastive, one pass", { work in
            makePairLoss(.contrastive, tuning: PairLossTuning(rowsWorkPerThread: work))
        }))
        return paths
    }
}
