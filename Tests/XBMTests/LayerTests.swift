import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

// Every fast kernel against its naive Double reference (forward) and against central finite
// differences of that reference (backward), for the loss L = Σ r·y with a random r.
// Tolerances, relative to the largest reference value:
//   forward 1e-5: Float sums of at most a few hundred terms (each rounding ≤ 6e-8 relative);
//   gradients 1e-4: the same Float rounding in the backward, plus BN's cancellation of means;
//   the numeric side is good to ~1e-9 (see GradientCheck.swift). A wrong term is O(1) off.
final class LayerTests: XCTestCase {
    let forwardTolerance = 1e-5
    let gradientTolerance = 1e-4

    private func sampledIndices(_ count: Int, _ random: inout RandomSource) -> [Int] {
        count <= 150 ? Array(0..<count) : (0..<150).map { _ in random.nextInt(below: count) }
    }

    private func weightedSum(_ r: [Float], _ y: [Double]) -> Double {
        zip(r, y).reduce(0) { $0 + Double($1.0) * $1.1 }
    }

    func testConvolutionMatchesDirectLoopsAndFiniteDifferences() {
        // (n, H, W, Ci, Co): one input channel (the first layer), vector widths with and without tails.
        for (n, h, w, ci, co) in [(2, 4, 5, 1, 3), (1, 3, 3, 20, 17), (2, 5, 4, 35, 8)] {
            var random = RandomSource(seed: UInt64(n * 1000 + ci))
            let x = randomFloats(n * h * w * ci, &random), weight = randomFloats(co * 9 * ci, &random)
            let r = randomFloats(n * h * w * co, &random)
            var output = [Float](repeating: .nan, count: n * h * w * co)
            var columns = [Float](repeating: .nan, count: n * h * w * 9 * ci)
            conv3x3Forward(output: &output, columns: &columns, input: x, weight: weight,
                           count: n, height: h, width: w, inputChannels: ci, outputChannels: co)
            let reference = ReferenceLayers.conv3x3(x.doubles, weight: weight.doubles, count: n, height: h, width: w,
                                                    inputChannels: ci, outputChannels: co)
            XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, reference), forwardTolerance, "conv forward \([n, h, w, ci, co])")

            // dInput is written (NaN beforehand proves every element is); dWeight is added onto 0.5.
            var inputGradient = [Float](repeating: .nan, count: x.count)
            var weightGradient = [Float](repeating: 0.5, count: weight.count)
            conv3x3Backward(inputGradient: &inputGradient, weightGradient: &weightGradient, columns: &columns,
                            outputGradient: r, input: nil, weight: weight,
                            count: n, height: h, width: w, inputChannels: ci, outputChannels: co)
            // All coordinates of small tensors, a random 150 of larger ones (debug-build time).
            let inputIndices = sampledIndices(x.count, &random), weightIndices = sampledIndices(weight.count, &random)
            let numericInput = centralDifferences(of: { xs in
                self.weightedSum(r, ReferenceLayers.conv3x3(xs, weight: weight.doubles, count: n, height: h, width: w,
                                                            inputChannels: ci, outputChannels: co))
            }, at: x.doubles, indices: inputIndices)
            let numericWeight = centralDifferences(of: { ws in
                self.weightedSum(r, ReferenceLayers.conv3x3(x.doubles, weight: ws, count: n, height: h, width: w,
                                                            inputChannels: ci, outputChannels: co))
            }, at: weight.doubles, indices: weightIndices)
            assertGradient(inputIndices.map { Double(inputGradient[$0]) }, numericInput, tolerance: gradientTolerance,
                           "conv dInput \([n, h, w, ci, co])")
            XCTAssertFalse(inputGradient.contains { $0.isNaN }, "conv dInput leaves elements unwritten")
            assertGradient(weightIndices.map { Double(weightGradient[$0]) - 0.5 }, numericWeight, tolerance: gradientTolerance,
                           "conv dWeight \([n, h, w, ci, co])")

