import XCTest
import XBM
import TestSupport

/// Not a test of speed (timed unit tests are banned): a measurement, run only on demand,
///
///     XBM_BENCH=1 swift test -c release --filter XBMTests.LossBenchmarkTests
///
/// One contrastive memory term (b 64, d 128, M 16,384; forward and anchor backward) against
/// one 64 × 128 × 16,384 sgemm, at 1 BLAS thread. Prints milliseconds (median of 7).
final class LossBenchmarkTests: XCTestCase {
    func testMemoryTermAgainstOneProduct() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["XBM_BENCH"] == "1", "set XBM_BENCH=1 to measure")
        let b = 64, d = 128, M = 16_384
        var random = RandomSource(seed: 1)
        let anchors = randomUnitRows(count: b, dimension: d, random: &random)
        let memory = randomUnitRows(count: M, dimension: d, random: &random)
        let anchorLabels = (0..<b).map { Int32($0 / 4) }
        let memoryLabels = (0..<M).map { _ in Int32(random.nextInt(below: 1878)) }
        let own = (0..<b).map { Int32($0) }
        var similarities = [Float](repeating: 0, count: b * M)
        var dA = [Float](repeating: 0, count: b * d)
        BLASThreads.set(1)

        func median(_ body: () -> Void) -> Double {
            body()
            var times: [Double] = []
            for _ in 0..<7 {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            return times.sorted()[3]
        }
        let product = median {
            gemm(.none, .transposed, m: b, n: M, k: d, a: anchors, lda: d, b: memory, ldb: d, c: &similarities, ldc: M)
        }
        var results: [String] = []
        for kind in LossKind.allCases {
            let loss = makePairLoss(kind, options: LossOptions())
            let term = median {
                anchors.withUnsafeBufferPointer { a in
                    memory.withUnsafeBufferPointer { r in
                        memoryLabels.withUnsafeBufferPointer { y in
                            anchorLabels.withUnsafeBufferPointer { ay in
                                own.withUnsafeBufferPointer { own in
                                    let input = PairLossInput(anchors: a.baseAddress!, anchorLabels: ay.baseAddress!, anchorCount: b,
                                                              dimension: d,
                                                              references: [ReferenceSegment(embeddings: r.baseAddress!, labels: y.baseAddress!, count: M)],
                                                              ownIndex: own.baseAddress!)
                                    _ = loss.evaluate(input, reduction: .mean, scale: 1, anchorGradient: &dA, referenceGradient: nil)
                                }
                            }
                        }
                    }
                }
            }
            results.append("\(kind.rawValue) \(String(format: "%.2f", term)) ms (\(String(format: "%.2f", term / product))×)")
        }
        print("one 64×128×16384 sgemm: \(String(format: "%.2f", product)) ms; memory term fwd+bwd: " + results.joined(separator: ", "))
        XCTAssertGreaterThan(product, 0)
    }
}
