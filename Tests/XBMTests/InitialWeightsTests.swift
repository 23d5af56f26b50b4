import Collectives
import Foundation
import TestSupport
import XBMData
import XBMEval
import XBMFormats
import XBMKernels
import XBMModel
@testable import XBMTraining
import XCTest

/// `--init-from` (Docs/finetuning.md): a new run starts from the weights of a run directory,
/// its checkpoint or an exported safetensors file; the network then embeds exactly as the
/// source did, shapes that do not fit are refused by name, and config.json records the source.
final class InitialWeightsTests: XCTestCase {
    /// A glyphnet with every parameter and running statistic its own distinct value.
    private func glyphNet(dim: Int = 3) -> (GlyphNet, FlatBuffer<Float>, FlatBuffer<Float>) {
        let network = GlyphNet(embeddingSize: dim, maxBatch: 4, batchNorm: .local, height: 8, width: 8, channels: [2, 3, 4, 5])
        let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
        let state = FlatBuffer<Float>(count: network.stateLayout.count)
        var random = RandomSource(seed: 11)
        for i in 0..<parameters.count { parameters[i] = random.nextUniform() - 0.5 }
        for i in 0..<state.count { state[i] = 0.5 + random.nextUniform() }     // variances stay positive
        return (network, parameters, state)
    }

    private func exported(_ network: GlyphNet, _ parameters: FlatBuffer<Float>, _ state: FlatBuffer<Float>) throws -> [UInt8] {
        try TorchExport.safetensors(model: .glyphnet, network: network, parameters: parameters.pointer, state: state.pointer).encoded()
    }

