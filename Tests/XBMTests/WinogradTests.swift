import XCTest
@testable import XBM
import TestSupport

// Winograd F(2×2, 3×3) against the direct convolution in Double. The layer is linear, so its
// gradients have exact Double references too: dInput is the transposed convolution of the
// output gradient r, dWeight[o, ky, kx, c] = Σ r[i, y, x, o] · input[i, y+ky−1, x+kx−1, c].
// Tolerance, relative to the largest reference value: the transforms add ≤ 4 terms with
// coefficients ±1, ±½ per dimension, so a transformed value is up to 4× (input) or 2.25×
// (weight) the window's magnitude and its rounding is carried into sums of Ci products;
// measured errors are 1.0–2.4e-7 on these sizes, a wrong tap or sign is O(1). 1e-6 leaves room for
// the summation order of other BLAS kernels, not for a mistake.
final class WinogradTests: XCTestCase {
    let tolerance = 1e-6

    /// (dInput, dWeight) of Σ r · conv3x3(input, weight), in Double.
    private func referenceGradients(input x: [Float], weight: [Float], r: [Float],
                                    n: Int, h: Int, w: Int, ci: Int, co: Int) -> ([Double], [Double]) {
        var dInput = [Double](repeating: 0, count: x.count), dWeight = [Double](repeating: 0, count: weight.count)
        for i in 0..<n { for y in 0..<h { for xx in 0..<w { for o in 0..<co {
            let g = Double(r[((i * h + y) * w + xx) * co + o])
            for ky in 0..<3 { for kx in 0..<3 {
                let sy = y + ky - 1, sx = xx + kx - 1
                guard sy >= 0 && sy < h && sx >= 0 && sx < w else { continue }
                for c in 0..<ci {
                    let inputIndex = ((i * h + sy) * w + sx) * ci + c, weightIndex = ((o * 3 + ky) * 3 + kx) * ci + c
                    dInput[inputIndex] += g * Double(weight[weightIndex])
                    dWeight[weightIndex] += g * Double(x[inputIndex])
                }
            }}
        }}}}
        return (dInput, dWeight)
    }

    func testForwardAndGradientsMatchTheDirectConvolution() {
        // (n, H, W, Ci, Co): one tile per image (every tap at a border), channel tails below and
        // above the vector width, non-square images, several images per work item.
        for (n, h, w, ci, co) in [(2, 2, 2, 8, 5), (1, 4, 6, 20, 17), (3, 8, 4, 33, 16), (2, 6, 6, 16, 32)] {
            var random = RandomSource(seed: UInt64(100 * h + ci))
            let x = randomFloats(n * h * w * ci, &random), weight = randomFloats(co * 9 * ci, &random)
            let r = randomFloats(n * h * w * co, &random)
            let workspace = WinogradWorkspace(inputChannels: ci, outputChannels: co, height: h, width: w, maxBatch: n + 1)
            var output = [Float](repeating: .nan, count: n * h * w * co)
            winogradForward(output: &output, input: x, weight: weight, count: n, workspace: workspace)
            let reference = ReferenceLayers.conv3x3(x.doubles, weight: weight.doubles, count: n, height: h, width: w,
                                                    inputChannels: ci, outputChannels: co)
            XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, reference), tolerance, "forward \([n, h, w, ci, co])")

            // dInput is written (NaN beforehand proves every element is); dWeight is added onto 0.5.
            var inputGradient = [Float](repeating: .nan, count: x.count)
            var weightGradient = [Float](repeating: 0.5, count: weight.count)
            winogradBackward(inputGradient: &inputGradient, weightGradient: &weightGradient, outputGradient: r,
                             count: n, workspace: workspace)
            let (dInput, dWeight) = referenceGradients(input: x, weight: weight, r: r, n: n, h: h, w: w, ci: ci, co: co)
            assertGradient(inputGradient.doubles, dInput, tolerance: tolerance, "dInput \([n, h, w, ci, co])")
            assertGradient(weightGradient.map { Double($0) - 0.5 }, dWeight, tolerance: tolerance, "dWeight \([n, h, w, ci, co])")
        }
    }

    func testBackwardUsesTheLatestForwardAndCanSkipTheInputGradient() {
        let (n, h, w, ci, co) = (2, 4, 4, 16, 8)
        var random = RandomSource(seed: 7)
        let first = randomFloats(n * h * w * ci, &random), second = randomFloats(n * h * w * ci, &random)
        let weight = randomFloats(co * 9 * ci, &random), r = randomFloats(n * h * w * co, &random)
        let workspace = WinogradWorkspace(inputChannels: ci, outputChannels: co, height: h, width: w, maxBatch: n)
        var output = [Float](repeating: 0, count: n * h * w * co)
        winogradForward(output: &output, input: first, weight: weight, count: n, workspace: workspace)
        winogradForward(output: &output, input: second, weight: weight, count: n, workspace: workspace)
        var weightGradient = [Float](repeating: 0, count: weight.count)
        winogradBackward(inputGradient: nil, weightGradient: &weightGradient, outputGradient: r, count: n, workspace: workspace)
        let dWeight = referenceGradients(input: second, weight: weight, r: r, n: n, h: h, w: w, ci: ci, co: co).1
        assertGradient(weightGradient.doubles, dWeight, tolerance: tolerance, "dWeight after two forwards")
    }

    func testGlyphNetUsesWinogradOnlyWhereItApplies() {
        XCTAssertTrue(WinogradWorkspace.applies(inputChannels: 32, height: 16, width: 16))
        XCTAssertFalse(WinogradWorkspace.applies(inputChannels: 3, height: 32, width: 32), "colour first layer keeps im2col")
        XCTAssertFalse(WinogradWorkspace.applies(inputChannels: 128, height: 5, width: 5), "odd sizes keep im2col")
    }
}
