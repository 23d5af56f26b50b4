import Collectives
import Foundation
import TestSupport
import XBMData
import XBMKernels
import XBMModel
import XBMTraining
import XCTest

final class DriftTests: XCTestCase {
    private func config(_ data: URL) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: 10)
        c.memory.size = 48
        c.memory.start = .auto
        c.memory.driftEvery = 3
        c.memory.driftProbe = 20
        return c
    }

    private func memoryCount(_ c: TrainingConfig, ranks: Int = 2) throws -> [Int] {
        try SimulatedRanks.run(size: ranks) { comm in
            let trainer = try Trainer(config: c, comm: comm, writeOutputs: false)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            _ = try trainer.run()
            return trainer.components.step.memory!.count
        }
    }

    func testAutoStartWaitsForTheFirstMeasurementBelowTheThreshold() throws {
        let data = try TrainingFixtures.featureDataset()
        var c = config(data)
        c.memory.driftThreshold = 10   // any drift (≤ 2 for unit vectors) is below: starts at iteration 3
        // Iterations 3…9 enqueue 7 batches of 16 into 48 rows: full.
        XCTAssertEqual(try memoryCount(c), [48, 48])
        c.optimization.iters = 5             // iterations 3 and 4: two batches
        XCTAssertEqual(try memoryCount(c), [32, 32])
        c.optimization.iters = 10
        c.memory.driftThreshold = 1e-12  // a training network always moves more than this: never starts
        XCTAssertEqual(try memoryCount(c), [0, 0])
    }

    func testDriftOfAnUnchangedModelIsZeroAndOfAChangedOneIsItsMeanDistance() throws {
        let data = try TrainingFixtures.featureDataset()
        let dataset = try Dataset.load(directory: data)
        let network = MLP(inputSize: 16, hiddenSize: 16, embeddingSize: 8, maxBatch: 64, batchNorm: .local)
        let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
        let state = FlatBuffer<Float>(count: network.stateLayout.count)
        var random = RandomSource(seed: 1)
        network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        let comm = SingleProcessCommunicator()
        let monitor = DriftMonitor(trainingIndices: dataset.indices(.train), probeSize: 10, dimension: 8, seed: 2)
        XCTAssertEqual(monitor.probe.count, 10)
        XCTAssertEqual(Set(monitor.probe).count, 10, "probe samples are distinct")
        XCTAssertNil(try monitor.measure(dataset: dataset, network: network, parameters: parameters.pointer, state: state.pointer, comm: comm))
        XCTAssertEqual(try monitor.measure(dataset: dataset, network: network, parameters: parameters.pointer, state: state.pointer, comm: comm), 0)

        // Negating the last layer negates every embedding: each moves by ‖e − (−e)‖ = 2.
        let last = network.parameterLayout.entries.suffix(2)
        for entry in last { for i in entry.offset..<(entry.offset + entry.count) { parameters[i] = -parameters[i] } }
        let drift = try monitor.measure(dataset: dataset, network: network, parameters: parameters.pointer, state: state.pointer, comm: comm)
        XCTAssertEqual(drift!, 2, accuracy: 1e-5)
    }
}
