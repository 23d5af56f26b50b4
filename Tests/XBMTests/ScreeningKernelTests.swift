import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

/// The bf16 rounding, the screening kernels of Sources/CScreening against their definition, the
/// kernel choice from the CPU's features, and the memory's bf16 copy.
final class ScreeningKernelTests: XCTestCase {
    /// The kernels this CPU runs (the scalar one always).
    static var runnableKernels: [ScreeningKernel] {
        ScreeningKernel.allCases.filter { $0.problem(features: CPUFeatures.detected(environment: [:])) == nil }
    }

    private func bf16(_ x: Float) -> UInt16 {
        var x = x, out: [UInt16] = [0, 0]
        BF16.round(&x, dimension: 1, into: &out)
        XCTAssertEqual(out[1], 0, "the padding of an odd row is zero")
        return out[0]
    }

    func testRoundingIsToNearestEven() {
        let ulp: Float = 0x1p-7   // bf16's spacing in [1, 2)
        XCTAssertEqual(BF16.widen(bf16(1 + ulp / 2)), 1, "a tie goes to the even neighbour (down)")
        XCTAssertEqual(BF16.widen(bf16(1 + 3 * ulp / 2)), 1 + 2 * ulp, "a tie goes to the even neighbour (up)")
        XCTAssertEqual(BF16.widen(bf16((1 + ulp / 2).nextUp)), 1 + ulp, "just above a tie rounds up")
        XCTAssertEqual(BF16.widen(bf16((1 + ulp / 2).nextDown)), 1, "just below a tie rounds down")
        XCTAssertEqual(BF16.widen(bf16(-(1 + 3 * ulp / 2))), -(1 + 2 * ulp), "sign kept")
        XCTAssertEqual(BF16.widen(bf16(.greatestFiniteMagnitude)), .infinity, "beyond the largest bf16: infinity")
        XCTAssertEqual(BF16.widen(bf16(-.infinity)), -.infinity)
        XCTAssertTrue(BF16.widen(bf16(.nan)).isNaN)
        XCTAssertTrue(BF16.widen(bf16(Float(bitPattern: 0x7f80_0001))).isNaN, "a NaN whose payload sits in the low bits stays NaN")
        let subnormal = Float(bitPattern: 0x0001_8000)   // a bf16 tie among the subnormals
        XCTAssertEqual(bf16(subnormal), 0x0002, "subnormals round to nearest even too")
        // Every value's error is at most half a bf16 spacing: |x − bf16(x)| ≤ 2⁻⁸ |x| for normals.
        var random = RandomSource(seed: 5)
        for _ in 0..<10_000 {
            let x = Float(random.nextNormal()) * Float(sign: .plus, exponent: random.nextInt(below: 40) - 20, significand: 1)
            XCTAssertLessThanOrEqual(abs(Double(BF16.widen(bf16(x))) - Double(x)), 0x1p-8 * abs(Double(x)), "\(x)")
        }
    }

    /// ŝ of every runnable kernel against Σ_k â_k r̂_k in Double: the products are exact, so the
    /// kernels may differ only by fp32 sums, |ŝ − Σ â r̂| ≤ γ_d Σ |â r̂|. Partial panels and row
    /// counts that are not multiples of the kernels' row blocks; odd d.
    func testKernelsComputeTheBF16DotProducts() {
        var random = RandomSource(seed: 11)
        for d in [1, 2, 7, 128, 131] {
            let stride = BF16.stride(dimension: d)
            for anchors in [16, 5] {
                let a = randomUnitRows(count: anchors, dimension: d, random: &random)
                let rows = 37
                let r = randomUnitRows(count: rows, dimension: d, random: &random)
                var panel = [UInt16](repeating: 0xffff, count: stride * 16)
                packScreeningPanel(a, count: anchors, dimension: d, into: &panel)
                var low = [UInt16](repeating: 0, count: rows * stride)
                for j in 0..<rows { r.withUnsafeBufferPointer { BF16.round($0.baseAddress! + j * d, dimension: d, into: &low[j * stride]) } }
                let gamma = Double(d) * 0x1p-24 / (1 - Double(d) * 0x1p-24)
                for kernel in Self.runnableKernels {
                    var out = [Float](repeating: .nan, count: rows * 16)
                    screenSimilarities(kernel, panel: panel, rows: low, count: rows, stride: stride, prefetch: true, into: &out)
                    for j in 0..<rows {
                        for lane in 0..<16 {
                            var exact = 0.0, magnitude = 0.0
                            if lane < anchors {
                                for k in 0..<d {
                                    let p = Double(BF16.widen(panel[32 * (k / 2) + 2 * lane + k % 2])) * Double(BF16.widen(low[j * stride + k]))
                                    exact += p
                                    magnitude += abs(p)
                                }
                            }
                            let error = abs(Double(out[j * 16 + lane]) - exact)
                            XCTAssertLessThanOrEqual(error, gamma * magnitude, "\(kernel), d \(d), row \(j), lane \(lane)")
                        }
                    }
                }
            }
        }
    }

    func testTheKernelFollowsTheCPUFeatures() {
        func best(_ names: String) -> ScreeningKernel? {
            ScreeningKernel.best(for: CPUFeatures.detected(environment: ["XBM_CPU_FEATURES": names]))
        }
        XCTAssertEqual(best("avx avx2 fma f16c bmi1 bmi2 abm movbe"), .avx2)
        XCTAssertEqual(best("avx avx2 fma avx512f avx512bw avx512_bf16"), .avx512BF16)
        XCTAssertEqual(best("avx avx2 fma avx512f avx512bw avx512_vnni"), .avx2, "AVX-512 without BF16: the AVX2 kernel")
        XCTAssertNil(best("avx"), "no AVX2: no screening (the scalar screen would cost more than it saves)")
        let message = ScreeningKernel.avx512BF16.problem(features: CPUFeatures(names: ["avx", "avx2", "fma"])!)
        XCTAssertEqual(message, "the AVX512-BF16 screening kernel needs avx512f avx512_bf16, which this CPU lacks (it has "
                           + "avx avx2 fma); set XBM_SCREENING=on for the CPU's best kernel, or off for the fp32 one pass")
        XCTAssertNil(ScreeningKernel.scalar.problem(features: CPUFeatures()))
    }

