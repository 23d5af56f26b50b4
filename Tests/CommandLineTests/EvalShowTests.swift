import ArgumentParser
import Collectives
import Foundation
import TestSupport
import XBMData
import XBMEval
import XBMTraining
import XCTest
@testable import xbm_dist

/// `xbm-dist eval` end to end, in this process: the trainer's final evaluation records NMI and
/// AMI, and `eval --show`'s job (what `run` launches on every rank) on 2 simulated ranks writes
/// one PNG of the picture's size (rank 0 alone draws it; RetrievalPictureTests checks its
/// pixels), while a feature dataset is refused before any work. (The launcher itself is not
/// used: after MPISingletonTests this process looks launched by mpirun to it.)
final class EvalShowTests: XCTestCase {
    func trainedRun(data: URL) throws -> URL {
        let run = TrainingFixtures.temporaryDirectory("eval-show")
        addTeardownBlock { try? FileManager.default.removeItem(at: run); try? FileManager.default.removeItem(at: data) }
        var config = TrainingFixtures.smallRun(data: data, iterations: 2)
        config.run.directory = run.path
        config.memory.size = 0
        config.optimization.batch = 8
        config.optimization.instances = 2
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator())
        trainer.verbose = false
        let outcome = try trainer.run()
        XCTAssertNotNil(outcome.finalMetrics?.clustering, "the final evaluation clusters")
        return run
    }

    func testTheFinalEvaluationRecordsNMIAndAMI() throws {
        let run = try trainedRun(data: try TrainingFixtures.featureDataset())
        let record = try JSONDecoder().decode(MetricsRecord.self, from: Data(contentsOf: run.appendingPathComponent("metrics.json")))
        let nmi = try XCTUnwrap(record.nmi), ami = try XCTUnwrap(record.ami)
        XCTAssertTrue((0...100).contains(nmi) && ami <= 100, "NMI \(nmi), AMI \(ami)")
        // The log's evaluation line holds them too; the periodic evaluations (none here) would not.
        let log = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(MetricsRecord.records(inLog: log).compactMap(\.nmi), [nmi])
    }

    func testShowWritesThePictureOnTwoRanks() throws {
        let data = try TrainingFixtures.imageDataset()
        let run = try trainedRun(data: data)
        let out = run.appendingPathComponent("retrieval.png")
        let job = try EvalCommand.parse(["--run-dir", run.path, "--show", "3", "--neighbours", "2", "--no-clustering"]).job
        XCTAssertEqual(job.out, out, "--out defaults to the run directory's retrieval.png")
        _ = try SimulatedRanks.run(size: 2) { try job.run(comm: $0) }
        let png = try [UInt8](Data(contentsOf: out))
        XCTAssertEqual(Array(png.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10])
        func bigEndian(_ i: Int) -> Int { Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3]) }
        // Three rows of a query and 2 neighbours, 32 × 32 samples at scale 2 (test split: 2 classes of 4).
        let dataset = try Dataset.load(directory: data)
        let row = RetrievalExample(row: 0, label: 0, neighbours: [.init(row: 1, label: 0, similarity: 1), .init(row: 2, label: 0, similarity: 1)])
        let layout = try RetrievalPicture(examples: [row, row, row], dataset: dataset)
        XCTAssertEqual([bigEndian(16), bigEndian(20), Int(png[25])], [layout.width, layout.height, 2], "width, height, RGB")
    }

    func testFeatureDatasetsAreRefusedBeforeAnyWork() throws {
        let data = try TrainingFixtures.featureDataset()
        let run = try trainedRun(data: data)
        let out = run.appendingPathComponent("picture.png")
        let job = try EvalCommand.parse(["--run-dir", run.path, "--show", "2", "--out", out.path]).job
        XCTAssertThrowsError(try SimulatedRanks.run(size: 2) { try job.run(comm: $0) }) { error in
            XCTAssertEqual(error as? EvaluationError, .noImagesToShow(try! Dataset.load(directory: data).directory.path), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }

    func testShowOptionsAreChecked() {
        XCTAssertThrowsError(try EvalCommand.parse(["--run-dir", "r", "--show", "0"]))
        XCTAssertThrowsError(try EvalCommand.parse(["--run-dir", "r", "--show", "2", "--neighbours", "0"]))
        XCTAssertThrowsError(try EvalCommand.parse(["--run-dir", "r", "--show-failures"]))
        XCTAssertThrowsError(try EvalCommand.parse(["--run-dir", "r", "--out", "x.png"]))
        XCTAssertNoThrow(try EvalCommand.parse(["--run-dir", "r", "--show", "2", "--show-failures", "--out", "x.png"]))
    }
}
