import Collectives
import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

// Whole-network checks: the fast Float network against its Double reference forward, and
// the backward against central differences of that reference (loss L = Σ r·E, r random).
// Tolerances are LayerTests' ×10 (forward 1e-4, gradients 1e-3): four conv+BN layers
// compound the Float rounding of each; still ~1000× below what a missing or wrong term gives.
final class ModelTests: XCTestCase {
    private struct Buffers {
        let parameters: FlatBuffer<Float>, gradients: FlatBuffer<Float>, state: FlatBuffer<Float>
        init(_ network: EmbeddingNetwork, seed: UInt64) {
            parameters = FlatBuffer(count: network.parameterLayout.count)
            gradients = FlatBuffer(count: network.parameterLayout.count)
            state = FlatBuffer(count: network.stateLayout.count)
            var random = RandomSource(seed: seed)
            network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
            // Non-trivial BN scales and shifts and biases, so their gradients are exercised.
            for entry in network.parameterLayout.entries where !entry.decays {
                for i in 0..<entry.count { parameters[entry.offset + i] = 0.5 + random.nextUniform() }
            }
        }
    }

    private func checkNetworkGradient(_ network: EmbeddingNetwork, count n: Int, seed: UInt64,
                                      reference: @escaping ([Double], [Double]) -> [Double],
                                      coordinatesPerTensor: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let buffers = Buffers(network, seed: seed)
        var random = RandomSource(seed: seed + 1)
        let input = randomFloats(n * network.inputShape.reduce(1, *), &random, low: 0, high: 1)
        let r = randomFloats(n * network.embeddingSize, &random)
        let embeddings = try network.forward(input: input, count: n, parameters: buffers.parameters.pointer,
                                             state: buffers.state.pointer, mode: .training)
        let fast = Array(UnsafeBufferPointer(start: embeddings, count: n * network.embeddingSize)).doubles
        let parameters = buffers.parameters.array.doubles
        XCTAssertLessThanOrEqual(relativeMaxError(fast, reference(input.doubles, parameters)), 1e-4,
                                 "forward vs reference", file: file, line: line)
        try network.backward(outputGradient: r, parameters: buffers.parameters.pointer, gradients: buffers.gradients.pointer)
        let analytic = buffers.gradients.array.doubles
        // Floor for the relative error: the largest gradient entry of the network (a tensor
        // whose true gradient is near 0, such as a batch-norm shift feeding a ReLU that is off
        // for the batch, carries only rounding, which a per-entry relative error would inflate).
        let globalScale = analytic.map(abs).max()!
        let loss: ([Double]) -> Double = { p in zip(r, reference(input.doubles, p)).reduce(0) { $0 + Double($1.0) * $1.1 } }
        for entry in network.parameterLayout.entries {
            let indices = (0..<min(coordinatesPerTensor, entry.count)).map { _ in entry.offset + random.nextInt(below: entry.count) }
            let numeric = centralDifferences(of: loss, at: parameters, indices: indices)
            assertGradient(indices.map { analytic[$0] }, numeric, tolerance: 1e-3, "d\(entry.name)",
                           scale: 1e-2 * globalScale, file: file, line: line)
        }
        // Along a random direction over all parameters at once.
        let direction = randomFloats(parameters.count, &random).doubles
        let numeric = directionalDifference(of: loss, at: parameters, direction: direction)
        let projected = zip(analytic, direction).reduce(0) { $0 + $1.0 * $1.1 }
        XCTAssertEqual(projected, numeric, accuracy: 1e-3 * abs(numeric), "directional derivative", file: file, line: line)
    }

    func testGlyphNetGradientMatchesFiniteDifferences() throws {
        // 16×16 so the last block is 2×2: at 1×1 a per-channel shift before it would be
        // cancelled by its batch norm and the check of that shift would prove nothing.
        let network = GlyphNet(embeddingSize: 5, maxBatch: 4, batchNorm: .local, height: 16, width: 16, channels: [3, 4, 5, 6])
        try checkNetworkGradient(network, count: 4, seed: 21, reference: { network.referenceForward(input: $0, count: 4, parameters: $1) },
                                 coordinatesPerTensor: 12)
    }

    func testWinogradGlyphNetGradientMatchesFiniteDifferences() throws {
        // Eight channels into blocks 3 and 4 (4×4 and 2×2): both take Winograd F(2×2, 3×3),
        // block 2 (three channels in) keeps im2col, so the check crosses both paths.
        let network = GlyphNet(embeddingSize: 5, maxBatch: 4, batchNorm: .local, height: 16, width: 16, channels: [3, 8, 8, 9])
        try checkNetworkGradient(network, count: 4, seed: 23, reference: { network.referenceForward(input: $0, count: 4, parameters: $1) },
                                 coordinatesPerTensor: 12)
    }

