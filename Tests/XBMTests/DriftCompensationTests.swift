import Collectives
import Foundation
import TestSupport
import XBMData
import XBMEval
import XBMKernels
import XBMModel
@testable import XBMTraining
import XCTest

/// `--xbm-compensate moments` (Docs/losses.md, Drift compensation) by hand, across ranks and
/// across a resume, and the memory's drift measurement (`memory_drift`).
final class DriftCompensationTests: XCTestCase {
    /// Two batches 100 iterations apart (each its own window): the old rows, mean (0.5, 0.5)
    /// and deviation (0.5, 0.5), are mapped onto the new rows' mean (0.7, 0.7) and deviation
    /// (0.1, 0.1): (1, 0) → (0.8, 0.6), (0, 1) → (0.6, 0.8); the new rows map to themselves.
    func testOldRowsAreMappedOntoTheCurrentMomentsByHand() throws {
        let memory = CrossBatchMemory(capacity: 6, dimension: 2)
        memory.clock = 0
        try memory.enqueue(embeddings: [1, 0, 0, 1], labels: [0, 1], count: 2)
        memory.clock = 100
        try memory.enqueue(embeddings: [0.6, 0.8, 0.8, 0.6], labels: [2, 3], count: 2)
        let matching = MomentMatching(window: 8)      // owns the compensated rows
        let segments = matching.compensated(memory)
        XCTAssertEqual(segments.count, 1)
        let rows = Array(UnsafeBufferPointer(start: segments[0].embeddings, count: 8))
        let expected: [Float] = [0.8, 0.6, 0.6, 0.8, 0.6, 0.8, 0.8, 0.6]
        for (got, want) in zip(rows, expected) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: segments[0].labels, count: 4)), [0, 1, 2, 3])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: segments[0].stamps!, count: 4)), [0, 0, 100, 100])
        // The stored rows are untouched.
        XCTAssertEqual(Array(UnsafeBufferPointer(start: memory.row(0).embedding, count: 2)), [1, 0])
        withExtendedLifetime(matching) {}
    }

    /// A window of identical rows has no deviation: the 1e-6 floor keeps the map finite (σ = 0
    /// would divide by zero), and such rows land on the current mean's direction.
    func testIdenticalRowsMapToTheCurrentMean() throws {
        let memory = CrossBatchMemory(capacity: 8, dimension: 2)
        memory.clock = 0
        try memory.enqueue(embeddings: [Float](repeating: 0, count: 6).enumerated().map { $0.offset % 2 == 0 ? 0.1 : 0.3 },
                           labels: [0, 1, 2], count: 3)
        memory.clock = 50
        try memory.enqueue(embeddings: [0.6, 0.8, 0.8, 0.6], labels: [3, 4], count: 2)
        let matching = MomentMatching(window: 8)
        let rows = matching.compensated(memory)[0].embeddings
        for k in 0..<6 { XCTAssertTrue(rows[k].isFinite, "component \(k) is \(rows[k])") }
        // μ_now = (0.7, 0.7): direction (1, 1)/√2.
        for k in 0..<6 { XCTAssertEqual(rows[k], Float(0.5).squareRoot(), accuracy: 1e-6) }
        withExtendedLifetime(matching) {}
    }

    /// Within one window every row has the current moments: the rows come back as they were.
    func testRowsOfTheCurrentWindowAreLeftAsTheyAre() throws {
        let memory = CrossBatchMemory(capacity: 8, dimension: 3)
        var random = RandomSource(seed: 2)
        for clock in [10, 13, 17] {
            memory.clock = clock
            try memory.enqueue(embeddings: randomUnitRows(count: 2, dimension: 3, random: &random), labels: [0, 1], count: 2)
        }
        let matching = MomentMatching(window: 8)
        let compensated = matching.compensated(memory)[0]
        for row in 0..<6 {
            for k in 0..<3 {
                XCTAssertEqual(compensated.embeddings[row * 3 + k], memory.row(row).embedding[k], accuracy: 1e-6)
            }
        }
        withExtendedLifetime(matching) {}
    }

    private func config(data: URL, run: URL? = nil, iterations: Int) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: iterations)
        c.loss.kind = .contrastive
        c.optimization.schedule = .constant
        c.optimization.lr = 0.05
        c.optimization.optimizer = .sgd
        c.memory.size = 48
        c.memory.start = .at(.iteration(2))
        c.memory.compensate = .moments
        c.memory.driftEvery = 4
        c.run.logEvery = 1
        c.run.seed = 9
        if let run { c.run.directory = run.path }
        return c
    }

    private func train(_ config: TrainingConfig, ranks: Int, resume: Bool = false, outputs: Bool = false) throws -> [(losses: [Double], checksum: UInt64)] {
        try SimulatedRanks.run(size: ranks) { comm in
            let trainer = try Trainer(config: config, comm: comm, resume: resume, writeOutputs: outputs || resume)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            let losses = try trainer.run().losses
            return (losses, trainer.components.step.replicaChecksum())
        }
    }

    /// The compensated memory term is the same on 1, 2 and 4 ranks (to the equivalence
    /// tolerance of Docs/distributed.md), every replica alike, and it changes the run.
    func testTheSameOnEveryRankAndOnAnyRankCount() throws {
        let data = try TrainingFixtures.featureDataset()
        let c = config(data: data, iterations: 14)
        let reference = try train(c, ranks: 1)[0]
        var plain = c
        plain.memory.compensate = .none
        let uncompensated = try train(plain, ranks: 1)[0]
        XCTAssertNotEqual(reference.losses, uncompensated.losses, "vacuous: the compensation changed nothing")
        for ranks in [2, 4] {
            let runs = try train(c, ranks: ranks)
            XCTAssertTrue(runs.allSatisfy { $0.checksum == runs[0].checksum }, "\(ranks) ranks: replicas differ")
            for (a, b) in zip(runs[0].losses, reference.losses) { XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b)) }
        }
    }

    /// A resumed run continues bit for bit: the compensation is computed from the rows and
    /// stamps the checkpoint holds; the sample indices cross the resume for the drift log.
    func testAResumedRunMatchesTheUninterruptedOne() throws {
        let data = try TrainingFixtures.featureDataset()
        let wholeRun = TrainingFixtures.temporaryDirectory("comp-whole")
        let whole = try train(config(data: data, run: wholeRun, iterations: 12), ranks: 2, outputs: true)[0]
        let split = TrainingFixtures.temporaryDirectory("comp-split")
        let first = try train(config(data: data, run: split, iterations: 6), ranks: 2, outputs: true)[0]
        let second = try train(config(data: data, run: split, iterations: 12), ranks: 2, resume: true)[0]
        XCTAssertEqual(first.losses + second.losses, whole.losses)

        // The memory's drift, measured every 4 iterations once it holds rows: the same lines.
        func driftLines(_ run: URL) throws -> [MetricsRecord] {
            MetricsRecord.records(inLog: try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8))
                .filter { $0.memoryDrift != nil }
        }
        let lines = try driftLines(split)
        XCTAssertEqual(lines, try driftLines(wholeRun))
        XCTAssertEqual(lines.map(\.iteration), [4, 8])
        for line in lines {
            XCTAssertTrue((0...2).contains(line.memoryDrift!), "\(line)")
            XCTAssertNotNil(line.memoryDriftCompensated)
            XCTAssertGreaterThanOrEqual(line.memoryDriftAge!, 0)
        }
    }

    /// `--xbm-refresh`: the rows with the oldest stamps whose samples are known, ties in
    /// storage order; an overwritten row takes the clock as its stamp and keeps label and sample.
    func testTheOldestRowsAreRefreshedFirst() throws {
        let memory = CrossBatchMemory(capacity: 6, dimension: 1)
        for (clock, sample) in [(5, 50), (3, 30), (3, -1), (9, 90), (1, 10), (3, 31)] {
            memory.clock = clock
            try memory.enqueue(embeddings: [Float(clock)], labels: [Int32(sample)], samples: [Int32(sample)], count: 1)
        }
        XCTAssertEqual(memory.oldestRows(3), [4, 1, 5], "stamp 1, then the stamp-3 rows with samples, in storage order")
        XCTAssertEqual(memory.oldestRows(10), [4, 1, 5, 0, 3])
        memory.clock = 12
        memory.overwrite(row: 4, embedding: [0.5])
        XCTAssertEqual(memory.row(4).embedding.pointee, 0.5)
        XCTAssertEqual(memory.row(4).stamp, 12)
        XCTAssertEqual(memory.row(4).sample, 10)
        XCTAssertEqual(memory.oldestRows(2), [1, 5])
    }

    /// Refreshing is the same on 1, 2 and 4 ranks, every replica alike, changes the run, and a
    /// resumed run continues bit for bit.
    func testRefreshingAgreesAcrossRanksAndAcrossAResume() throws {
        let data = try TrainingFixtures.featureDataset()
        func refreshing(_ c: TrainingConfig) -> TrainingConfig {
            var c = c
            c.memory.compensate = .none
            c.memory.refresh = 16
            return c
        }
        let c = refreshing(config(data: data, iterations: 12))
        let reference = try train(c, ranks: 1)[0]
        var plain = c
        plain.memory.refresh = 0
        XCTAssertNotEqual(reference.losses, try train(plain, ranks: 1)[0].losses, "vacuous: refreshing changed nothing")
        for ranks in [2, 4] {
            let runs = try train(c, ranks: ranks)
            XCTAssertTrue(runs.allSatisfy { $0.checksum == runs[0].checksum }, "\(ranks) ranks: replicas differ")
            for (a, b) in zip(runs[0].losses, reference.losses) { XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b)) }
        }
        let whole = try train(refreshing(config(data: data, run: TrainingFixtures.temporaryDirectory("refresh-whole"), iterations: 12)),
                              ranks: 2, outputs: true)[0]
        let split = TrainingFixtures.temporaryDirectory("refresh-split")
        let first = try train(refreshing(config(data: data, run: split, iterations: 6)), ranks: 2, outputs: true)[0]
        let second = try train(refreshing(config(data: data, run: split, iterations: 12)), ranks: 2, resume: true)[0]
        XCTAssertEqual(first.losses + second.losses, whole.losses)
    }

    /// `--bn local`: every rank embeds its share of the refreshed rows with rank 0's running
    /// statistics (Docs/distributed.md), so the rows equal one process's embedding of their
    /// samples by rank 0's model; with each rank's own statistics, rank 1's half would differ.
    func testUnderLocalBatchNormTheRanksEmbedWithRankZerosStatistics() throws {
        let data = try TrainingFixtures.featureDataset()
        var c = config(data: data, iterations: 6)
        c.memory.compensate = .none
        c.memory.refresh = 16
        c.model.bn = .local
        let config = c
        let gaps = try SimulatedRanks.run(size: 2) { comm -> (refreshed: Int, gap: Float, statisticsDiffer: Bool) in
            let trainer = try Trainer(config: config, comm: comm, writeOutputs: false)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            _ = try trainer.run()
            let step = trainer.components.step, memory = step.memory!, d = memory.dimension
            var theirs = step.state.array
            try comm.broadcast(&theirs, root: 1)
            // The last refresh stamped its rows with the clock, after the last step's rows.
            let refreshed = (0..<memory.count).filter { memory.row($0).stamp == Int32(memory.clock) }
            let alone = try Evaluation.embed(indices: refreshed.map { Int(memory.row($0).sample) }, dataset: trainer.dataset,
                                             network: trainer.components.inferenceNetwork, parameters: step.parameters.pointer,
                                             state: step.state.pointer, comm: SingleProcessCommunicator())
            var gap: Float = 0
            for (i, row) in refreshed.enumerated() {
                for k in 0..<d { gap = max(gap, abs(memory.row(row).embedding[k] - alone[i * d + k])) }
            }
            return (refreshed.count, gap, theirs != step.state.array)
        }
        XCTAssertEqual(gaps[0].refreshed, 16)
        XCTAssertTrue(gaps[0].statisticsDiffer, "vacuous: both ranks hold the same running statistics")
        XCTAssertLessThan(gaps[0].gap, 1e-5, "the refreshed rows were not all embedded with rank 0's statistics")
    }

    /// Rows enqueued as the inference network embeds their samples are at drift 0; a row moved
    /// by δ along one axis is at its distance, δ·(its share of the sample).
    func testTheMemorysDriftIsTheDistanceToTheCurrentEmbeddings() throws {
        let data = try Dataset.load(directory: try TrainingFixtures.featureDataset())
        let network = try makeNetwork(kind: .mlp, inputShape: data.sampleShape, embeddingSize: 8, hiddenSize: 16,
                                      maxBatch: 32, batchNorm: .local)
        let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
        let state = FlatBuffer<Float>(count: network.stateLayout.count)
        var random = RandomSource(seed: 5)
        network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        let comm = SingleProcessCommunicator()
        let samples = Array(data.indices(.train).prefix(4))
        let embedded = try Evaluation.embed(indices: samples, dataset: data, network: network, parameters: parameters.pointer,
                                            state: state.pointer, comm: comm)
        let memory = CrossBatchMemory(capacity: 4, dimension: 8)
        memory.clock = 3
        var rows = embedded.array
        try memory.enqueue(embeddings: rows, labels: samples.map { data.labels[$0] }, samples: samples.map { Int32($0) }, count: 4)
        memory.clock = 5
        func measure() throws -> MemoryDrift.Measurement {
            try XCTUnwrap(try MemoryDrift.measure(memory: memory, compensated: nil, rows: 4, dataset: data, network: network,
                                                  parameters: parameters.pointer, state: state.pointer, comm: comm))
        }
        XCTAssertEqual(try measure(), MemoryDrift.Measurement(stored: 0, compensated: nil, age: 2))
        rows[8 + 3] += 0.5       // row 1, component 3
        memory.clear()
        memory.clock = 3
        try memory.enqueue(embeddings: rows, labels: samples.map { data.labels[$0] }, samples: samples.map { Int32($0) }, count: 4)
        memory.clock = 5
        XCTAssertEqual(try measure().stored, 0.5 / 4, accuracy: 1e-7)
    }
}
