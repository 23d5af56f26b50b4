import Collectives
@testable import DatasetImport
import TestSupport
import XBMData
import XBMTraining
import XCTest

/// An imported dataset's meta.json `recall_k` is the evaluation's default; --recall-k wins.
final class RecallProtocolTests: XCTestCase {
    func dataset(meta: [String: Any]) throws -> Dataset {
        let directory = try Fixtures.directory(self)
        try Dataset.write(directory: directory, images: [UInt8](repeating: 0, count: 4 * 3 * 2 * 2), imageShape: [3, 2, 2],
                          labels: [0, 0, 1, 1], split: [0, 0, 0, 0], meta: meta)
        return try Dataset.load(directory: directory)
    }

    func testMetaRecallKIsTheDefaultAndAnExplicitOneWins() throws {
        let vehicles = try dataset(meta: ["name": "v", "recall_k": ImportFormat.vehicleid.recallK])
        var evaluation = EvaluationConfig()
        XCTAssertNil(evaluation.recallK, "no --recall-k unless given")
        XCTAssertEqual(evaluation.recallCutoffs(for: vehicles), [1, 5])
        evaluation.recallK = [1, 2]
        XCTAssertEqual(evaluation.recallCutoffs(for: vehicles), [1, 2])

        let plain = try dataset(meta: ["name": "plain"])
        XCTAssertNil(plain.recallK)
        XCTAssertEqual(EvaluationConfig().recallCutoffs(for: plain), [1, 10, 100, 1000])
    }

    func testMetaRecallKIsSortedAndChecked() throws {
        XCTAssertEqual(try dataset(meta: ["recall_k": [8, 1, 4, 1]]).recallK, [1, 4, 8])
        for bad: Any in [[0, 1], [], "1,2", [1.5], [true]] {
            XCTAssertThrowsError(try dataset(meta: ["recall_k": bad]), "\(bad)") {
                XCTAssertTrue("\($0)".hasSuffix("meta.json: recall_k is not a list of positive integers; expected Recall@K cut-offs such as [1, 10, 100], or no recall_k"), "\($0)")
            }
        }
    }

    func testEveryFormatRecordsTheLiteraturesCutoffs() {
        XCTAssertEqual(ImportFormat.allCases.map(\.recallK), [[1, 10, 100, 1000], [1, 10, 20, 30, 40, 50], [1, 5], [1, 2, 4, 8], [1, 2, 4, 8]])
    }
}

/// The trainer's evaluation and `xbm-dist eval`'s (TrainedModel) take the dataset's recall_k
/// when the run gave no --recall-k.
final class RecallProtocolRunTests: XCTestCase {
    func testTrainingAndEvalUseTheDatasetsCutoffsUnlessTold() throws {
        let data = try TrainingFixtures.featureDataset()
        let metaURL = data.appendingPathComponent("meta.json")
        var meta = try JSONSerialization.jsonObject(with: Data(contentsOf: metaURL)) as! [String: Any]
        meta["recall_k"] = [3, 1]
        try JSONSerialization.data(withJSONObject: meta).write(to: metaURL)
        let run = TrainingFixtures.temporaryDirectory("recall")
        addTeardownBlock { try? FileManager.default.removeItem(at: run); try? FileManager.default.removeItem(at: data) }

        var config = TrainingFixtures.smallRun(data: data, iterations: 2)
        config.run.directory = run.path
        config.memory.size = 0
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator())
        trainer.verbose = false
        XCTAssertEqual(try trainer.run().finalMetrics?.recall.keys.sorted(), [1, 3])

        let model = try TrainedModel.load(runDirectory: run.path, data: nil, comm: SingleProcessCommunicator())
        XCTAssertEqual(try model.evaluate(ks: nil).recall.keys.sorted(), [1, 3])
        XCTAssertEqual(try model.evaluate(ks: [2]).recall.keys.sorted(), [2])
    }
}