    func testColourGlyphNetGradientMatchesFiniteDifferences() throws {
        // Three input channels: the input is made channel-last and the first block takes the
        // im2col path (K = 27) instead of the one-channel direct convolution.
        let network = GlyphNet(embeddingSize: 5, maxBatch: 4, batchNorm: .local, inputChannels: 3,
                               height: 16, width: 8, channels: [3, 4, 5, 6])
        XCTAssertEqual(network.inputShape, [3, 16, 8])
        XCTAssertEqual(network.parameterLayout["conv1.weight"]?.shape, [3, 3, 3, 3])
        try checkNetworkGradient(network, count: 4, seed: 22, reference: { network.referenceForward(input: $0, count: 4, parameters: $1) },
                                 coordinatesPerTensor: 12)
    }

    func testGlyphNetFullWidthForwardMatchesReference() throws {
        let network = GlyphNet(embeddingSize: 16, maxBatch: 2, batchNorm: .local, height: 8, width: 8)
        let buffers = Buffers(network, seed: 4)
        var random = RandomSource(seed: 5)
        let input = randomFloats(2 * 64, &random, low: 0, high: 1)
        let embeddings = try network.forward(input: input, count: 2, parameters: buffers.parameters.pointer,
                                             state: buffers.state.pointer, mode: .training)
        let fast = Array(UnsafeBufferPointer(start: embeddings, count: 32)).doubles
        let reference = network.referenceForward(input: input.doubles, count: 2, parameters: buffers.parameters.array.doubles)
        XCTAssertLessThanOrEqual(relativeMaxError(fast, reference), 1e-4)
        for row in 0..<2 {
            XCTAssertEqual(fast[row * 16..<(row + 1) * 16].reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5, "unit rows")
        }
    }

    func testMLPGradientMatchesFiniteDifferences() throws {
        let network = MLP(inputSize: 6, hiddenSize: 9, embeddingSize: 4, maxBatch: 5, batchNorm: .local)
        try checkNetworkGradient(network, count: 5, seed: 31, reference: { network.referenceForward(input: $0, count: 5, parameters: $1) },
                                 coordinatesPerTensor: 60)
    }

    func testLayoutsNamesAndDecay() {
        let network = GlyphNet(embeddingSize: 128, maxBatch: 1, batchNorm: .local)
        XCTAssertEqual(network.parameterLayout.entries.map(\.name), [
            "conv1.weight", "bn1.scale", "bn1.shift", "conv2.weight", "bn2.scale", "bn2.shift",
            "conv3.weight", "bn3.scale", "bn3.shift", "conv4.weight", "bn4.scale", "bn4.shift", "fc.weight", "fc.bias"])
        XCTAssertEqual(network.parameterLayout["conv2.weight"]?.shape, [64, 3, 3, 32])
        XCTAssertEqual(network.parameterLayout["fc.weight"]?.shape, [128, 256])
        XCTAssertEqual(network.parameterLayout.entries.filter(\.decays).map(\.name),
                       ["conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight", "fc.weight"])
        // 32·9 + 64·288 + 128·576 + 256·1152 conv weights, 2·480 BN, 128·256 + 128 linear.
        XCTAssertEqual(network.parameterLayout.count, 288 + 18_432 + 73_728 + 294_912 + 960 + 32_768 + 128)
        XCTAssertEqual(network.stateLayout.count, 2 * 480)
    }

