import TestSupport
import XBMKernels
@testable import XBMModel
import XCTest

/// Not a test of speed (timed unit tests are banned): a measurement, run only on demand,
///
///     XBM_BENCH=1 swift test -c release --filter XBMTests.LossBenchmarkTests
///
/// One memory term of each loss (b 64, d 128, M 16,384; forward and anchor backward), and those
/// with a one-pass kernel (contrastive, triplet, multi-similarity) also on the product path, against one 64 × 128 × 16,384 sgemm, at 1 BLAS
/// thread. Prints milliseconds (median of 7).
final class LossBenchmarkTests: XCTestCase {
    func testMemoryTermAgainstOneProduct() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["XBM_BENCH"] == "1", "set XBM_BENCH=1 to measure")
        BLASThreads.set(1)
        // 64 anchors (one rank's batch in `bench step`) and 16 (a rank's in `Launch/demo`).
        for b in [64, 16] {
            let d = 128, M = 16_384
            var random = RandomSource(seed: 1)
            let anchors = randomUnitRows(count: b, dimension: d, random: &random)
            let memory = randomUnitRows(count: M, dimension: d, random: &random)
            let anchorLabels = (0..<b).map { Int32($0 / 4) }
            let memoryLabels = (0..<M).map { _ in Int32(random.nextInt(below: 1878)) }
            let own = (0..<b).map { Int32($0) }
            var similarities = [Float](repeating: 0, count: b * M)
            var dA = [Float](repeating: 0, count: b * d)

            let product = median {
                gemm(.none, .transposed, m: b, n: M, k: d, a: anchors, lda: d, b: memory, ldb: d, c: &similarities, ldc: M)
            }
            func term(_ kind: LossKind, productPath: Bool = false) -> String {
                let loss = makePairLoss(kind, options: LossOptions(), tuning: PairLossTuning(onePass: !productPath))
                let time = median {
                    memoryTerm(loss, anchors: anchors, anchorLabels: anchorLabels, own: own, memory: memory,
                               memoryLabels: memoryLabels, reduction: .mean, anchorGradient: &dA)
                }
                return "\(String(format: "%.2f", time)) ms (\(String(format: "%.2f", time / product))×)"
            }
            var results = LossKind.allCases.map { "\($0.rawValue) \(term($0))" }
            // Again on the product-and-passes path that the one-pass kernels replaced.
            for kind in [LossKind.contrastive, .triplet, .multiSimilarity] {
                results.append("\(kind.rawValue) on the product path \(term(kind, productPath: true))")
            }
            print("one \(b)×128×16384 sgemm: \(String(format: "%.2f", product)) ms; memory term fwd+bwd: " + results.joined(separator: ", "))
            XCTAssertGreaterThan(product, 0)
        }
    }

    /// The break-even of the two backward paths (`PairLossTuning.sparseBackwardDensity`): the
    /// contrastive memory term with each path forced, at a range of active-pair fractions; and
    /// the one-pass path (`ContrastiveStream`) at the same fractions, i.e. what active pairs
    /// cost it.
    /// Anchors sit in 4 clusters of 16; a share f of the memory rows lie near a cluster centre
    /// (cosine ≈ 0.8 > the margin, other labels), so each is an active negative of 16 anchors
    /// and the fraction of active pairs is ≈ f / 4. Prints milliseconds (median of 7).
    func testSparseAgainstDenseBackward() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["XBM_BENCH"] == "1", "set XBM_BENCH=1 to measure")
        let b = 64, d = 128, M = 16_384, clusters = 4
        let threads = Int(ProcessInfo.processInfo.environment["XBM_BENCH_THREADS"] ?? "1") ?? 1
        BLASThreads.set(threads)
        // The two backward paths are those of the product path, which the contrastive memory
        // term no longer takes (ContrastiveStream): built without it.
        var random = RandomSource(seed: 2)
        let centres = randomUnitRows(count: clusters, dimension: d, random: &random)
        func near(_ centre: Int, weight: Float) -> [Float] {
            let noise = randomUnitRows(count: 1, dimension: d, random: &random)
            let v = (0..<d).map { weight * centres[centre * d + $0] + (1 - weight * weight).squareRoot() * noise[$0] }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / norm }
        }
        let anchors = (0..<b).flatMap { near($0 / (b / clusters), weight: 0.95) }
        let anchorLabels = (0..<b).map { Int32($0 / 4) }
        let own = [Int32](repeating: -1, count: b)
        var dA = [Float](repeating: 0, count: b * d)
        var lines: [String] = []
        for share in [0.0, 0.04, 0.08, 0.16, 0.32, 0.64] {
            let memory = (0..<M).flatMap { j in
                Double(j % 1000) < share * 1000 ? near(j % clusters, weight: 0.85) : randomUnitRows(count: 1, dimension: d, random: &random)
            }
            let memoryLabels = (0..<M).map { Int32(1000 + $0 % 5000) }
            func time(_ loss: PairLoss) -> Double {
                median {
                    memoryTerm(loss, anchors: anchors, anchorLabels: anchorLabels, own: own, memory: memory,
                               memoryLabels: memoryLabels, reduction: .sum, anchorGradient: &dA)
                }
            }
            let denseLoss = contrastiveOnTheProductPath(PairLossTuning(sparseBackwardDensity: 0))
            let dense = time(denseLoss)
            let active = Double(denseLoss.statistics.activePositives + denseLoss.statistics.activeNegatives) / Double(b * M)
            let sparse = time(contrastiveOnTheProductPath(PairLossTuning(sparseBackwardDensity: 1)))
            let onePassLoss = makePairLoss(.contrastive, options: LossOptions())
            let onePass = time(onePassLoss)
            let onePassActive = Double(onePassLoss.statistics.activePositives + onePassLoss.statistics.activeNegatives) / Double(b * M)
            XCTAssertEqual(onePassActive, active, "both paths see the same active pairs")
            lines.append(String(format: "active %.4f: dense %.2f ms, sparse %.2f ms, one pass %.2f ms", active, dense, sparse, onePass))
        }
        print("contrastive memory term, b \(b), d \(d), M \(M), \(threads) thread(s):\n  " + lines.joined(separator: "\n  "))
        XCTAssertEqual(lines.count, 6)
    }

    /// The contrastive loss without its one-pass memory kernel: every evaluation through S.
    private func contrastiveOnTheProductPath(_ tuning: PairLossTuning = PairLossTuning()) -> PairLoss {
        let options = LossOptions()
        return GemmPairLoss(term: ContrastiveTerm(margin: options.contrastiveMargin, epsilon: options.contrastiveEpsilon),
                            tuning: tuning)
    }

    /// Milliseconds of `body`, median of 7 after one untimed call.
    private func median(_ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<7 {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return times.sorted()[3]
    }

    /// One memory term: anchors (b, d) against one segment of M rows, anchor gradient only.
    private func memoryTerm(_ loss: PairLoss, anchors: [Float], anchorLabels: [Int32], own: [Int32], memory: [Float],
                            memoryLabels: [Int32], reduction: PairReduction, anchorGradient: inout [Float]) {
        let b = anchorLabels.count, M = memoryLabels.count, d = anchors.count / b
        anchors.withUnsafeBufferPointer { a in
            memory.withUnsafeBufferPointer { r in
                memoryLabels.withUnsafeBufferPointer { y in
                    anchorLabels.withUnsafeBufferPointer { ay in
                        own.withUnsafeBufferPointer { own in
                            let input = PairLossInput(anchors: a.baseAddress!, anchorLabels: ay.baseAddress!, anchorCount: b,
                                                      dimension: d,
                                                      references: [ReferenceSegment(embeddings: r.baseAddress!, labels: y.baseAddress!, count: M)],
                                                      ownIndex: own.baseAddress!)
                            _ = loss.evaluate(input, reduction: reduction, scale: 1, anchorGradient: &anchorGradient, referenceGradient: nil)
                        }
                    }
                }
            }
        }
    }
}
