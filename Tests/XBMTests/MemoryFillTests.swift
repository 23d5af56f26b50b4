import Collectives
import Foundation
import TestSupport
import XBMTraining
import XCTest

/// `--xbm-init fill` (Docs/losses.md): at the start iteration the memory is filled with embeddings of
/// random training samples by the current model, spread over the ranks, identically on every
/// replica.
final class MemoryFillTests: XCTestCase {
    private func run(fill: Bool, ranks: Int) throws -> [(count: Int, checksum: UInt64, losses: [Double])] {
        let data = try TrainingFixtures.featureDataset()
        var c = TrainingFixtures.smallRun(data: data, iterations: 5)
        c.memory.size = 40
        c.memory.start = .at(.iteration(3))
        c.memory.initialization = fill ? .fill : .none
        let config = c
        return try SimulatedRanks.run(size: ranks) { comm in
            let trainer = try Trainer(config: config, comm: comm, writeOutputs: false)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            let losses = try trainer.run().losses
            let memory = trainer.components.step.memory!
            return (memory.count, memory.checksum(), losses)
        }
    }

    func testFillMakesTheMemoryFullAtTheStartIteration() throws {
        // Without fill, iterations 3 and 4 enqueue 2 × 16 rows; with it, the memory is full.
        XCTAssertEqual(try run(fill: false, ranks: 1).map(\.count), [32])
        let filled = try run(fill: true, ranks: 2)
        XCTAssertEqual(filled.map(\.count), [40, 40])
        XCTAssertEqual(filled[0].checksum, filled[1].checksum, "replicas differ after the fill")
        // Same losses before the start iteration, different once the filled memory counts.
        let plain = try run(fill: false, ranks: 2)[0].losses
        XCTAssertEqual(Array(filled[0].losses.prefix(3)), Array(plain.prefix(3)))
        XCTAssertNotEqual(filled[0].losses[3], plain[3])
    }

    func testFillGivesTheSameRunOnAnyNumberOfRanks() throws {
        let one = try run(fill: true, ranks: 1)[0]
        let four = try run(fill: true, ranks: 4)[0]
        for (a, b) in zip(one.losses, four.losses) { XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b)) }
    }
}
