import Collectives
import Foundation
import TestSupport
import XBMTraining
import XCTest

/// Docs/distributed.md: a run stopped at a checkpoint and resumed continues exactly as if it had not
/// been interrupted — with the same number of ranks bit for bit, with another number of
/// ranks to the equivalence tolerance of Docs/distributed.md.
final class ResumeTests: XCTestCase {
    private func config(data: URL, runDirectory: URL, iterations: Int) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: iterations)
        c.run.directory = runDirectory.path
        c.loss.kind = .multiSimilarity
        c.memory.driftEvery = 5       // the drift monitor's state crosses the resume too
        c.optimization.optimizer = .adam
        c.optimization.schedule = .step
        c.optimization.milestones = [.iteration(9)]
        c.memory.size = 40
        c.memory.start = .at(.iteration(4))
        c.run.seed = 4
        return c
    }

    private func train(_ config: TrainingConfig, ranks: Int, resume: Bool = false) throws -> [Double] {
        try SimulatedRanks.run(size: ranks) { comm in
            let trainer = try Trainer(config: config, comm: comm, resume: resume)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            return try trainer.run().losses
        }[0]
    }

    func testResumedRunMatchesTheUninterruptedOne() throws {
        let data = try TrainingFixtures.featureDataset()
        let whole = try train(config(data: data, runDirectory: TrainingFixtures.temporaryDirectory("whole"), iterations: 14), ranks: 2)

        let split = TrainingFixtures.temporaryDirectory("split")
        let first = try train(config(data: data, runDirectory: split, iterations: 7), ranks: 2)
        let second = try train(config(data: data, runDirectory: split, iterations: 14), ranks: 2, resume: true)
        XCTAssertEqual(first.count, 7)
        XCTAssertEqual(second.count, 7)
        // Same ranks, same order of every operation: identical to the last bit.
        XCTAssertEqual(first + second, whole)

        // The log of the resumed run continues the first one's.
        let log = try String(contentsOf: split.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let iterations = log.split(separator: "\n").compactMap { line -> Int? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["iter"] as? Int
        }
        XCTAssertEqual(iterations, iterations.sorted(), "metrics.jsonl must stay in iteration order")
        XCTAssertEqual(iterations.last, 14)
    }

    func testResumeUnderAnotherRankCount() throws {
        let data = try TrainingFixtures.featureDataset()
        let whole = try train(config(data: data, runDirectory: TrainingFixtures.temporaryDirectory("whole"), iterations: 12), ranks: 1)
        let split = TrainingFixtures.temporaryDirectory("split")
        let first = try train(config(data: data, runDirectory: split, iterations: 6), ranks: 4)
        let second = try train(config(data: data, runDirectory: split, iterations: 12), ranks: 2, resume: true)
        for (i, (a, b)) in zip(first + second, whole).enumerated() {
            XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b), "iteration \(i)")
        }
    }

    /// Shares of the schedule instead of iterations: a cosine schedule with a warm-up, and the
    /// memory starting at 30% of it; split as Docs/reliability.md says to split one planned run
    /// (`--iters 7 --schedule-iters 14`, then `--resume --iters 14`). A share resolved against
    /// the part's length instead of the plan's would move the start and the rates.
    func testASplitPlanWithSharesAndACosineScheduleMatchesTheWholeRun() throws {
        let data = try TrainingFixtures.featureDataset()
        func planned(_ directory: URL, iterations: Int) -> TrainingConfig {
            var c = config(data: data, runDirectory: directory, iterations: iterations)
            c.optimization.schedule = .cosine
            c.optimization.warmup = 3
            c.optimization.scheduleIters = 14
            c.memory.start = .at(.fraction(0.3))
            return c
        }
        let whole = try train(planned(TrainingFixtures.temporaryDirectory("cosine-whole"), iterations: 14), ranks: 2)
        let split = TrainingFixtures.temporaryDirectory("cosine-split")
        let first = try train(planned(split, iterations: 7), ranks: 2)
        let second = try train(planned(split, iterations: 14), ranks: 2, resume: true)
        XCTAssertEqual(first + second, whole)
        // The start (30% of 14 iterations) lies in the first part, so the memory matters.
        var plain = planned(TrainingFixtures.temporaryDirectory("cosine-plain"), iterations: 14)
        plain.memory.size = 0
        XCTAssertNotEqual(try train(plain, ranks: 2), whole, "vacuous: the memory changed nothing")
    }

    func testResumeWithoutCheckpointIsAClearError() throws {
        let data = try TrainingFixtures.featureDataset()
        let empty = TrainingFixtures.temporaryDirectory("empty")
        XCTAssertThrowsError(try train(config(data: data, runDirectory: empty, iterations: 4), ranks: 2, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint at"), "\(error)")
        }
    }

    func testCheckpointOfAnotherModelIsRefused() throws {
        let data = try TrainingFixtures.featureDataset()
        let run = TrainingFixtures.temporaryDirectory("model")
        _ = try train(config(data: data, runDirectory: run, iterations: 2), ranks: 1)
        var other = config(data: data, runDirectory: run, iterations: 4)
        other.model.dim = 12
        XCTAssertThrowsError(try train(other, ranks: 1, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("--dim 8 → 12"), "\(error)")
        }
        // Overriding cannot make saved weights fit another network.
        XCTAssertThrowsError(try Trainer(config: other, comm: SingleProcessCommunicator(), resume: true, resumeOverrides: ["dim"])) {
            XCTAssertTrue("\($0)".contains("another model"), "\($0)")
        }
    }

    func testCorruptedCheckpointIsRefused() throws {
        let data = try TrainingFixtures.featureDataset()
        let run = TrainingFixtures.temporaryDirectory("corrupt")
        _ = try train(config(data: data, runDirectory: run, iterations: 2), ranks: 1)
        let file = run.appendingPathComponent("checkpoint.xbm")
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: file)
        XCTAssertThrowsError(try train(config(data: data, runDirectory: run, iterations: 4), ranks: 1, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("corrupt"), "\(error)")
        }
    }

    func testStopSignalCheckpointsAndEndsEveryRankAtTheSameIteration() throws {
        let data = try TrainingFixtures.featureDataset()
        let run = TrainingFixtures.temporaryDirectory("signal")
        let c = config(data: data, runDirectory: run, iterations: 10)
        let outcomes = try SimulatedRanks.run(size: 2) { comm in
            let trainer = try Trainer(config: c, comm: comm)
            trainer.verbose = false
            trainer.stopRequested = { comm.rank == 1 }   // the signal reached one rank only
            let outcome = try trainer.run()
            return (outcome.stopped, outcome.iterationsDone)
        }
        XCTAssertTrue(outcomes.allSatisfy { $0.0 && $0.1 == 1 }, "\(outcomes)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.xbm").path))
    }
}
