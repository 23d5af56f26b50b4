import Collectives
import Foundation
import TestSupport
import XBMTraining
import XCTest

/// Docs/reliability.md, "Keeping checkpoints": the run directory keeps the newest
/// `--keep-checkpoints` checkpoints, and `--resume` falls back on the newest one that loads,
/// trimming the logs to it, so a damaged file costs the iterations since the previous one,
/// not the run.
final class CheckpointFallbackTests: XCTestCase {
    private func config(data: URL, run: URL, iterations: Int, keep: Int = 2) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: iterations)
        c.run.directory = run.path
        c.run.checkpointEvery = 2
        c.run.keepCheckpoints = keep
        c.run.logEvery = 1
        c.optimization.scheduleIters = 10   // one planned run of 10 iterations, however it is split
        c.loss.kind = .multiSimilarity
        c.memory.size = 40
        c.memory.start = .at(.iteration(3))
        c.run.seed = 6
        return c
    }

    @discardableResult
    private func train(_ config: TrainingConfig, resume: Bool = false) throws -> [Double] {
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator(), resume: resume)
        trainer.evaluateAtEnd = false
        trainer.verbose = false
        return try trainer.run().losses
    }

    private func iteration(of file: URL) throws -> Int {
        try TrainingCheckpoint.decode([UInt8](Data(contentsOf: file)), path: file.path).iteration
    }

    /// Checkpoints at 2, 4 and 6: the newest `keep` remain, newest first.
    func testTheNewestCheckpointsAreKeptNewestFirst() throws {
        let data = try TrainingFixtures.featureDataset()
        for (keep, expected) in [(1, [6]), (2, [6, 4]), (3, [6, 4, 2]), (5, [6, 4, 2])] {
            let run = TrainingFixtures.temporaryDirectory("keep-\(keep)")
            try train(config(data: data, run: run, iterations: 6, keep: keep))
            let directory = RunDirectory(path: run.path)
            let kept = try directory.checkpointGenerations().map { try iteration(of: $0.url) }
            XCTAssertEqual(kept, expected, "--keep-checkpoints \(keep)")
            XCTAssertEqual(directory.checkpointGenerations().map(\.generation), Array(0..<expected.count))
        }
    }

    /// A truncated newest checkpoint: the run resumes from the previous one (iteration 4), its
    /// log is trimmed to it, and it ends as the uninterrupted run does, bit for bit; the
    /// damaged file is set aside and the rotation goes on from the loaded one.
    func testATruncatedNewestCheckpointResumesFromThePreviousOne() throws {
        let data = try TrainingFixtures.featureDataset()
        let whole = try train(config(data: data, run: TrainingFixtures.temporaryDirectory("fallback-whole"), iterations: 10))
        let run = TrainingFixtures.temporaryDirectory("fallback")
        let first = try train(config(data: data, run: run, iterations: 6))
        let directory = RunDirectory(path: run.path)
        let newest = try Data(contentsOf: directory.checkpointURL)
        try newest.prefix(newest.count - 100).write(to: directory.checkpointURL)

        let found = try TrainingCheckpoint.readNewest(in: directory, comm: SingleProcessCommunicator())
        XCTAssertEqual(found.generation, 1)
        XCTAssertEqual(found.checkpoint.iteration, 4)
        let warning = try XCTUnwrap(found.warning)
        XCTAssertTrue(warning.contains("checkpoint.xbm (") && warning.contains("checkpoint.1.xbm at iteration 4"), warning)

        let second = try train(config(data: data, run: run, iterations: 10), resume: true)
        XCTAssertEqual(Array(first.prefix(4)) + second, whole, "iterations 4 to 9 run again, exactly as in the whole run")
        let log = try String(contentsOf: directory.metricsLogURL, encoding: .utf8)
        let logged = log.split(separator: "\n").compactMap { line -> Int? in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["loss"] == nil ? nil : object?["iter"] as? Int
        }
        XCTAssertEqual(logged, Array(1...10), "each iteration's loss logged once, in order")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.xbm.damaged").path))
        XCTAssertEqual(try directory.checkpointGenerations().map { try iteration(of: $0.url) }, [10, 8])
    }

    /// No checkpoint that loads: refused on resume, every file named with its reason.
    func testNoLoadableCheckpointIsRefusedNamingEachFile() throws {
        let data = try TrainingFixtures.featureDataset()
        let run = TrainingFixtures.temporaryDirectory("fallback-none")
        try train(config(data: data, run: run, iterations: 4))
        let directory = RunDirectory(path: run.path)
        for generation in [0, 1] {
            let file = directory.checkpointURL(generation: generation)
            try Data(try Data(contentsOf: file).prefix(64)).write(to: file)
        }
        XCTAssertThrowsError(try train(config(data: data, run: run, iterations: 8), resume: true)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("checkpoint.xbm: ") && text.contains("checkpoint.1.xbm: ") && text.contains("afresh"), text)
        }
    }
}
