import Collectives
import Foundation
import TestSupport
import XBMEval
@testable import XBMTraining
import XCTest

/// metrics.jsonl through its one typed record: what the trainer writes is what the record
/// declares, the plot finds every series in it, and the keys are the documented schema.
final class MetricsRecordTests: XCTestCase {
    /// Docs/evaluation.md's table of keys: scripts rely on these names.
    let documentedKeys = ["iter", "loss", "batch_loss", "memory_loss", "lr", "images_per_second",
                          "batch_active_pos", "batch_active_neg", "batch_hardest_neg", "batch_hardest_pos",
                          "memory_active_pos", "memory_active_neg", "memory_hardest_neg", "memory_hardest_pos",
                          "memory_age", "memory_active_neg_age", "drift", "memory_drift",
                          "memory_drift_compensated", "memory_drift_age", "MAP@R", "R-precision", "NMI", "AMI", "eval_seconds",
                          "memory_count", "queries", "skipped_queries", "R@K"]

    func testTheKeysAreTheDocumentedSchema() {
        XCTAssertEqual(Set(MetricsRecord.keys), Set(documentedKeys))
        XCTAssertEqual(MetricsRecord.keys.count, documentedKeys.count, "a key declared twice")
    }

    func testALineByHand() throws {
        let line = #"{"R@1":90.5,"R@10":99,"batch_hardest_neg":0.25,"drift":0.125,"iter":5,"memory_count":40}"#
        let record = try JSONDecoder().decode(MetricsRecord.self, from: Data(line.utf8))
        var expected = MetricsRecord(iteration: 5)
        expected.recall = [1: 90.5, 10: 99]
        expected.batch.hardestNegative = 0.25
        expected.drift = 0.125
        expected.memoryCount = 40
        XCTAssertEqual(record, expected)
        XCTAssertEqual(String(decoding: try record.jsonLine(), as: UTF8.self), line + "\n")
        XCTAssertEqual(record.scalars, ["R@1": 90.5, "R@10": 99, "batch_hardest_neg": 0.25, "drift": 0.125, "memory_count": 40])
    }

    func testALineWithoutAnIterationIsNotARecord() {
        XCTAssertEqual(MetricsRecord.records(inLog: "{\"loss\": 1}\n{\"iter\": 2, \"loss\": 0.5}\n{\"iter\": 3, \"lo").count, 1)
    }

    /// A real run with the memory, drift measurements, evaluations and a rate drop: every line
    /// it wrote decodes and re-encodes to the same object (nothing the trainer wrote is unknown
    /// to the record), and the plot has data in every series.
    func testTheTrainersLogRoundTripsAndThePlotFindsEverySeries() throws {
        let run = TrainingFixtures.temporaryDirectory("metrics-record")
        var c = TrainingFixtures.smallRun(data: try TrainingFixtures.featureDataset(), iterations: 12)
        c.run.directory = run.path
        c.run.logEvery = 1
        c.memory.size = 48
        c.memory.driftEvery = 4
        c.evaluation.every = 6
        c.optimization.milestones = [.iteration(8)]
        var object = try JSONSerialization.jsonObject(with: c.json()) as! [String: Any]
        object["xbm-start"] = 3
        let config = try JSONDecoder().decode(TrainingConfig.self, from: JSONSerialization.data(withJSONObject: object))
        _ = try SimulatedRanks.run(size: 2) { comm in
            let trainer = try Trainer(config: config, comm: comm)
            trainer.verbose = false
            return try trainer.run().losses
        }

        let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        let records = MetricsRecord.records(inLog: text)
        XCTAssertEqual(records.count, lines.count, "a line that is not a record")
        var written = Set<String>()
        for (line, record) in zip(lines, records) {
            let original = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let again = try JSONSerialization.jsonObject(with: record.jsonLine()) as! [String: Any]
            XCTAssertEqual(NSDictionary(dictionary: original), NSDictionary(dictionary: again), String(line))
            written.formUnion(original.keys.map { $0.hasPrefix("R@") ? "R@K" : $0 })
        }
        XCTAssertEqual(written.subtracting(documentedKeys), [], "keys written but not documented")

        let plot = TrainingPlot(title: "t", metricsLog: text)
        let d = plot.diagnostics
        let series: [(String, Int)] = [
            ("loss", plot.loss.count), ("R@1", plot.recallAtOne.count), ("batch term", d.batchTerm.count),
            ("memory term", d.memoryTerm.count), ("batch hardest negative", d.batchHardestNegative.count),
            ("memory hardest negative", d.memoryHardestNegative.count), ("batch active negatives", d.batchActiveNegatives.count),
            ("memory active negatives", d.memoryActiveNegatives.count), ("drift", d.drift.count),
        ]
        for (name, count) in series { XCTAssertGreaterThan(count, 0, "the plot found no \(name)") }
        // Step 3 is the memory's first: its line is iteration 4. Evaluations at 6 and 12.
        XCTAssertEqual(d.memoryStart, 4)
        XCTAssertEqual(plot.recallAtOne.map(\.iteration), [6, 12])
        XCTAssertEqual(d.rateDrops.map(\.iteration), [9], "the rate drops at step 8, logged as iteration 9")
    }
}