    func testASafetensorsExportLoadsBackBitForBitAndEmbedsTheSame() throws {
        let (source, parameters, state) = glyphNet()
        let weights = try InitialWeights.decode(try exported(source, parameters, state), path: "model.safetensors")
        let (target, loadedParameters, loadedState) = glyphNet()
        loadedParameters.zero()
        loadedState.zero()
        try weights.apply(to: loadedParameters.pointer, layout: target.parameterLayout)
        try weights.apply(to: loadedState.pointer, layout: target.stateLayout)
        XCTAssertEqual(loadedParameters.array, parameters.array)
        XCTAssertEqual(loadedState.array, state.array)

        var random = RandomSource(seed: 3)
        let images = (0..<(4 * 64)).map { _ in random.nextUniform() }
        let a = try source.forward(input: images, count: 4, parameters: parameters.pointer, state: state.pointer, mode: .inference)
        let expected = Array(UnsafeBufferPointer(start: a, count: 12))
        let b = try target.forward(input: images, count: 4, parameters: loadedParameters.pointer, state: loadedState.pointer,
                                   mode: .inference)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: b, count: 12)), expected)
        XCTAssertNotEqual(expected, [Float](repeating: 0, count: 12), "vacuous: no embedding")
    }

    /// PyTorch's (Co, Ci, kh, kw) against xbm-dist's (Co, kh, kw, Ci), element by element.
    func testConvolutionWeightsComeBackToTheirLayout() {
        // PyTorch conv (Co 2, Ci 3, 1, 2): value at [o][i][y][x] = 100o + 10i + x.
        var values: [Float] = []
        for o in 0..<2 { for i in 0..<3 { for x in 0..<2 { values.append(Float(100 * o + 10 * i + x)) } } }
        let (name, shape, converted) = TorchExport.xbmTensor(name: "conv1.weight", shape: [2, 3, 1, 2], values: values)
        XCTAssertEqual(name, "conv1.weight")
        XCTAssertEqual(shape, [2, 1, 2, 3])
        // xbm-dist [o][y][x][i]
        XCTAssertEqual(converted, [0, 10, 20, 1, 11, 21, 100, 110, 120, 101, 111, 121])
        XCTAssertEqual(TorchExport.xbmTensor(name: "bn2.running_var", shape: [1], values: [1]).0, "bn2.runningVariance")
        XCTAssertEqual(TorchExport.xbmTensor(name: "bn2.weight", shape: [1], values: [1]).0, "bn2.scale")
        XCTAssertEqual(TorchExport.xbmTensor(name: "fc.weight", shape: [1, 1], values: [1]).0, "fc.weight")
    }

    func testAShapeThatDoesNotFitIsRefusedNamingTheTensorAndBothShapes() throws {
        let (source, parameters, state) = glyphNet(dim: 3)
        let weights = try InitialWeights.decode(try exported(source, parameters, state), path: "m.safetensors")
        let (target, buffer, _) = glyphNet(dim: 6)
        XCTAssertThrowsError(try weights.apply(to: buffer.pointer, layout: target.parameterLayout)) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("fc.weight") && message.contains("[3, 5]") && message.contains("[6, 5]"), message)
        }
        // With the head kept, everything else fits.
        XCTAssertNoThrow(try weights.apply(to: buffer.pointer, layout: target.parameterLayout,
                                           keeping: Set(target.headParameterNames)))
        XCTAssertEqual(target.headParameterNames, ["fc.weight", "fc.bias"])
    }

    func testAMissingTensorIsRefusedByName() throws {
        let (network, parameters, state) = glyphNet()
        var file = TorchExport.safetensors(model: .glyphnet, network: network, parameters: parameters.pointer, state: state.pointer)
        var pruned = SafetensorsFile()
        for tensor in file.tensors where tensor.name != "bn3.running_mean" {
            if let floats = tensor.floats { pruned.add(tensor.name, shape: tensor.shape, floats: floats) }
        }
        file = pruned
        let weights = try InitialWeights.decode(try file.encoded(), path: "m.safetensors")
        XCTAssertThrowsError(try weights.apply(to: state.pointer, layout: network.stateLayout)) {
            XCTAssertTrue("\($0)".contains("bn3.runningMean") && "\($0)".contains("bn3.running_mean"), "\($0)")
        }
    }

    func testDamagedFilesAreRefusedNotTrapped() throws {
        let (network, parameters, state) = glyphNet()
        let bytes = try exported(network, parameters, state)
        func file(header: String, data: [UInt8]) -> [UInt8] {
            withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init) + Array(header.utf8) + data
        }
        let half = file(header: #"{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}"#, data: [0, 0])
        let overflowing = file(header: #"{"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}"#, data: [])
        let outside = file(header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 0])
        for damaged in [Array(bytes.prefix(5)), Array(bytes.prefix(bytes.count - 4)), [UInt8](repeating: 0xFF, count: 16),
                        half, overflowing, outside] {
            XCTAssertThrowsError(try InitialWeights.decode(damaged, path: "bad.safetensors")) {
                XCTAssertTrue("\($0)".contains("bad.safetensors"), "\($0)")
            }
        }
    }

    // MARK: - Runs

    private func config(_ data: URL, run: URL, seed: UInt64 = 1) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: 4)
        c.run.directory = run.path
        c.run.seed = seed
        c.memory.size = 32
        return c
    }

    private func train(_ config: TrainingConfig, resume: Bool = false, overrides: Set<String> = []) throws -> Trainer {
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator(), resume: resume, resumeOverrides: overrides)
        trainer.verbose = false
        trainer.evaluateAtEnd = false
        _ = try trainer.run()
        return trainer
    }

    func testANewRunStartsFromARunDirectoryAndRecordsItsSourceAndChecksum() throws {
        let data = try TrainingFixtures.featureDataset()
        let source = TrainingFixtures.temporaryDirectory("init-source")
        let trained = try train(config(data, run: source))
        let checkpointBytes = try [UInt8](Data(contentsOf: source.appendingPathComponent("checkpoint.xbm")))
        var hash = FNV1a64()
        checkpointBytes.withUnsafeBytes { hash.update($0) }

        var c = config(data, run: TrainingFixtures.temporaryDirectory("init-target"), seed: 2)
        c.model.initFrom = source.path
        let started = try Trainer(config: c, comm: SingleProcessCommunicator())
        XCTAssertEqual(started.components.step.parameters.array, trained.components.step.parameters.array)
        XCTAssertEqual(started.components.step.state.array, trained.components.step.state.array)
        XCTAssertEqual(started.config.model.initFromChecksum, FNV1a64.hex(hash.value))
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: c.run.directory)
            .appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(saved["init-from"] as? String, source.path)
        XCTAssertEqual(saved["init-from-checksum"] as? String, FNV1a64.hex(hash.value))

        // Another seed's head with --redraw-head: the head is the fresh one, the rest the source's.
        c.model.redrawHead = true
        let redrawn = try Trainer(config: c, comm: SingleProcessCommunicator(), writeOutputs: false)
        var fresh = c
        fresh.model.initFrom = nil
        fresh.model.redrawHead = false
        fresh.model.initFromChecksum = nil
        let seeded = try Trainer(config: fresh, comm: SingleProcessCommunicator(), writeOutputs: false)
        let layout = redrawn.components.network.parameterLayout
        for entry in layout.entries {
            let range = entry.offset..<(entry.offset + entry.count)
            let expected = (entry.name.hasPrefix("fc2.") ? seeded : trained).components.step.parameters.array[range]
            XCTAssertEqual(redrawn.components.step.parameters.array[range], expected, entry.name)
        }

        // The wrong checksum is refused; resuming with another source is a change to refuse.
        c.model.redrawHead = false
        c.model.initFromChecksum = "0123456789abcdef"
        XCTAssertThrowsError(try Trainer(config: c, comm: SingleProcessCommunicator(), writeOutputs: false)) {
            XCTAssertTrue("\($0)".contains("0123456789abcdef") && "\($0)".contains(FNV1a64.hex(hash.value)), "\($0)")
        }
        c.model.initFromChecksum = nil
        _ = try train(c)
        // Resumed with the configuration it started from (no checksum given): the recorded one holds.
        var longer = c
        longer.optimization.iters = 6
        XCTAssertNoThrow(try train(longer, resume: true))
        var other = c
        other.model.initFrom = data.path
        XCTAssertThrowsError(try Trainer(config: other, comm: SingleProcessCommunicator(), resume: true)) {
            XCTAssertTrue("\($0)".contains("--init-from"), "\($0)")
        }
    }
}
