import Collectives
import Foundation
import TestSupport
import XBMKernels
import XBMModel
import XBMTraining
import XCTest

/// The per-iteration pair diagnostics of metrics.jsonl (Docs/losses.md, Diagnostics): the
/// same statistics on every rank and on 1, 2 or 4 ranks, the memory's keys exactly when the
/// memory term runs, memory ages worked out by hand, and an exact continuation on resume.
final class DiagnosticsTests: XCTestCase {
    // MARK: - The objective

    /// The memory term's statistics through `CrossBatchObjective`, by hand, on 1 and 2 ranks.
    ///
    ///     memory slot   row         label  stamp  age at clock 3
    ///     0             (1, 0)      5      0      3
    ///     1             (0, 1)      6      0      3
    ///     2             a0 (1, 0)   1      1      2      a0's own entry
    ///     3             a1 (.6,.8)  2      1      2      a1's own entry
    ///
    /// Contrastive (m 0.5). Memory term: a0 sees slot 0 (s 1, active), slot 1 (0), slot 3 (.6,
    /// active); a1 sees slot 0 (.6), slot 1 (.8), slot 2 (.6), all active → 5 active negatives
    /// of ages 3 + 2 + 3 + 3 + 2 = 13; hardest negatives 1 and .8; no positives.
    /// Batch term: a0 and a1 are each other's only negative, s .6 → 2 active, hardest .6 each.
    func testObjectiveStatisticsByHandOnOneAndTwoRanks() throws {
        let batch: [Float] = [1, 0, 0.6, 0.8], labels: [Int32] = [1, 2]
        for ranks in [1, 2] {
            let sums = try SimulatedRanks.run(size: ranks) { comm -> (PairStatistics, PairStatistics?) in
                let memory = CrossBatchMemory(capacity: 4, dimension: 2)
                memory.clock = 0
                try memory.enqueue(embeddings: [1, 0, 0, 1], labels: [5, 6], count: 2)
                memory.clock = 1
                try memory.enqueue(embeddings: batch, labels: labels, count: 2)
                memory.clock = 3
                let objective = CrossBatchObjective(loss: makePairLoss(.contrastive), memoryWeight: 1, memoryReduction: .mean,
                                                    globalBatch: 2, rank: comm.rank, ranks: comm.size)
                var gradient = [Float](repeating: 0, count: 4)
                let result = objective.accumulate(embeddings: batch, labels: labels, dimension: 2, memory: memory,
                                                  gradient: &gradient)
                return (result.batchStatistics, result.memoryStatistics)
            }
            let batchTerm = sums.map(\.0).reduce(PairStatistics(), +)
            let memoryTerm = sums.map { $0.1! }.reduce(PairStatistics(), +)
            let context = "\(ranks) ranks"
            XCTAssertEqual(batchTerm.anchors, 2, context)
            XCTAssertEqual(batchTerm.activeNegatives, 2, context)
            XCTAssertEqual(batchTerm.activePositives, 0, context)
            XCTAssertEqual(batchTerm.meanHardestNegative!, 0.6, accuracy: 1e-6, context)
            XCTAssertEqual(batchTerm.activeNegativeAgeSum, 0, "the batch has no stamps")
            XCTAssertEqual(memoryTerm.anchors, 2, context)
            XCTAssertEqual(memoryTerm.activeNegatives, 5, context)
            XCTAssertEqual(memoryTerm.activePositives, 0, context)
            XCTAssertEqual(memoryTerm.activeNegativeAgeSum, 13, context)
            XCTAssertEqual(memoryTerm.meanActiveNegativeAge!, 2.6, accuracy: 1e-12, context)
            XCTAssertEqual(memoryTerm.meanHardestNegative!, 0.9, accuracy: 1e-6, context)
            XCTAssertNil(memoryTerm.meanHardestPositive, context)
        }
    }

    // MARK: - The step

    struct StepDiagnostics: Sendable {
        var batch: PairStatistics
        var memory: PairStatistics?
        var memoryAge: Double?
    }

    /// Six steps of the same global batches (features, P × K labels) on `ranks` ranks, memory
    /// from step 2.
    func steps(ranks: Int, loss: LossKind) throws -> [[StepDiagnostics]] {
        var c = TrainingFixtures.smallRun(data: URL(fileURLWithPath: "/unused"), iterations: 6)
        c.loss.kind = loss
        c.memory.size = 40
        c.optimization.optimizer = .sgd
        c.optimization.lr = 0.05
        c.optimization.schedule = .constant
        let config = c, B = c.optimization.batch, features = 16
        var random = RandomSource(seed: 21)
        let inputs = (0..<6).map { _ in (0..<(B * features)).map { _ in Float(random.nextNormal()) } }
        return try SimulatedRanks.run(size: ranks) { comm in
            let components = try TrainingComponents(config: config, sampleShape: [features], isImages: false, comm: comm)
            let step = components.step
            step.memoryStart = 2
            try step.initializeParameters(seed: 3)
            let b = step.localBatch
            var out: [StepDiagnostics] = []
            for iteration in 0..<6 {
                let labels = (0..<B).map { Int32($0 / config.optimization.instances + 10 * (iteration % 3)) }
                let local = Array(inputs[iteration][(comm.rank * b * features)..<((comm.rank + 1) * b * features)])
                let result = try step.run(input: local, labels: labels, iteration: iteration, learningRate: 0.05, stopRequested: false)
                out.append(StepDiagnostics(batch: result.batchStatistics, memory: result.memoryStatistics, memoryAge: result.memoryAge))
            }
            return out
        }
    }

