import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

/// The bound |s − ŝ| ≤ β = α ρ + τ of Docs/losses.md ("Exact screening of the memory term")
/// against vectors built to make the rounding errors add up, for every kernel this CPU runs:
/// never exceeded, and attained to within a small factor (the bound is not absurdly loose).
final class ScreeningBoundTests: XCTestCase {
    /// The largest |s − ŝ| / β over every anchor × row of `anchors` (≤ 16) × `rows`, s computed
    /// as `ContrastiveStream` does (one chain of d fused multiply-adds in k order), asserting
    /// |s − ŝ| ≤ β for each pair and kernel.
    private func worstRatio(anchors: [Float], rows: [Float], dimension d: Int, _ context: String) -> Double {
        let b = anchors.count / d, n = rows.count / d, stride = BF16.stride(dimension: d)
        precondition(b <= 16)
        var panel = [UInt16](repeating: 0, count: stride * 16)
        packScreeningPanel(anchors, count: b, dimension: d, into: &panel)
        var low = [UInt16](repeating: 0, count: n * stride)
        var rho = [Float](repeating: 0, count: n)
        rows.withUnsafeBufferPointer { r in
            for j in 0..<n {
                BF16.round(r.baseAddress! + j * d, dimension: d, into: &low[j * stride])
                rho[j] = ScreeningBound.normBound(r.baseAddress! + j * d, dimension: d)
            }
        }
        let alpha = anchors.withUnsafeBufferPointer { a in
            (0..<b).map { ScreeningBound.anchorFactor(a.baseAddress! + $0 * d, dimension: d) }
        }
        var worst = 0.0
        for kernel in ScreeningKernelTests.runnableKernels {
            var estimate = [Float](repeating: 0, count: n * 16)
            screenSimilarities(kernel, panel: panel, rows: low, count: n, stride: stride, prefetch: false, into: &estimate)
            for i in 0..<b {
                for j in 0..<n {
                    var s: Float = 0
                    for k in 0..<d { s = s.addingProduct(anchors[i * d + k], rows[j * d + k]) }
                    let beta = alpha[i] * rho[j] + ScreeningBound.absoluteTerm
                    let error = abs(Double(s) - Double(estimate[j * 16 + i]))
                    XCTAssertLessThanOrEqual(error, Double(beta), "\(context), \(kernel): anchor \(i), row \(j), s \(s)")
                    worst = max(worst, error / Double(beta))
                }
            }
        }
        return worst
    }

    /// x with a significand just below (`up` false) or just above (`up` true) a bf16 rounding
    /// midpoint, times 2^exponent: bf16 moves it by almost half a spacing, 2⁻⁸ |x| (down in
    /// magnitude, or up).
    private func nearMidpoint(_ exponent: Int, up: Bool, sign: FloatingPointSign = .plus) -> Float {
        let significand: Float = up ? 1 + 0x1p-8 + 0x1p-23 : 1 + 0x1p-8 - 0x1p-23
        return Float(sign: sign, exponent: exponent, significand: significand)
    }

    /// a = r, every element just below a midpoint: both operands shrink by ~2⁻⁸ in every term, so
    /// ŝ falls short of s by ~2⁻⁷ ‖a‖‖r‖ — the bound's leading term, attained.
    func testErrorsOfOneSignAttainTheBound() {
        var random = RandomSource(seed: 1)
        for d in [2, 128, 1000] {
            for up in [false, true] {
                var anchors: [Float] = []
                for _ in 0..<16 {
                    anchors += (0..<d).map { _ in
                        self.nearMidpoint(-4 - random.nextInt(below: 3), up: up, sign: random.nextInt(below: 2) == 0 ? .plus : .minus)
                    }
                }
                let worst = worstRatio(anchors: anchors, rows: anchors, dimension: d, "d \(d), up \(up)")
                // At d 128: 2⁻⁷ against C_d = 2⁻⁷ + 2⁻¹⁶ + 2γ_d + 2⁻²⁰ ≈ 0.99 of it (the diagonal).
                XCTAssertGreaterThan(worst, 0.95, "d \(d), up \(up): the bound is loose where its leading term is attained")
            }
        }
    }

    /// s ≈ 0 from large terms of both signs, with every term's rounding error of one sign:
    /// positive products from operands that both round down in magnitude, negative ones from
    /// operands that both round up. The error is as large as in the test above, on a tiny s.
    func testCancellationWithErrorsOfOneSign() {
        var random = RandomSource(seed: 2)
        let d = 256
        var anchors: [Float] = [], rows: [Float] = []
        for _ in 0..<16 {
            for k in 0..<d {
                let exponent = -5 - random.nextInt(below: 2)
                let x = nearMidpoint(exponent, up: k % 2 == 1)
                anchors.append(x)
                rows.append(k % 2 == 1 ? -x : x)
            }
        }
        let worst = worstRatio(anchors: anchors, rows: rows, dimension: d, "cancellation")
        XCTAssertGreaterThan(worst, 0.95, "cancellation: the bound is loose where its leading term is attained")
    }

    /// Random unit vectors, near-parallel pairs, large d (the accumulation's γ_d grows), and
    /// norms far from 1 (the bound scales with them; τ covers the underflow of tiny ones).
    func testRandomAndExtremeVectors() {
        var random = RandomSource(seed: 3)
        for (d, scale) in [(128, Float(1)), (4096, 1), (65_536, 1), (128, 0x1p-60), (128, 0x1p30), (33, 0x1p-126)] {
            let anchors = randomUnitRows(count: 16, dimension: d, random: &random).map { $0 * scale }
            var rows = randomUnitRows(count: 8, dimension: d, random: &random).map { $0 * scale }
            rows += anchors.prefix(4 * d).map { $0 * 0.999 }   // near-parallel: s ≈ ‖a‖‖r‖, the largest error
            let worst = worstRatio(anchors: anchors, rows: rows, dimension: d, "d \(d), scale \(scale)")
            XCTAssertLessThan(worst, 1)
        }
        // Subnormal elements among normal ones (VDPBF16PS reads subnormal bf16 as zero).
        var anchors = randomUnitRows(count: 16, dimension: 64, random: &random)
        for k in stride(from: 0, to: anchors.count, by: 3) { anchors[k] = Float(bitPattern: UInt32(k + 1) << 12) }
        _ = worstRatio(anchors: anchors, rows: anchors, dimension: 64, "subnormal elements")
    }

    /// C_d's terms at the documented sizes (Docs/losses.md quotes these figures).
    func testTheRelativeFactor() {
        XCTAssertEqual(ScreeningBound.relativeFactor(dimension: 128), 0.007_844, accuracy: 0.000_001)
        XCTAssertEqual(ScreeningBound.relativeFactor(dimension: 65_536), 0.015_7, accuracy: 0.000_1)
    }
}
