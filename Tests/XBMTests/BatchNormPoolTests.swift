import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

// The fused batch norm – ReLU – 2×2 max pool against the separate kernels it replaces (the
// forward must match them bit for bit: the same expression per element, then the same
// maxima) and against finite differences of the Double reference BN → ReLU → pool.
// Gradient tolerance 1e-4 as in LayerTests (Float rounding plus BN's cancellation of means);
// against the separate kernels the backward differs only in how Σdy and Σdy·x are grouped,
// 5e-7 relative (measured ≤ 1.2e-7).
final class BatchNormPoolTests: XCTestCase {
    private struct Case {
        let n: Int, h: Int, w: Int, channels: Int
        var rows: Int { n * h * w }
    }

    private func weightedSum(_ r: [Float], _ y: [Double]) -> Double {
        zip(r, y).reduce(0) { $0 + Double($1.0) * $1.1 }
    }

    /// The separate kernels: BN+ReLU into `activated`, then the pool; returns (activated, pooled).
    private func separateForward(_ t: Case, x: [Float], scale: [Float], shift: [Float], saved: BatchNormSaved,
                                 running: inout ([Float], [Float]), mode: ForwardMode) throws -> ([Float], [Float]) {
        var activated = [Float](repeating: .nan, count: x.count)
        var pooled = [Float](repeating: .nan, count: x.count / 4)
        try saved.forward(mode: mode, output: &activated, input: x, scale: scale, shift: shift,
                          runningMean: &running.0, runningVariance: &running.1, rows: t.rows, relu: true, sync: .local)
        maxPool2x2Forward(output: &pooled, input: activated, count: t.n, height: t.h, width: t.w, channels: t.channels)
        return (activated, pooled)
    }

    func testForwardIsTheSeparateKernelsBitForBitInBothModes() throws {
        for t in [Case(n: 2, h: 4, w: 6, channels: 19), Case(n: 3, h: 2, w: 2, channels: 32)] {
            var random = RandomSource(seed: UInt64(t.channels))
            let x = randomFloats(t.rows * t.channels, &random, low: -2, high: 3)
            let scale = randomFloats(t.channels, &random, low: 0.5, high: 1.5), shift = randomFloats(t.channels, &random)
            for mode in [ForwardMode.training, .inference] {
                let start = (randomFloats(t.channels, &random), randomFloats(t.channels, &random, low: 0.5, high: 2))
                var separateRunning = start, fusedRunning = start
                let separate = try separateForward(t, x: x, scale: scale, shift: shift,
                                                   saved: BatchNormSaved(channels: t.channels, name: "bn"),
                                                   running: &separateRunning, mode: mode)
                let saved = BatchNormSaved(channels: t.channels, name: "bn")
                var pooled = [Float](repeating: .nan, count: x.count / 4)
                try saved.forwardPooled(mode: mode, pooled: &pooled, input: x, scale: scale, shift: shift,
                                        runningMean: &fusedRunning.0, runningVariance: &fusedRunning.1,
                                        count: t.n, height: t.h, width: t.w, sync: .local)
                XCTAssertEqual(pooled, separate.1, "pooled output, \(mode)")
                XCTAssertEqual(fusedRunning.0, separateRunning.0, "running mean, \(mode)")
                XCTAssertEqual(fusedRunning.1, separateRunning.1, "running variance, \(mode)")
                XCTAssertTrue(separate.0.contains(0) && pooled.contains { $0 > 0 }, "both sides of the ReLU are exercised")
            }
        }
    }