    func assertSame(_ a: PairStatistics, _ b: PairStatistics, _ context: String) {
        // Counts are exact; the sums of similarities are Float sums in another order.
        XCTAssertEqual([a.anchors, a.activePositives, a.activeNegatives, a.anchorsWithNegatives, a.anchorsWithPositives,
                        a.activeNegativeAgeSum],
                       [b.anchors, b.activePositives, b.activeNegatives, b.anchorsWithNegatives, b.anchorsWithPositives,
                        b.activeNegativeAgeSum], context)
        XCTAssertEqual(a.hardestNegativeSum, b.hardestNegativeSum, accuracy: 1e-5 * max(1, abs(b.hardestNegativeSum)), context)
        XCTAssertEqual(a.hardestPositiveSum, b.hardestPositiveSum, accuracy: 1e-5 * max(1, abs(b.hardestPositiveSum)), context)
    }

    func testStatisticsAreTheSameOnEveryRankAndOnOneTwoAndFourRanks() throws {
        for loss in [LossKind.contrastive, .multiSimilarity] {
            let reference = try steps(ranks: 1, loss: loss)[0]
            for (iteration, step) in reference.enumerated() {
                XCTAssertEqual(step.batch.anchors, 16)
                XCTAssertEqual(step.batch.anchorsWithNegatives, 16, "every anchor of a P × K batch has negatives")
                XCTAssertEqual(step.batch.anchorsWithPositives, 16)
                XCTAssertEqual(step.memory == nil, iteration < 2, "\(loss): memory statistics exactly from the start")
                XCTAssertEqual(step.memoryAge == nil, iteration < 2)
            }
            XCTAssertGreaterThan(reference.compactMap(\.memory).map(\.activeNegatives).reduce(0, +), 0, "\(loss): vacuous")
            // Batches of 16 into 40 rows from step 2: ages 0; 16·1/32; then (16·1 + 8·2)/40 = 0.8.
            XCTAssertEqual(reference.compactMap(\.memoryAge), [0, 0.5, 0.8, 0.8])
            for ranks in [2, 4] {
                let runs = try steps(ranks: ranks, loss: loss)
                for (rank, run) in runs.enumerated() {
                    for (iteration, (step, expected)) in zip(run, reference).enumerated() {
                        let context = "\(loss), \(ranks) ranks, rank \(rank), iteration \(iteration)"
                        // Every rank holds the allreduced values, bit for bit.
                        XCTAssertEqual(step.batch, runs[0][iteration].batch, context)
                        XCTAssertEqual(step.memory, runs[0][iteration].memory, context)
                        assertSame(step.batch, expected.batch, context + ", batch")
                        XCTAssertEqual(step.memory == nil, expected.memory == nil, context)
                        if let memory = step.memory, let expected = expected.memory { assertSame(memory, expected, context + ", memory") }
                        XCTAssertEqual(step.memoryAge, expected.memoryAge, context)
                    }
                }
            }
        }
    }

    // MARK: - metrics.jsonl

    /// `config` with `--xbm-start` set through the configuration file's JSON.
    func starting(_ config: TrainingConfig, at start: Int) throws -> TrainingConfig {
        var object = try JSONSerialization.jsonObject(with: config.json()) as! [String: Any]
        object["xbm-start"] = start
        return try JSONDecoder().decode(TrainingConfig.self, from: JSONSerialization.data(withJSONObject: object))
    }

