import Collectives
import Foundation
import TestSupport
import XBMKernels
import XBMTraining
import XCTest

/// Docs/distributed.md: a diverged run (non-finite embeddings, which the pair losses' mining would
/// silently turn into a zero loss, or a non-finite loss) stops on every rank before the update
/// is applied, with one message, and the last checkpoint stays the last good one.
final class NonFiniteLossTests: XCTestCase {
    func testExplodingRunStopsEveryRankAndKeepsTheLastGoodCheckpoint() throws {
        let data = try TrainingFixtures.featureDataset()
        let run = TrainingFixtures.temporaryDirectory("nan")
        var c = TrainingFixtures.smallRun(data: data, iterations: 50)
        c.run.directory = run.path
        c.optimization.optimizer = .sgd
        c.optimization.momentum = 0
        c.optimization.lr = 1e38              // the first update sends the weights to ±inf: the next embeddings are NaN
        c.optimization.schedule = .constant
        c.memory.size = 0
        c.run.checkpointEvery = 1
        let config = c
        XCTAssertThrowsError(try SimulatedRanks.run(size: 2) { comm -> Int in
            let trainer = try Trainer(config: config, comm: comm)
            trainer.verbose = false
            return try trainer.run().iterationsDone
        }) { error in
            switch error as? TrainingError {
            case .nonFiniteEmbedding?, .nonFiniteParameters?, .nonFiniteLoss?:
                XCTAssertTrue("\(error)".contains("last checkpoint is intact"), "\(error)")
            default:
                XCTFail("expected a divergence error, got \(error)")
            }
        }
        // Whatever checkpoint is on disk holds finite weights and loads.
        if FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.xbm").path) {
            let parameters = try SimulatedRanks.run(size: 1) { comm in
                try TrainedModel.load(runDirectory: run.path, data: nil, comm: comm).parameters.array
            }[0]
            XCTAssertTrue(parameters.allSatisfy(\.isFinite))
        }
    }

    func testFirstNonFiniteFindsNaNAndInfinityAnywhere() {
        for count in [1, 255, 256, 257, 1000] {
            var values = (0..<count).map { Float($0) * 1e30 }   // large but finite
            XCTAssertNil(values.withUnsafeBufferPointer { firstNonFinite($0.baseAddress!, count: count) })
            for position in Set([0, count / 2, count - 1]) {
                for bad in [Float.nan, .infinity, -.infinity] {
                    let saved = values[position]
                    values[position] = bad
                    XCTAssertEqual(values.withUnsafeBufferPointer { firstNonFinite($0.baseAddress!, count: count) }, position)
                    values[position] = saved
                }
            }
        }
    }
}
