import Collectives
import Foundation
import TestSupport
import XBMTraining
import XCTest

/// Docs/reliability.md: `--resume` refuses to change what the checkpointed run computes unless
/// told to, and raising `--iters` keeps the schedule's length.
final class ResumePolicyTests: XCTestCase {
    private func config(data: URL, run: URL, iterations: Int) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: iterations)
        c.run.directory = run.path
        c.memory.size = 32
        c.optimization.milestones = [.fraction(0.5)]
        c.memory.start = .at(.fraction(0.5))
        return c
    }

    /// Trains `config` on one rank and returns the trainer (after its run).
    @discardableResult
    private func train(_ config: TrainingConfig, resume: Bool = false, overrides: Set<String> = []) throws -> Trainer {
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator(), resume: resume, resumeOverrides: overrides)
        trainer.evaluateAtEnd = false
        trainer.verbose = false
        _ = try trainer.run()
        return trainer
    }

    private func checkpointed(_ iterations: Int = 4) throws -> (data: URL, run: URL, config: TrainingConfig) {
        let data = try TrainingFixtures.featureDataset()
        let run = TrainingFixtures.temporaryDirectory("resume-policy")
        let c = config(data: data, run: run, iterations: iterations)
        try train(c)
        return (data, run, c)
    }

    func testAChangeOfMeaningIsRefusedWithEveryDifferenceNamed() throws {
        let (_, _, saved) = try checkpointed()
        var changed = saved
        changed.optimization.lr = 2e-3
        changed.loss.kind = .triplet
        changed.run.seed = 9
        XCTAssertThrowsError(try train(changed, resume: true)) { error in
            let text = "\(error)"
            for part in ["--lr 0.001 → 0.002", "--loss \"contrastive\" → \"triplet\"", "--seed 0 → 9", "--resume-override "] {
                XCTAssertTrue(text.contains(part), "missing \(part) in: \(text)")
            }
        }
        XCTAssertThrowsError(try train(changed, resume: true, overrides: ["lr", "loss"])) { error in
            XCTAssertTrue("\(error)".contains("--seed 0 → 9") && !"\(error)".contains("--lr"), "\(error)")
        }
        let resumed = try train(changed, resume: true, overrides: ["lr", "loss", "seed"])
        XCTAssertEqual(resumed.config.optimization.lr, 2e-3)
        XCTAssertEqual(resumed.config.loss.kind, .triplet)
    }

    func testWatchingOptionsMayChangeFreely() throws {
        let (_, _, saved) = try checkpointed()
        var changed = saved
        changed.run.logEvery = 1
        changed.evaluation.recallK = [1, 2]
        changed.run.checkpointEvery = 2
        XCTAssertNoThrow(try train(changed, resume: true))
    }

    func testRaisingItersKeepsTheScheduleLength() throws {
        let (_, _, saved) = try checkpointed(4)
        var longer = saved
        longer.optimization.iters = 8
        let resumed = try train(longer, resume: true)
        XCTAssertEqual(resumed.config.optimization.scheduleIters, 4)
        XCTAssertEqual(resumed.components.schedule.milestones, [2], "50% of the original 4 iterations")
        XCTAssertEqual(resumed.components.step.memoryStart, 2)

        // Told otherwise, the schedule stretches (and the step's memory start is the saved one).
        let (_, _, other) = try checkpointed(4)
        var stretched = other
        stretched.optimization.iters = 8
        stretched.optimization.scheduleIters = 8
        let resumedStretched = try train(stretched, resume: true)
        XCTAssertEqual(resumedStretched.components.schedule.milestones, [4])
        XCTAssertEqual(resumedStretched.components.step.memoryStart, 2, "a running memory does not pause")
    }

    /// A second resume whose request lacks schedule-iters (a --config file without it) and
    /// raises --iters again keeps the length the first part of the run gave the schedule.
    func testEveryResumeKeepsTheScheduleLengthUnlessAskedByValue() throws {
        let (_, _, saved) = try checkpointed(4)
        var longer = saved
        longer.optimization.iters = 8
        try train(longer, resume: true)
        var again = saved
        again.optimization.iters = 12
        again.optimization.scheduleIters = nil
        let resumed = try train(again, resume: true)
        XCTAssertEqual(resumed.config.optimization.scheduleIters, 4)
        XCTAssertEqual(resumed.components.schedule.milestones, [2], "50% of the original 4 iterations")
    }

    /// `--resume-override xbm-start` takes effect: from `auto` (not yet triggered) to a fixed
    /// start, and from a fixed start not yet reached to `auto`.
    func testAnOverriddenMemoryStartTakesEffect() throws {
        let data = try TrainingFixtures.featureDataset()
        var auto = config(data: data, run: TrainingFixtures.temporaryDirectory("resume-start-auto"), iterations: 4)
        auto.memory.start = .auto
        auto.memory.driftThreshold = 1e-9       // a training model drifts more: the memory waits
        auto.memory.driftEvery = 2
        try train(auto)
        var fixed = auto
        fixed.optimization.iters = 8
        fixed.memory.start = .at(.iteration(6))
        XCTAssertThrowsError(try train(fixed, resume: true), "a change of start needs the override")
        let resumed = try train(fixed, resume: true, overrides: ["xbm-start"])
        XCTAssertEqual(resumed.components.step.memoryStart, 6)
        XCTAssertEqual(resumed.components.step.memory?.count, 2 * 16, "iterations 6 and 7 enqueue their batches")

        var later = config(data: data, run: TrainingFixtures.temporaryDirectory("resume-start-fixed"), iterations: 4)
        later.memory.start = .at(.iteration(6))
        later.memory.driftThreshold = 1e-9
        later.memory.driftEvery = 2
        try train(later)
        var toAuto = later
        toAuto.memory.start = .auto
        XCTAssertEqual(try train(toAuto, resume: true, overrides: ["xbm-start"]).components.step.memoryStart, Int.max)
    }

    /// A share-valued start not yet reached moves with a stretched schedule, as the rate drops
    /// do; one already passed stays where it was (the existing test above).
    func testAStretchedScheduleMovesAStartNotYetReached() throws {
        let data = try TrainingFixtures.featureDataset()
        var first = config(data: data, run: TrainingFixtures.temporaryDirectory("resume-start-share"), iterations: 2)
        first.optimization.scheduleIters = 8                // start at 50%: iteration 4, not reached
        try train(first)
        var stretched = first
        stretched.optimization.iters = 16
        stretched.optimization.scheduleIters = 16
        let resumed = try train(stretched, resume: true)
        XCTAssertEqual(resumed.components.schedule.milestones, [8])
        XCTAssertEqual(resumed.components.step.memoryStart, 8)
    }

    func testOtherDataIsRefusedEvenUnderTheSamePath() throws {
        let (data, _, saved) = try checkpointed()
        // Rewrite the directory with other samples of the same shape.
        try FileManager.default.removeItem(at: data)
        let other = try TrainingFixtures.featureDataset(seed: 77)
        try FileManager.default.moveItem(at: other, to: data)
        XCTAssertThrowsError(try train(saved, resume: true)) { error in
            XCTAssertTrue("\(error)".contains("--data ") && "\(error)".contains("--resume-override data"), "\(error)")
        }
        XCTAssertNoThrow(try train(saved, resume: true, overrides: ["data"]))
    }

    /// The recorded --init-from checksum: kept for a request naming the same source without
    /// one; another source, or another checksum, is a change to refuse.
    func testTheRecordedInitFromChecksumIsKeptForTheSameSource() throws {
        var saved = TrainingConfig()
        saved.model.initFrom = "runs/pretrain"
        saved.model.initFromChecksum = "0123456789abcdef"
        var requested = saved
        requested.model.initFromChecksum = nil
        let kept = try ResumePolicy.reconcile(requested: requested, saved: saved, overrides: [], savedData: 1, currentData: 1)
        XCTAssertEqual(kept.config.model.initFromChecksum, "0123456789abcdef")
        requested.model.initFrom = "runs/other"
        XCTAssertThrowsError(try ResumePolicy.reconcile(requested: requested, saved: saved, overrides: [], savedData: 1, currentData: 1)) {
            XCTAssertTrue("\($0)".contains(#"--init-from "runs/pretrain" → "runs/other""#), "\($0)")
        }
        requested = saved
        requested.model.initFromChecksum = "fedcba9876543210"
        XCTAssertThrowsError(try ResumePolicy.reconcile(requested: requested, saved: saved, overrides: [], savedData: 1, currentData: 1)) {
            XCTAssertTrue("\($0)".contains("--init-from-checksum"), "\($0)")
        }
    }

    func testAnUnknownOverrideKeyIsRefused() throws {
        let (_, _, saved) = try checkpointed()
        XCTAssertThrowsError(try train(saved, resume: true, overrides: ["learning-rate"])) { error in
            XCTAssertTrue("\(error)".contains("--resume-override learning-rate") && "\(error)".contains("lr"), "\(error)")
        }
    }
}