            // Recomputing the columns from the input gives the same weight gradient.
            var recomputed = [Float](repeating: 0.5, count: weight.count)
            conv3x3Backward(inputGradient: nil, weightGradient: &recomputed, columns: &columns,
                            outputGradient: r, input: x, weight: weight,
                            count: n, height: h, width: w, inputChannels: ci, outputChannels: co)
            XCTAssertEqual(recomputed, weightGradient, "conv dWeight with recomputed columns")
        }
    }

    func testSingleChannelDirectConvolutionMatchesReference() {
        for (n, h, w, co) in [(2, 4, 5, 3), (1, 6, 3, 17), (2, 3, 4, 32)] {
            var random = RandomSource(seed: UInt64(co))
            let x = randomFloats(n * h * w, &random), weight = randomFloats(co * 9, &random)
            let r = randomFloats(n * h * w * co, &random)
            var output = [Float](repeating: .nan, count: n * h * w * co), transposed = [Float](repeating: .nan, count: 9 * co)
            var padded = [Float](repeating: .nan, count: n * (h + 2) * (w + 2))
            padSingleChannel(padded: &padded, input: x, count: n, height: h, width: w)
            conv3x3SingleChannelForward(output: &output, transposedWeight: &transposed, padded: padded, weight: weight,
                                        count: n, height: h, width: w, outputChannels: co)
            func forward(_ ws: [Double]) -> [Double] {
                ReferenceLayers.conv3x3(x.doubles, weight: ws, count: n, height: h, width: w, inputChannels: 1, outputChannels: co)
            }
            XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, forward(weight.doubles)), forwardTolerance, "direct conv forward")
            var weightGradient = [Float](repeating: 0.5, count: weight.count)
            conv3x3SingleChannelBackward(weightGradient: &weightGradient, outputGradient: r, padded: padded,
                                         count: n, height: h, width: w, outputChannels: co)
            let numeric = centralDifferences(of: { self.weightedSum(r, forward($0)) }, at: weight.doubles, indices: Array(weight.indices))
            assertGradient(weightGradient.map { Double($0) - 0.5 }, numeric, tolerance: gradientTolerance, "direct conv dWeight \(co)")
        }
    }

    func testChannelsFirstToLastPermutesEachImage() {
        // Two images of 3 channels × 1 row × 2 columns; value = 100·image + 10·channel + column.
        let input: [Float] = [0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121]
        var output = [Float](repeating: .nan, count: input.count)
        channelsFirstToLast(output: &output, input: input, count: 2, channels: 3, height: 1, width: 2)
        XCTAssertEqual(output, [0, 10, 20, 1, 11, 21, 100, 110, 120, 101, 111, 121])
        XCTAssertEqual(ReferenceLayers.channelsLast(input.doubles, count: 2, channels: 3, height: 1, width: 2), output.doubles)
    }

    func testBatchNormTrainingForwardRunningStatisticsAndGradients() throws {
        for (rows, channels) in [(6, 3), (10, 20)] {
            var random = RandomSource(seed: UInt64(rows * 100 + channels))
            let x = randomFloats(rows * channels, &random, low: -2, high: 3)
            let scale = randomFloats(channels, &random, low: 0.5, high: 1.5), shift = randomFloats(channels, &random)
            let r = randomFloats(rows * channels, &random)
            let runningMean0 = randomFloats(channels, &random), runningVariance0 = randomFloats(channels, &random, low: 0.5, high: 2)
            var runningMean = runningMean0, runningVariance = runningVariance0
            let saved = BatchNormSaved(channels: channels, name: "bn-test")
            var output = [Float](repeating: .nan, count: x.count)
            let total = try batchNormForwardTraining(
                output: &output, mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer,
                runningMean: &runningMean, runningVariance: &runningVariance, sums: saved.sums.pointer,
                coefficients: saved.coefficients.pointer, input: x, scale: scale, shift: shift,
                rows: rows, channels: channels, sync: .local, name: "bn-test")
            XCTAssertEqual(total, rows)
            let reference = ReferenceLayers.batchNorm(x.doubles, scale: scale.doubles, shift: shift.doubles,
                                                      rows: rows, channels: channels)
            XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, reference.output), forwardTolerance, "bn forward")
            // Running statistics: momentum 0.1, unbiased variance σ²·m/(m−1).
            let expectedMean = (0..<channels).map { 0.9 * Double(runningMean0[$0]) + 0.1 * reference.mean[$0] }
            let expectedVariance = (0..<channels).map {
                0.9 * Double(runningVariance0[$0]) + 0.1 * reference.variance[$0] * Double(rows) / Double(rows - 1)
            }
            XCTAssertLessThanOrEqual(relativeMaxError(runningMean.doubles, expectedMean), forwardTolerance, "running mean")
            XCTAssertLessThanOrEqual(relativeMaxError(runningVariance.doubles, expectedVariance), forwardTolerance, "running variance")

            var inputGradient = [Float](repeating: .nan, count: x.count)
            var scaleGradient = [Float](repeating: 0.25, count: channels), shiftGradient = scaleGradient
            try batchNormBackward(
                inputGradient: &inputGradient, scaleGradient: &scaleGradient, shiftGradient: &shiftGradient,
                sums: saved.sums.pointer, coefficients: saved.coefficients.pointer, outputGradient: r, input: x,
                scale: scale, mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer,
                globalCount: total, rows: rows, channels: channels, sync: .local)
            func loss(_ xs: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
                weightedSum(r, ReferenceLayers.batchNorm(xs, scale: gamma, shift: beta, rows: rows, channels: channels).output)
            }
            let numericInput = centralDifferences(of: { loss($0, scale.doubles, shift.doubles) }, at: x.doubles, indices: Array(x.indices))
            let numericScale = centralDifferences(of: { loss(x.doubles, $0, shift.doubles) }, at: scale.doubles, indices: Array(scale.indices))
            let numericShift = centralDifferences(of: { loss(x.doubles, scale.doubles, $0) }, at: shift.doubles, indices: Array(shift.indices))
            assertGradient(inputGradient.doubles, numericInput, tolerance: gradientTolerance, "bn dInput \(rows)×\(channels)")
            assertGradient(scaleGradient.map { Double($0) - 0.25 }, numericScale, tolerance: gradientTolerance, "bn dScale")
            assertGradient(shiftGradient.map { Double($0) - 0.25 }, numericShift, tolerance: gradientTolerance, "bn dShift")
        }
    }

    func testBatchNormWithFusedReLUMatchesReLUOfBatchNorm() throws {
        let rows = 12, channels = 19
        var random = RandomSource(seed: 17)
        let x = randomFloats(rows * channels, &random), r = randomFloats(rows * channels, &random)
        let scale = randomFloats(channels, &random, low: 0.5, high: 1.5), shift = randomFloats(channels, &random, low: -0.5, high: 0.5)
        var runningMean = [Float](repeating: 0, count: channels), runningVariance = [Float](repeating: 1, count: channels)
        let saved = BatchNormSaved(channels: channels, name: "bn-test")
        var output = [Float](repeating: .nan, count: x.count)
        let total = try batchNormForwardTraining(
            output: &output, mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer,
            runningMean: &runningMean, runningVariance: &runningVariance, sums: saved.sums.pointer,
            coefficients: saved.coefficients.pointer, input: x, scale: scale, shift: shift,
            rows: rows, channels: channels, relu: true, sync: .local, name: "bn-test")
        func forward(_ xs: [Double]) -> [Double] {
            ReferenceLayers.relu(ReferenceLayers.batchNorm(xs, scale: scale.doubles, shift: shift.doubles,
                                                           rows: rows, channels: channels).output)
        }
        XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, forward(x.doubles)), forwardTolerance)
        XCTAssertTrue(output.contains(0) && output.contains { $0 > 0 }, "both sides of the ReLU are exercised")
        var inputGradient = [Float](repeating: .nan, count: x.count)
        var scaleGradient = [Float](repeating: 0, count: channels), shiftGradient = scaleGradient
        try batchNormBackward(
            inputGradient: &inputGradient, scaleGradient: &scaleGradient, shiftGradient: &shiftGradient,
            sums: saved.sums.pointer, coefficients: saved.coefficients.pointer, outputGradient: r, input: x,
            scale: scale, mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer, reluOutput: output,
            globalCount: total, rows: rows, channels: channels, sync: .local)
        let numeric = centralDifferences(of: { self.weightedSum(r, forward($0)) }, at: x.doubles, indices: Array(x.indices))
        assertGradient(inputGradient.doubles, numeric, tolerance: gradientTolerance, "fused bn+relu dInput")
    }

    func testBatchNormInferenceUsesRunningStatistics() {
        let rows = 4, channels = 3
        var random = RandomSource(seed: 3)
        let x = randomFloats(rows * channels, &random), scale = randomFloats(channels, &random)
        let shift = randomFloats(channels, &random), mean = randomFloats(channels, &random)
        let variance = randomFloats(channels, &random, low: 0.1, high: 2)
        let saved = BatchNormSaved(channels: channels, name: "bn-test")
        var output = [Float](repeating: .nan, count: x.count)
        batchNormForwardInference(output: &output, coefficients: saved.coefficients.pointer,
                                  input: x, scale: scale, shift: shift, runningMean: mean, runningVariance: variance,
                                  rows: rows, channels: channels)
        let expected = (0..<x.count).map { i -> Double in
            let c = i % channels
            return Double(scale[c]) * (Double(x[i]) - Double(mean[c])) / (Double(variance[c]) + 1e-5).squareRoot() + Double(shift[c])
        }
        XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, expected), forwardTolerance)
    }

    func testBatchNormRefusesASingleValuePerChannel() {
        let saved = BatchNormSaved(channels: 2, name: "bn1")
        var output = [Float](repeating: 0, count: 2), running = [Float](repeating: 0, count: 2), variance = running
        XCTAssertThrowsError(try batchNormForwardTraining(
            output: &output, mean: saved.mean.pointer, inverseStd: saved.inverseStd.pointer,
            runningMean: &running, runningVariance: &variance, sums: saved.sums.pointer,
            coefficients: saved.coefficients.pointer, input: [1, 2], scale: [1, 1], shift: [0, 0],
            rows: 1, channels: 2, sync: .local, name: "bn1")) { error in
            XCTAssertEqual(error as? LayerError, .batchNormNeedsTwoValues(layer: "bn1", count: 1))
        }
    }

    func testReLUInPlaceAndGradient() {
        var random = RandomSource(seed: 11)
        let x = randomFloatsAwayFromZero(37, &random), r = randomFloats(37, &random)
        var y = x
        reluForward(output: &y, input: y, count: y.count)
        XCTAssertEqual(y, x.map { max(0, $0) })
        var gradient = r
        reluBackward(inputGradient: &gradient, outputGradient: gradient, output: y, count: y.count)
        let numeric = centralDifferences(of: { self.weightedSum(r, ReferenceLayers.relu($0)) }, at: x.doubles, indices: Array(x.indices))
        assertGradient(gradient.doubles, numeric, tolerance: gradientTolerance, "relu")
    }

    func testMaxPoolMatchesReferenceAndFiniteDifferences() {
        for (n, h, w, c) in [(2, 4, 6, 3), (1, 2, 4, 20)] {
            var random = RandomSource(seed: UInt64(c))
            let x = randomFloats(n * h * w * c, &random, low: -1.5, high: 1), r = randomFloats(n * h * w * c / 4, &random)
            var output = [Float](repeating: .nan, count: r.count)
            maxPool2x2Forward(output: &output, input: x, count: n, height: h, width: w, channels: c)
            let reference = ReferenceLayers.maxPool2x2(x.doubles, count: n, height: h, width: w, channels: c)
            XCTAssertEqual(output.doubles, reference, "max pool forward picks exact values")
            var gradient = [Float](repeating: .nan, count: x.count)
            maxPool2x2Backward(inputGradient: &gradient, outputGradient: r, input: x, output: output,
                               count: n, height: h, width: w, channels: c)
            let numeric = centralDifferences(of: {
                self.weightedSum(r, ReferenceLayers.maxPool2x2($0, count: n, height: h, width: w, channels: c))
            }, at: x.doubles, indices: Array(x.indices))
            assertGradient(gradient.doubles, numeric, tolerance: gradientTolerance, "max pool \([n, h, w, c])")

            // Through a ReLU: pooling max(0, x) and routing back to x.
            let clipped = x.map { max(0, $0) }
            var pooled = [Float](repeating: .nan, count: r.count)
            maxPool2x2Forward(output: &pooled, input: clipped, count: n, height: h, width: w, channels: c)
            var throughReLU = [Float](repeating: .nan, count: x.count)
            maxPool2x2Backward(inputGradient: &throughReLU, outputGradient: r, input: clipped, output: pooled,
                               count: n, height: h, width: w, channels: c, throughReLU: true)
            XCTAssertTrue(pooled.contains(0), "some windows are all clipped")
            let numericReLU = centralDifferences(of: {
                self.weightedSum(r, ReferenceLayers.maxPool2x2(ReferenceLayers.relu($0), count: n, height: h, width: w, channels: c))
            }, at: x.doubles, indices: Array(x.indices))
            assertGradient(throughReLU.doubles, numericReLU, tolerance: gradientTolerance, "max pool through relu \([n, h, w, c])")
        }
    }

    func testGlobalAveragePoolGradient() {
        let n = 2, positions = 6, c = 19
        var random = RandomSource(seed: 5)
        let x = randomFloats(n * positions * c, &random), r = randomFloats(n * c, &random)
        var output = [Float](repeating: .nan, count: n * c)
        globalAveragePoolForward(output: &output, input: x, count: n, positions: positions, channels: c)
        let reference = ReferenceLayers.globalAveragePool(x.doubles, count: n, positions: positions, channels: c)
        XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, reference), forwardTolerance)
        var gradient = [Float](repeating: .nan, count: x.count)
        globalAveragePoolBackward(inputGradient: &gradient, outputGradient: r, count: n, positions: positions, channels: c)
        let numeric = centralDifferences(of: {
            self.weightedSum(r, ReferenceLayers.globalAveragePool($0, count: n, positions: positions, channels: c))
        }, at: x.doubles, indices: Array(x.indices))
        assertGradient(gradient.doubles, numeric, tolerance: gradientTolerance, "average pool")
    }

    func testLinearGradients() {
        let n = 3, inputs = 7, outputs = 5
        var random = RandomSource(seed: 9)
        let x = randomFloats(n * inputs, &random), weight = randomFloats(outputs * inputs, &random)
        let bias = randomFloats(outputs, &random), r = randomFloats(n * outputs, &random)
        var output = [Float](repeating: .nan, count: n * outputs)
        linearForward(output: &output, input: x, weight: weight, bias: bias, count: n, inputSize: inputs, outputSize: outputs)
        func forward(_ xs: [Double], _ ws: [Double], _ bs: [Double]) -> [Double] {
            ReferenceLayers.linear(xs, weight: ws, bias: bs, count: n, inputSize: inputs, outputSize: outputs)
        }
        XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, forward(x.doubles, weight.doubles, bias.doubles)), forwardTolerance)
        var inputGradient = [Float](repeating: .nan, count: x.count)
        var weightGradient = [Float](repeating: -1, count: weight.count), biasGradient = [Float](repeating: -1, count: outputs)
        linearBackward(inputGradient: &inputGradient, weightGradient: &weightGradient, biasGradient: &biasGradient,
                       outputGradient: r, input: x, weight: weight, count: n, inputSize: inputs, outputSize: outputs)
        let numericInput = centralDifferences(of: { self.weightedSum(r, forward($0, weight.doubles, bias.doubles)) },
                                              at: x.doubles, indices: Array(x.indices))
        let numericWeight = centralDifferences(of: { self.weightedSum(r, forward(x.doubles, $0, bias.doubles)) },
                                               at: weight.doubles, indices: Array(weight.indices))
        let numericBias = centralDifferences(of: { self.weightedSum(r, forward(x.doubles, weight.doubles, $0)) },
                                             at: bias.doubles, indices: Array(bias.indices))
        assertGradient(inputGradient.doubles, numericInput, tolerance: gradientTolerance, "linear dInput")
        assertGradient(weightGradient.map { Double($0) + 1 }, numericWeight, tolerance: gradientTolerance, "linear dWeight")
        assertGradient(biasGradient.map { Double($0) + 1 }, numericBias, tolerance: gradientTolerance, "linear dBias")
    }

    func testL2NormalizeGradient() {
        let n = 3, d = 21
        var random = RandomSource(seed: 13)
        let x = randomFloats(n * d, &random), r = randomFloats(n * d, &random)
        var output = [Float](repeating: .nan, count: x.count), norms = [Float](repeating: .nan, count: n)
        l2NormalizeForward(output: &output, norms: &norms, input: x, count: n, dimension: d)
        XCTAssertLessThanOrEqual(relativeMaxError(output.doubles, ReferenceLayers.l2Normalize(x.doubles, count: n, dimension: d)),
                                 forwardTolerance)
        var gradient = [Float](repeating: .nan, count: x.count)
        l2NormalizeBackward(inputGradient: &gradient, outputGradient: r, output: output, norms: norms, count: n, dimension: d)
        let numeric = centralDifferences(of: { self.weightedSum(r, ReferenceLayers.l2Normalize($0, count: n, dimension: d)) },
                                         at: x.doubles, indices: Array(x.indices))
        assertGradient(gradient.doubles, numeric, tolerance: gradientTolerance, "l2 normalize")
    }
}