    func testBackwardMatchesFiniteDifferencesAndTheSeparateKernels() throws {
        for t in [Case(n: 2, h: 4, w: 4, channels: 5), Case(n: 1, h: 2, w: 6, channels: 17)] {
            var random = RandomSource(seed: UInt64(100 + t.channels))
            let x = randomFloats(t.rows * t.channels, &random, low: -2, high: 3)
            let scale = randomFloats(t.channels, &random, low: 0.5, high: 1.5)
            let shift = randomFloats(t.channels, &random, low: -0.5, high: 0.5)
            let r = randomFloats(t.rows * t.channels / 4, &random)
            var running = ([Float](repeating: 0, count: t.channels), [Float](repeating: 1, count: t.channels))

            let saved = BatchNormSaved(channels: t.channels, name: "bn")
            var pooled = [Float](repeating: .nan, count: x.count / 4)
            try saved.forwardPooled(mode: .training, pooled: &pooled, input: x, scale: scale, shift: shift,
                                    runningMean: &running.0, runningVariance: &running.1,
                                    count: t.n, height: t.h, width: t.w, sync: .local)
            var inputGradient = [Float](repeating: .nan, count: x.count)
            var scaleGradient = [Float](repeating: 0.25, count: t.channels), shiftGradient = scaleGradient
            try batchNormReLUPoolBackward(inputGradient: &inputGradient, scaleGradient: &scaleGradient,
                                          shiftGradient: &shiftGradient, pooledGradient: r, input: x, scale: scale,
                                          saved: saved, count: t.n, height: t.h, width: t.w, sync: .local)

            func loss(_ xs: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
                let normalised = ReferenceLayers.batchNorm(xs, scale: gamma, shift: beta, rows: t.rows, channels: t.channels)
                return weightedSum(r, ReferenceLayers.maxPool2x2(ReferenceLayers.relu(normalised.output), count: t.n,
                                                                 height: t.h, width: t.w, channels: t.channels))
            }
            let numericInput = centralDifferences(of: { loss($0, scale.doubles, shift.doubles) }, at: x.doubles,
                                                  indices: Array(x.indices))
            let numericScale = centralDifferences(of: { loss(x.doubles, $0, shift.doubles) }, at: scale.doubles,
                                                  indices: Array(scale.indices))
            let numericShift = centralDifferences(of: { loss(x.doubles, scale.doubles, $0) }, at: shift.doubles,
                                                  indices: Array(shift.indices))
            assertGradient(inputGradient.doubles, numericInput, tolerance: 1e-4, "dInput \(t)")
            assertGradient(scaleGradient.map { Double($0) - 0.25 }, numericScale, tolerance: 1e-4, "dScale \(t)")
            assertGradient(shiftGradient.map { Double($0) - 0.25 }, numericShift, tolerance: 1e-4, "dShift \(t)")

            // The separate kernels: pool backward through the ReLU, then batch norm's backward.
            let separateSaved = BatchNormSaved(channels: t.channels, name: "bn")
            var separateRunning = ([Float](repeating: 0, count: t.channels), [Float](repeating: 1, count: t.channels))
            let (activated, separatePooled) = try separateForward(t, x: x, scale: scale, shift: shift, saved: separateSaved,
                                                                  running: &separateRunning, mode: .training)
            var activatedGradient = [Float](repeating: .nan, count: x.count)
            maxPool2x2Backward(inputGradient: &activatedGradient, outputGradient: r, input: activated, output: separatePooled,
                               count: t.n, height: t.h, width: t.w, channels: t.channels, throughReLU: true)
            var separateInput = [Float](repeating: .nan, count: x.count)
            var separateScale = [Float](repeating: 0.25, count: t.channels), separateShift = separateScale
            try batchNormBackward(inputGradient: &separateInput, scaleGradient: &separateScale, shiftGradient: &separateShift,
                                  sums: separateSaved.sums.pointer, coefficients: separateSaved.backwardCoefficients,
                                  outputGradient: activatedGradient, input: x, scale: scale, mean: separateSaved.mean.pointer,
                                  inverseStd: separateSaved.inverseStd.pointer, globalCount: separateSaved.globalCount,
                                  rows: t.rows, channels: t.channels, sync: .local)
            assertGradient(inputGradient.doubles, separateInput.doubles, tolerance: 5e-7, "dInput against separate kernels \(t)")
            assertGradient(scaleGradient.doubles, separateScale.doubles, tolerance: 5e-7, "dScale against separate kernels \(t)")
            assertGradient(shiftGradient.doubles, separateShift.doubles, tolerance: 5e-7, "dShift against separate kernels \(t)")
        }
    }

    func testTiesGoToTheFirstPositionAndClippedWindowsPassNothing() throws {
        // One image, 2×4, one channel: window A holds four equal values above the ReLU, window B
        // four values that BN maps below 0. With the batch's own statistics the two windows sit
        // at ±1 after normalisation, so A's activation is γ + β > 0 and B's is clipped.
        let x: [Float] = [3, 3, -3, -3,
                          3, 3, -3, -3]
        var running = ([Float](repeating: 0, count: 1), [Float](repeating: 1, count: 1))
        let saved = BatchNormSaved(channels: 1, name: "bn")
        var pooled = [Float](repeating: .nan, count: 2)
        try saved.forwardPooled(mode: .training, pooled: &pooled, input: x, scale: [1], shift: [0.5],
                                runningMean: &running.0, runningVariance: &running.1, count: 1, height: 2, width: 4, sync: .local)
        XCTAssertEqual(pooled[1], 0, "window B is clipped")
        XCTAssertGreaterThan(pooled[0], 0)
        var inputGradient = [Float](repeating: .nan, count: x.count)
        var scaleGradient: [Float] = [0], shiftGradient: [Float] = [0]
        try batchNormReLUPoolBackward(inputGradient: &inputGradient, scaleGradient: &scaleGradient, shiftGradient: &shiftGradient,
                                      pooledGradient: [2, 7], input: x, scale: [1], saved: saved,
                                      count: 1, height: 2, width: 4, sync: .local)
        // Only A's first position receives dy = 2: Σdy = 2, dβ = 2; x̂ there is +1, so dγ = 2.
        XCTAssertEqual(shiftGradient[0], 2, accuracy: 1e-6)
        XCTAssertEqual(scaleGradient[0], 2, accuracy: 1e-5)
        // dx = k·dy + u·x + v with k = γr, r = 1/√(9 + eps), A = Σdy/M = 0.25, B = Σdy·x̂/M = 0.25:
        // u = −k·r·B, v = −k·A + k·r·B·μ (μ = 0): every position gets u·x + v, the winner k·2 more.
        let r = 1 / (9 + 1e-5).squareRoot(), k = r
        let u = -k * r * 0.25, v = -k * 0.25
        let expected = x.enumerated().map { index, value in (index == 0 ? k * 2 : 0) + u * Double(value) + v }
        for (got, want) in zip(inputGradient, expected) { XCTAssertEqual(Double(got), want, accuracy: 1e-6) }
    }
}