    func testTheSettingFromTheEnvironment() throws {
        XCTAssertNil(try PairLossTuning.screening(environment: [:]), "off by default (Docs/performance.md)")
        XCTAssertNil(PairLossTuning().screening)
        XCTAssertEqual(try PairLossTuning.screening(environment: ["XBM_SCREENING": "on"]), ScreeningKernel.detected)
        XCTAssertNil(try PairLossTuning.screening(environment: ["XBM_SCREENING": "off"]))
        XCTAssertEqual(try PairLossTuning.screening(environment: ["XBM_SCREENING": "scalar"]), .scalar)
        XCTAssertThrowsError(try PairLossTuning.screening(environment: ["XBM_SCREENING": "fast"])) { error in
            XCTAssertEqual("\(error)", "XBM_SCREENING=fast is not one of on, off, scalar, avx2, avx512-bf16")
        }
        XCTAssertThrowsError(try PairLossTuning.screening(environment: ["XBM_SCREENING": "avx512-bf16",
                                                                         "XBM_CPU_FEATURES": "avx avx2 fma"])) { error in
            XCTAssertTrue("\(error)".hasPrefix("XBM_SCREENING=avx512-bf16: the AVX512-BF16 screening kernel needs"), "\(error)")
        }
    }

    /// Every write of a row (enqueue with a wrap, overwrite, restore) writes its bf16 copy and
    /// its norm bound; the segments carry them only when the memory keeps them.
    func testTheMemoryKeepsABF16CopyOfEveryRow() throws {
        let d = 5, M = 7, stride = BF16.stride(dimension: d)
        var random = RandomSource(seed: 2)
        let memory = CrossBatchMemory(capacity: M, dimension: d, lowPrecisionCopy: true)
        func check(_ context: String) {
            let segment = memory.referenceSegments[0]
            guard let low = segment.lowPrecision else { return XCTFail("\(context): no bf16 rows") }
            XCTAssertEqual(low.stride, stride)
            for j in 0..<segment.count {
                var expected = [UInt16](repeating: 0, count: stride)
                BF16.round(segment.embeddings + j * d, dimension: d, into: &expected)
                XCTAssertEqual(Array(UnsafeBufferPointer(start: low.rows + j * stride, count: stride)), expected, "\(context), row \(j)")
                let norm = (0..<d).reduce(0.0) { $0 + Double(segment.embeddings[j * d + $1]) * Double(segment.embeddings[j * d + $1]) }.squareRoot()
                XCTAssertGreaterThanOrEqual(Double(low.normBounds[j]), norm, "\(context), row \(j): ρ below the norm")
                XCTAssertLessThanOrEqual(Double(low.normBounds[j]), norm * (1 + 0x1p-20), "\(context), row \(j): ρ far above the norm")
            }
        }
        for batch in [3, 3, 3] {   // the third wraps
            let rows = (0..<batch * d).map { _ in Float(random.nextNormal()) * 3 }
            try memory.enqueue(embeddings: rows, labels: [Int32](repeating: 1, count: batch), count: batch)
            check("after an enqueue")
        }
        memory.overwrite(row: 4, embedding: [1, 2, 3, 4, 5])
        check("after an overwrite")
        let restored = try CrossBatchMemory(snapshot: memory.snapshot(), lowPrecisionCopy: true)
        XCTAssertEqual(restored.checksum(), memory.checksum())
        let segment = restored.referenceSegments[0], original = memory.referenceSegments[0]
        XCTAssertEqual(Array(UnsafeBufferPointer(start: segment.lowPrecision!.rows, count: M * stride)),
                       Array(UnsafeBufferPointer(start: original.lowPrecision!.rows, count: M * stride)), "restored")
        XCTAssertNil(CrossBatchMemory(capacity: M, dimension: d).referenceSegments.first?.lowPrecision)
        try memory.enqueue(embeddings: [Float](repeating: 1, count: d), labels: [0], count: 1)
        XCTAssertNil(CrossBatchMemory(capacity: 2, dimension: d).fifoSegments.first)
        XCTAssertNotNil(memory.fifoSegments.first?.lowPrecision)
        XCTAssertEqual(memory.fifoSegments.count, 2, "a wrapped memory's age order is two segments, each with its bf16 rows")
        XCTAssertNotNil(memory.fifoSegments.last?.lowPrecision)
    }

    /// ρ is +∞ for a row whose norm the bound's absolute term does not cover, so the screen
    /// never skips it.
    func testNormBoundsOfExtremeRows() {
        XCTAssertEqual(ScreeningBound.normBound([3, 4], dimension: 2), Float(5).nextUp, "5 exactly, rounded up past the slack")
        XCTAssertEqual(ScreeningBound.normBound([0, 0], dimension: 2), 0)
        XCTAssertEqual(ScreeningBound.normBound([.nan, 0], dimension: 2), .infinity)
        XCTAssertEqual(ScreeningBound.normBound([.infinity, 0], dimension: 2), .infinity)
        XCTAssertEqual(ScreeningBound.normBound([0x1p33, 0], dimension: 2), .infinity)
        XCTAssertEqual(ScreeningBound.anchorFactor([0x1p33, 0], dimension: 2), .infinity)
    }
}