    /// PyTorch's default: weights and the linear bias uniform in ±1/√fanIn (variance
    /// 1/(3·fanIn)), batch norm scale 1, shift 0, running statistics 0 and 1.
    func testInitialisationMatchesPyTorchDefaults() {
        let network = GlyphNet(embeddingSize: 128, maxBatch: 1, batchNorm: .local)
        let layout = network.parameterLayout
        let parameters = FlatBuffer<Float>(count: layout.count), state = FlatBuffer<Float>(count: network.stateLayout.count)
        var random = RandomSource(seed: 8)
        network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        func values(_ name: String) -> [Double] {
            let entry = layout[name]!
            return (0..<entry.count).map { Double(parameters[entry.offset + $0]) }
        }
        for (name, fanIn) in [("conv1.weight", 9), ("conv4.weight", 1152), ("fc.weight", 256), ("fc.bias", 256)] {
            let v = values(name), bound = 1 / Double(fanIn).squareRoot()
            XCTAssertTrue(v.allSatisfy { abs($0) <= bound }, "\(name) outside ±1/√\(fanIn)")
            guard v.count > 10_000 else { continue }
            let mean = v.reduce(0, +) / Double(v.count)
            let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
            // A uniform's variance is bound²/3; ≥ 32,768 samples give < 1% relative spread.
            XCTAssertEqual(variance, bound * bound / 3, accuracy: 0.03 * bound * bound / 3, name)
            XCTAssertEqual(mean, 0, accuracy: 0.02 * bound, name)
        }
        // The bias is drawn, not zero: a fixed draw of 128 values has a spread near bound/√3.
        XCTAssertGreaterThan(values("fc.bias").map(abs).max()!, 0.5 / 16)
        XCTAssertTrue(values("bn3.scale").allSatisfy { $0 == 1 } && values("bn3.shift").allSatisfy { $0 == 0 })
        let stateLayout = network.stateLayout
        XCTAssertTrue((0..<stateLayout["bn2.runningVariance"]!.count).allSatisfy { state[stateLayout["bn2.runningVariance"]!.offset + $0] == 1 })
        XCTAssertTrue((0..<stateLayout["bn2.runningMean"]!.count).allSatisfy { state[stateLayout["bn2.runningMean"]!.offset + $0] == 0 })
    }

    func testFactoryBuildsAndRejects() throws {
        let glyph = try makeNetwork(kind: .glyphnet, inputShape: [1, 32, 32], embeddingSize: 64, maxBatch: 2, batchNorm: .local)
        XCTAssertTrue(glyph is GlyphNet)
        XCTAssertEqual(glyph.embeddingSize, 64)
        let mlp = try makeNetwork(kind: .mlp, inputShape: [40], embeddingSize: 8, hiddenSize: 16, maxBatch: 2, batchNorm: .local)
        XCTAssertEqual(mlp.parameterLayout["fc1.weight"]?.shape, [16, 40])
        XCTAssertThrowsError(try makeNetwork(kind: .glyphnet, inputShape: [40], embeddingSize: 8, maxBatch: 2, batchNorm: .local)) {
            XCTAssertTrue("\($0)".contains("glyphnet") && "\($0)".contains("[40]"), "\($0)")
        }
        XCTAssertThrowsError(try makeNetwork(kind: .glyphnet, inputShape: [1, 30, 32], embeddingSize: 8, maxBatch: 2, batchNorm: .local))
        let colour = try makeNetwork(kind: .glyphnet, inputShape: [3, 64, 64], embeddingSize: 8, maxBatch: 2, batchNorm: .local)
        XCTAssertEqual(colour.inputShape, [3, 64, 64])
        XCTAssertEqual(colour.parameterLayout["conv1.weight"]?.shape, [32, 3, 3, 3])
        XCTAssertThrowsError(try makeNetwork(kind: .glyphnet, inputShape: [3, 60, 60], embeddingSize: 8, maxBatch: 2, batchNorm: .local)) {
            XCTAssertTrue("\($0)".contains("[3, 60, 60]") && "\($0)".contains("multiples of 8") && "\($0)".contains("56×56"), "\($0)")
        }
        XCTAssertThrowsError(try makeNetwork(kind: .mlp, inputShape: [1, 32, 32], embeddingSize: 8, maxBatch: 2, batchNorm: .local))
        XCTAssertEqual(ModelKind(rawValue: "mlp"), .mlp)
    }

    func testInferenceUsesRunningStatisticsAndKeepsThemFixed() throws {
        let network = MLP(inputSize: 3, hiddenSize: 4, embeddingSize: 2, maxBatch: 3, batchNorm: .local)
        let buffers = Buffers(network, seed: 2)
        let input: [Float] = [0.1, 0.5, -0.3, 0.9, -0.2, 0.4, 0.0, 0.3, 0.8]
        _ = try network.forward(input: input, count: 3, parameters: buffers.parameters.pointer, state: buffers.state.pointer, mode: .inference)
        XCTAssertEqual(buffers.state.array, [0, 0, 0, 0, 1, 1, 1, 1], "inference must not touch running statistics")
        _ = try network.forward(input: input, count: 3, parameters: buffers.parameters.pointer, state: buffers.state.pointer, mode: .training)
        XCTAssertNotEqual(buffers.state.array, [0, 0, 0, 0, 1, 1, 1, 1], "training updates running statistics")
        // One sample alone works in inference (running statistics) but not in training.
        _ = try network.forward(input: input, count: 1, parameters: buffers.parameters.pointer, state: buffers.state.pointer, mode: .inference)
        XCTAssertThrowsError(try network.forward(input: input, count: 1, parameters: buffers.parameters.pointer,
                                                 state: buffers.state.pointer, mode: .training))
    }
}
