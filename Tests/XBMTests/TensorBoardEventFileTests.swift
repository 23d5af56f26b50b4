import Collectives
import Foundation
import TestSupport
@testable import XBMFormats
@testable import XBMTraining
import XCTest

/// The event file of a run directory (Docs/evaluation.md): TensorFlow's bytes, every number of
/// every metrics.jsonl record as a scalar at the record's "iter", a new file per start or resume.
final class TensorBoardEventFileTests: XCTestCase {
    private func scalars(_ event: Tensorflow_Event) -> [String: Float] {
        var scalars: [String: Float] = [:]
        for entry in event.summary.value {
            guard case .simpleValue(let value)? = entry.value else { XCTFail("\(entry.tag) has no simple_value"); continue }
            scalars[entry.tag] = value
        }
        return scalars
    }

    /// The events of an event file, which must hold whole, sound records only.
    private func events(in file: URL) throws -> [Tensorflow_Event] {
        let bytes = try [UInt8](Data(contentsOf: file))
        let (records, end) = TFRecord.read(bytes)
        XCTAssertEqual(end, bytes.count, "\(file.lastPathComponent) ends in a torn or damaged record")
        return try records.map { try Tensorflow_Event(serializedBytes: $0) }
    }

    private func eventFiles(in directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("tfevents") }.sorted()
    }

    private func loggedIterations(_ run: RunDirectory) throws -> [Int] {
        try String(contentsOf: run.metricsLogURL, encoding: .utf8).split(separator: "\n").map { line in
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["iter"] as? Int ?? -1
        }
    }

    /// Expected bytes from tensorboard 2.21's `event_pb2.Event`, serialised and framed by its
    /// `RecordWriter`: the hand-made .proto has TensorFlow's field numbers and oneofs.
    func testEventsAreTheBytesOfTensorBoardsOwnWriter() throws {
        let header = try TensorBoardEventFile.header(at: Date(timeIntervalSince1970: 1_700_000_000.25))
        XCTAssertEqual(hexString(header), "1800000000000000a37f4b220900001040fc54d9411a0d627261696e2e4576656e743a32338d2fe9")
        // memory_loss = 0 is written: simple_value sits in a oneof, so proto3 keeps its presence.
        let step = try TensorBoardEventFile.scalars(["loss": 0.5, "memory_loss": 0, "R@1": 87.5], step: 7,
                                                    at: Date(timeIntervalSince1970: 1_700_000_000.5))
        XCTAssertEqual(hexString(step), "3a000000000000001295eae20900002040fc54d94110072a2d0a0a0a03524031150000af420a0b0a046c6f"
                                        + "7373150000003f0a120a0b6d656d6f72795f6c6f737315000000008f2b5436")
    }

    func testTheFileIsNamedAsTensorFlowNamesIt() {
        XCTAssertEqual(TensorBoardEventFile.name(createdAt: Date(timeIntervalSince1970: 1_700_000_000.9), host: "node7"),
                       "events.out.tfevents.1700000000.node7")
    }

    func testEveryNumberOfEveryRecordIsAScalarAtItsIteration() throws {
        let run = RunDirectory(path: TrainingFixtures.temporaryDirectory("tensorboard").path)
        try run.prepare(resumingAt: nil)
        let file = try XCTUnwrap(run.eventFileURL)
        XCTAssertTrue(file.lastPathComponent.hasPrefix("events.out.tfevents."), file.lastPathComponent)
        XCTAssertEqual(file.deletingLastPathComponent().standardizedFileURL, run.url.standardizedFileURL)

        let records = try [
            #"{"iter": 1, "loss": 0.75, "lr": 0.001, "memory_count": 0, "batch_active_pos": 3.5}"#,
            #"{"iter": 10, "drift": 0.0125}"#,
            #"{"iter": 10, "R@1": 62.5, "MAP@R": 31.25, "eval_seconds": 0.5}"#,
        ].map { try JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8)) }
        let expected: [[String: Float]] = [
            ["loss": 0.75, "lr": 0.001, "memory_count": 0, "batch_active_pos": 3.5],
            ["drift": 0.0125],
            ["R@1": 62.5, "MAP@R": 31.25, "eval_seconds": 0.5],
        ]
        for (written, record) in records.enumerated() {
            try run.append(record)
            // On disk at once, as whole records: a run killed now loses nothing it logged.
            XCTAssertEqual(try events(in: file).count, 1 + written + 1)
        }
        let events = try events(in: file)
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        XCTAssertEqual(events.first?.step, 0)
        XCTAssertEqual(events.dropFirst().map(\.step), [1, 10, 10])
        XCTAssertEqual(events.dropFirst().map(scalars), expected)
        let now = Date().timeIntervalSince1970
        for event in events { XCTAssertEqual(event.wallTime, now, accuracy: 60) }
        XCTAssertEqual(try loggedIterations(run), [1, 10, 10])
    }

    func testAResumeKeepsTheEventsUpToItsCheckpointAndBeginsAFile() throws {
        let directory = TrainingFixtures.temporaryDirectory("tensorboard-resume")
        let killed = RunDirectory(path: directory.path)
        try killed.prepare(resumingAt: nil)
        for iteration in 1...3 { try killed.append(record(iteration, loss: Double(iteration))) }
        let killedFile = try XCTUnwrap(killed.eventFileURL)
        let torn = try FileHandle(forWritingTo: killedFile)   // killed while writing a fourth record
        try torn.seekToEnd()
        try torn.write(contentsOf: Data(TensorBoardEventFile.scalars(["loss": 4], step: 4).prefix(20)))
        try torn.close()

        // Resumed from the checkpoint at 2, probably within the same second: a name of its own.
        let resumed = RunDirectory(path: directory.path)
        try resumed.prepare(resumingAt: 2)
        try resumed.append(record(3, loss: 30))
        let resumedFile = try XCTUnwrap(resumed.eventFileURL)
        XCTAssertEqual(try eventFiles(in: directory), [killedFile.lastPathComponent, resumedFile.lastPathComponent],
                       "TensorBoard reads the files in name order: the resumed run's last")
        XCTAssertEqual(try events(in: killedFile).map(\.step), [0, 1, 2])
        XCTAssertEqual(try events(in: resumedFile).map(\.step), [0, 3])
        XCTAssertEqual(try events(in: resumedFile).last.map(scalars), ["loss": 30])
        XCTAssertEqual(try loggedIterations(resumed), [1, 2, 3])
    }

    func testANewRunRemovesTheEventFilesOfAnEarlierOne() throws {
        let directory = TrainingFixtures.temporaryDirectory("tensorboard-restart")
        for _ in 0..<2 { try RunDirectory(path: directory.path).prepare(resumingAt: nil) }
        let restarted = RunDirectory(path: directory.path)
        try restarted.prepare(resumingAt: nil)
        XCTAssertEqual(try eventFiles(in: directory), [try XCTUnwrap(restarted.eventFileURL).lastPathComponent])
    }

    /// A short run with drift and evaluations: the event file holds exactly what metrics.jsonl
    /// holds, record for record (JSONSerialization reads a number back to within a unit in the
    /// last place of a Double, so float32 values agree to one unit in the last place).
    func testATrainedRunsEventFileHoldsItsMetricsLog() throws {
        var config = TrainingFixtures.smallRun(data: try TrainingFixtures.featureDataset(), iterations: 8)
        config.run.directory = TrainingFixtures.temporaryDirectory("tensorboard-run").path
        config.run.logEvery = 2
        config.evaluation.every = 4
        config.memory.size = 32
        config.memory.driftEvery = 4
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator())
        trainer.verbose = false
        _ = try trainer.run()

        let run = RunDirectory(path: config.run.directory)
        let files = try eventFiles(in: run.url)
        XCTAssertEqual(files.count, 1)
        let events = try events(in: run.url.appendingPathComponent(files[0])).dropFirst()
        let lines = try String(contentsOf: run.metricsLogURL, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(events.count, lines.count)
        XCTAssertTrue(lines.contains { $0.contains("\"R@1\"") } && lines.contains { $0.contains("\"drift\"") })
        for (event, line) in zip(events, lines) {
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(event.step, Int64(try XCTUnwrap(record["iter"] as? Int)))
            let numbers = record.filter { $0.key != "iter" }.compactMapValues { ($0 as? NSNumber)?.floatValue }
            let written = scalars(event)
            XCTAssertEqual(Set(written.keys), Set(numbers.keys), String(line))
            for (tag, value) in numbers {
                XCTAssertEqual(written[tag] ?? .nan, value, accuracy: value.ulp, "\(tag) at \(event.step)")
            }
        }
    }

    func record(_ iteration: Int, loss: Double) -> MetricsRecord {
        var record = MetricsRecord(iteration: iteration)
        record.loss = loss
        return record
    }
}
