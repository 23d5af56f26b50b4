import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

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
            let (dInput, dWeight) = referenceGradients(input: x, weight: weight, r: r, n: n, h: h, w: w, ci: ci, co: co)
            let reference = ReferenceLayers.conv3x3(x.doubles, weight: weight.doubles, count: n, height: h, width: w,
                                                    inputChannels: ci, outputChannels: co)
            // The size rule sends these small layers by ξ; one image per group takes the other way.
            for group in [nil, 1] as [Int?] {
                let workspace = WinogradWorkspace(inputChannels: ci, outputChannels: co, height: h, width: w, maxBatch: n + 1,
                                                  imagesPerGroup: group)
                let what = "\([n, h, w, ci, co]) \(workspace.usesGroups(n) ? "by groups" : "by ξ")"
                XCTAssertEqual(workspace.usesGroups(n), group != nil && n >= 2, what)
                var output = [Float](repeating: .nan, count: n * h * w * co)
                winogradForward(output: &output, input: x, weight: weight, count: n, workspace: workspace)
                XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, reference), tolerance, "forward \(what)")

                // dInput is written (NaN beforehand proves every element is); dWeight is added onto 0.5.
                var inputGradient = [Float](repeating: .nan, count: x.count)
                var weightGradient = [Float](repeating: 0.5, count: weight.count)
                winogradBackward(inputGradient: &inputGradient, weightGradient: &weightGradient, outputGradient: r,
                                 count: n, workspace: workspace)
                assertGradient(inputGradient.doubles, dInput, tolerance: tolerance, "dInput \(what)")
                assertGradient(weightGradient.map { Double($0) - 0.5 }, dWeight, tolerance: tolerance, "dWeight \(what)")
            }
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

/// The full-size glyphnet with Winograd against the same network on im2col, at a batch that
/// cuts blocks 2–4 into several groups of images (8, 4 and 2), and at 1 and 2 threads.
final class WinogradNetworkTests: XCTestCase {
    private func step(_ network: GlyphNet, input: [Float], parameters: FlatBuffer<Float>, outputGradient: [Float],
                      count n: Int) throws -> (embeddings: [Float], gradients: [Float]) {
        let state = FlatBuffer<Float>(count: network.stateLayout.count)  // training mode: only written
        let e = try network.forward(input: input, count: n, parameters: parameters.pointer, state: state.pointer, mode: .training)
        let embeddings = Array(UnsafeBufferPointer(start: e, count: n * network.embeddingSize))
        let gradients = FlatBuffer<Float>(count: parameters.count)
        try network.backward(outputGradient: outputGradient, parameters: parameters.pointer, gradients: gradients.pointer,
                             gradientsFinal: nil)
        return (embeddings, gradients.array)
    }

    func testWinogradGlyphNetMatchesIm2colAndAnyThreadCount() throws {
        let n = 16
        let winograd = GlyphNet(embeddingSize: 32, maxBatch: n, batchNorm: .local)
        let im2col = GlyphNet(embeddingSize: 32, maxBatch: n, batchNorm: .local, winograd: false)
        var random = RandomSource(seed: 41)
        let parameters = FlatBuffer<Float>(count: winograd.parameterLayout.count)
        let state = FlatBuffer<Float>(count: winograd.stateLayout.count)
        winograd.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        let input = randomFloats(n * 32 * 32, &random, low: 0, high: 1)
        let outputGradient = randomFloats(n * 32, &random)
        let threads = BLASThreads.current
        defer { BLASThreads.set(threads) }
        BLASThreads.set(1)
        let reference = try step(im2col, input: input, parameters: parameters, outputGradient: outputGradient, count: n)
        let one = try step(winograd, input: input, parameters: parameters, outputGradient: outputGradient, count: n)
        BLASThreads.set(2)
        let two = try step(winograd, input: input, parameters: parameters, outputGradient: outputGradient, count: n)
        XCTAssertEqual(one.embeddings, two.embeddings, "embeddings at 1 and 2 threads")
        XCTAssertEqual(one.gradients, two.gradients, "gradients at 1 and 2 threads")
        // Measured: embeddings 5.3e-7, every parameter gradient ≤ 2.2e-6 relative to its tensor's
        // largest entry (about 4× room here); an offset error in a group of images would be O(1).
        XCTAssertLessThanOrEqual(relativeMaxError(one.embeddings.doubles, reference.embeddings.doubles), 2e-6, "embeddings")
        for entry in winograd.parameterLayout.entries {
            let range = entry.offset..<entry.offset + entry.count
            assertGradient(Array(one.gradients[range]).doubles, Array(reference.gradients[range]).doubles,
                           tolerance: 1e-5, "\(entry.name) against im2col")
        }
    }
}