    func config(iterations: Int, runDirectory: URL, fill: Bool = false, memory: Int = 40) throws -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: try TrainingFixtures.featureDataset(), iterations: iterations)
        c.run.directory = runDirectory.path
        c.loss.kind = .contrastive
        c.optimization.schedule = .constant    // the same rates whatever --iters (the resume test changes it)
        c.memory.size = memory
        c.memory.initialization = fill ? .fill : .none
        c.run.logEvery = 1
        c.run.seed = 6
        return try starting(c, at: 3)
    }

    func train(_ config: TrainingConfig, ranks: Int, resume: Bool = false) throws {
        _ = try SimulatedRanks.run(size: ranks) { comm in
            let trainer = try Trainer(config: config, comm: comm, resume: resume)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            return try trainer.run().losses
        }
    }

    /// The logged iterations of a run directory's metrics.jsonl, by iteration.
    func log(_ runDirectory: URL) throws -> [Int: [String: Any]] {
        let text = try String(contentsOf: runDirectory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        var lines: [Int: [String: Any]] = [:]
        for line in text.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if object["loss"] != nil { lines[object["iter"] as! Int] = object }
        }
        return lines
    }

    let batchKeys = ["batch_active_pos", "batch_active_neg", "batch_hardest_neg", "batch_hardest_pos"]
    let memoryKeys = ["memory_active_pos", "memory_active_neg", "memory_hardest_neg", "memory_hardest_pos", "memory_age"]

    func testLoggedKeysAndMemoryAgesByHand() throws {
        let run = TrainingFixtures.temporaryDirectory("diagnostics")
        try train(try config(iterations: 7, runDirectory: run), ranks: 2)
        let lines = try log(run)
        XCTAssertEqual(lines.keys.sorted(), Array(1...7))
        for (iter, line) in lines {
            for key in batchKeys { XCTAssertNotNil(line[key] as? Double, "iter \(iter): \(key)") }
            // Step iter − 1 ran; the memory starts at step 3, i.e. the line of iter 4.
            for key in memoryKeys { XCTAssertEqual(line[key] != nil, iter >= 4, "iter \(iter): \(key)") }
            XCTAssertEqual(line["batch_active_pos"] as! Double, 3, "contrastive: every positive of a 4-instance class is active")
        }
        // 16 rows per step into 40: ages 0; (16·1)/32; (16·1 + 8·2)/40 from then on.
        XCTAssertEqual([4, 5, 6, 7].map { lines[$0]!["memory_age"] as! Double }, [0, 0.5, 0.8, 0.8])
        // At the memory's first step every row is the current batch (age 0).
        if let age = lines[4]!["memory_active_neg_age"] as? Double { XCTAssertEqual(age, 0) }
        for iter in 5...7 {
            guard let age = lines[iter]!["memory_active_neg_age"] as? Double else { continue }
            XCTAssertTrue((0...2).contains(age), "iter \(iter): active negatives' age \(age) outside the memory's 0…2")
        }
        // The memory holds the batch itself: each anchor's other positives are in it too.
        XCTAssertGreaterThanOrEqual(lines[4]!["memory_active_pos"] as! Double, 3)
    }

    func testFilledMemoryIsAsFreshAsTheBatch() throws {
        // The fill before step 3 embeds with the same model as step 3's batch: age 0 for all;
        // one step later the 16 newest rows are 0 and the other 24 are 1 → 0.6.
        let run = TrainingFixtures.temporaryDirectory("fill-age")
        try train(try config(iterations: 5, runDirectory: run, fill: true), ranks: 1)
        let lines = try log(run)
        XCTAssertEqual(lines[4]!["memory_age"] as? Double, 0)
        XCTAssertEqual(lines[5]!["memory_age"] as! Double, 0.6, accuracy: 1e-12)
    }

    func testResumeContinuesTheDiagnosticsExactly() throws {
        // Resumed after step 4 with 64 rows: the memory holds 16 rows stamped 4 and 48 stamped
        // 3 (step 3's batch and the fill, embedded by one model). A checkpoint without the
        // stamps would give them 3, 2 and 1 (one batch per iteration), and the 32 of them that
        // outlive the next step would log other ages.
        let whole = TrainingFixtures.temporaryDirectory("whole")
        try train(try config(iterations: 9, runDirectory: whole, fill: true, memory: 64), ranks: 2)
        let split = TrainingFixtures.temporaryDirectory("split")
        try train(try config(iterations: 5, runDirectory: split, fill: true, memory: 64), ranks: 2)
        try train(try config(iterations: 9, runDirectory: split, fill: true, memory: 64), ranks: 2, resume: true)
        let (a, b) = (try log(whole), try log(split))
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for iter in a.keys.sorted() {
            var x = a[iter]!, y = b[iter]!
            x["images_per_second"] = nil; y["images_per_second"] = nil
            XCTAssertEqual(NSDictionary(dictionary: x), NSDictionary(dictionary: y), "iter \(iter)")
        }
        XCTAssertNotNil(b[6]?["memory_active_neg"], "vacuous: no memory after the resume")
    }

    func testPlotOfARunShowsTheDiagnostics() throws {
        let run = TrainingFixtures.temporaryDirectory("diagnostics-plot")
        try train(try config(iterations: 6, runDirectory: run), ranks: 1)
        let svg = try String(contentsOf: run.appendingPathComponent("curves.svg"), encoding: .utf8)
        for label in ["hardest negative similarity", "active negatives / anchor", "memory on"] {
            XCTAssertTrue(svg.contains(label), label)
        }
    }
}
