import ArgumentParser
import Collectives
import Foundation
import TestSupport
@testable import XBMTraining
import XCTest
@testable import xbm_dist

/// README.md: options come from the command line, else from `--config`, else the defaults;
/// unknown config keys are errors; `config.json` can be fed back as `--config`.
final class ConfigTests: XCTestCase {
    private func file(_ text: String, extension suffix: String = "json") throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xbm-config-\(UUID().uuidString).\(suffix)")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func testDefaultsAreTheMeasuredRecipe() throws {
        let config = try TrainOptions.parse([]).configuration()
        XCTAssertEqual(config, TrainingConfig())
        XCTAssertEqual(config.optimization.lr, 1e-3)
        XCTAssertEqual(config.optimization.iters, 2400)
        XCTAssertEqual(config.optimization.milestones, [.fraction(0.75)])
        XCTAssertEqual(config.optimization.milestoneIterations, [1800])
        XCTAssertEqual(config.optimization.gamma, 0.1)
        XCTAssertEqual(config.memory.size, 16384)
        XCTAssertEqual(config.memory.start, .at(.fraction(0.75)))
        XCTAssertEqual(config.memoryStartIteration, 1800)
        XCTAssertEqual(config.memory.reduction, .mean)
        XCTAssertEqual(config.memory.weight, 1)
        XCTAssertEqual(config.optimization.batch, 64)
        XCTAssertEqual(config.optimization.instances, 4)
        XCTAssertEqual(config.optimization.optimizer, .adam)
        XCTAssertEqual(config.model.bn, .sync)
    }

    func testCommandLineOverridesFileOverridesDefaults() throws {
        let path = try file(#"{"xbm-size": 4096, "lr": 0.01, "loss": "triplet", "milestones": [10, 20]}"#)
        let config = try TrainOptions.parse(["--config", path, "--lr", "0.002", "--xbm-start", "auto"]).configuration()
        XCTAssertEqual(config.memory.size, 4096, "from the file")
        XCTAssertEqual(config.loss.kind, .triplet, "from the file")
        XCTAssertEqual(config.optimization.milestones, [.iteration(10), .iteration(20)], "from the file")
        XCTAssertEqual(config.optimization.lr, 0.002, "the command line wins")
        XCTAssertEqual(config.memory.start, .auto)
        XCTAssertEqual(config.optimization.iters, 2400, "the default")
    }

    func testYAMLFilesReadLikeJSONFiles() throws {
        let yaml = try file("""
        # a comment
        xbm-size: 4096
        loss: multi-similarity
        milestones: [10, "50%"]
        xbm-start: auto
        margin: null
        check-replicas: true
        """, extension: "yaml")
        let fromYAML = try TrainOptions.parse(["--config", yaml, "--lr", "0.002"]).configuration()
        let json = try file(#"{"xbm-size": 4096, "loss": "multi-similarity", "milestones": [10, "50%"], "xbm-start": "auto", "check-replicas": true}"#)
        XCTAssertEqual(fromYAML, try TrainOptions.parse(["--config", json, "--lr", "0.002"]).configuration())
        XCTAssertEqual(fromYAML.optimization.lr, 0.002, "the command line still wins")

        for (text, expected) in [("xbm-sise: 4096", "unknown key \"xbm-sise\" (did you mean \"xbm-size\"?)"),
                                 ("batch: big", "\"batch\""), ("- 1\n- 2", "expected a YAML mapping"),
                                 ("memory:\n  size: 4", "\"memory\""), ("a: [b", "not valid YAML")] {
            XCTAssertThrowsError(try TrainOptions.parse(["--config", try file(text, extension: "yml")]).configuration(), text) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
        }
        // The shipped recipes load and validate.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["default.yaml", "multi-similarity.yaml", "memory-gain.json"] {
            let config = try TrainingConfig.load(file: root.appendingPathComponent("configs/\(name)"))
            XCTAssertNoThrow(try config.validate(ranks: 4), name)
        }
        XCTAssertEqual(try TrainingConfig.load(file: root.appendingPathComponent("configs/default.yaml")), TrainingConfig(),
                       "configs/default.yaml spells out the defaults")
    }

    func testUnknownKeyIsAnErrorWithAHint() throws {
        let path = try file(#"{"xbm-sise": 4096}"#)
        XCTAssertThrowsError(try TrainOptions.parse(["--config", path]).configuration()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown key \"xbm-sise\"") && text.contains("xbm-size"), text)
        }
    }

    func testWrongTypeOrChoiceNamesTheKey() throws {
        for (json, key) in [(#"{"batch": "big"}"#, "batch"), (#"{"loss": "cosface"}"#, "loss"),
                            (#"{"xbm-start": "soon"}"#, "xbm-start"), (#"{"bn": "global"}"#, "bn")] {
            XCTAssertThrowsError(try TrainOptions.parse(["--config", try file(json)]).configuration(), json) { error in
                XCTAssertTrue("\(error)".contains("\"\(key)\""), "\(error)")
            }
        }
    }

    func testAChoiceOutsideItsValuesIsRefusedOnTheCommandLine() {
        for arguments in [["--bn", "global"], ["--loss", "cosface"], ["--xbm-reduce", "max"], ["--schedule", "linear"],
                          ["--model", "resnet"], ["--xbm-init", "zeros"], ["--optimizer", "lamb"]] {
            XCTAssertThrowsError(try TrainOptions.parse(arguments), "\(arguments)") { error in
                XCTAssertTrue(TrainOptions.message(for: error).contains(arguments[1]), TrainOptions.message(for: error))
            }
        }
    }

    func testWrittenConfigReadsBackToTheSameConfiguration() throws {
        var original = try TrainOptions.parse(["--loss", "lifted", "--margin", "0.3", "--xbm-start", "auto",
                                               "--recall-k", "1,5", "--check-replicas"]).configuration()
        original.run.seed = 42
        let path = try file(String(decoding: original.json(), as: UTF8.self))
        let reread = try TrainOptions.parse(["--config", path]).configuration()
        XCTAssertEqual(reread, original)
        // Every key the config writes is one the loader accepts, and the other way round
        // (optional keys are written only when set).
        original.optimization.scheduleIters = 5000
        original.model.initFrom = "runs/pretrain"
        original.model.initFromChecksum = "0123456789abcdef"
        let object = try JSONSerialization.jsonObject(with: original.json()) as! [String: Any]
        XCTAssertEqual(Set(object.keys), Set(TrainingConfig.keys))
    }

    func testRecallCutoffsAreSortedWithoutRepeatsOrRefused() throws {
        let config = try TrainOptions.parse(["--recall-k", "10,1", "--recall-k", "1,100"]).configuration()
        XCTAssertEqual(config.evaluation.recallK, [1, 10, 100])
        XCTAssertThrowsError(try TrainOptions.parse(["--recall-k", "1,0"]))
        XCTAssertThrowsError(try EvalCommand.parse(["--run-dir", "r", "--recall-k", "x"]))
        XCTAssertEqual(try EvalCommand.parse(["--run-dir", "r", "--recall-k", "5,1,5"]).recallK, [1, 5])
        // A config file cannot be normalised silently: a repeat there is an error.
        let repeated = try TrainOptions.parse(["--config", try file(#"{"recall-k": [1, 1]}"#)]).configuration()
        XCTAssertThrowsError(try repeated.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("twice"), "\($0)") }
    }

    func testCrossFieldRulesNameTheOptions() throws {
        func message(_ arguments: [String], ranks: Int = 1) -> String {
            do {
                try TrainOptions.parse(arguments).configuration().validate(ranks: ranks)
                return ""
            } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["--batch", "30", "--instances", "4"]).contains("not a multiple of --instances 4"))
        XCTAssertTrue(message(["--xbm-size", "32", "--batch", "64"]).contains("--xbm-size 32 is smaller than the global batch"))
        XCTAssertTrue(message(["--batch", "64"], ranks: 3).contains("not divisible by the 3 ranks"))
        XCTAssertTrue(message(["--batch", "16", "--instances", "4"], ranks: 8).contains("local batch 2"))
        XCTAssertTrue(message(["--schedule", "cosine", "--iters", "100", "--warmup", "100"]).contains("--warmup 100"))
        XCTAssertTrue(message(["--momentum", "1"]).contains("--momentum"))
        XCTAssertTrue(message(["--ms-beta", "0"]).contains("--ms-beta"))
        XCTAssertEqual(message(["--batch", "64"], ranks: 4), "")
    }

    /// Milestones and the memory start may be shares of --iters; they reach the built schedule
    /// and step as iterations of this run, and config.json keeps them relative.
    func testRelativeIterationPointsResolveAgainstIters() throws {
        let config = try TrainOptions.parse(["--iters", "3000", "--milestones", "50%,2900", "--xbm-start", "12.5%",
                                             "--schedule", "step"]).configuration()
        XCTAssertEqual(config.optimization.milestones, [.fraction(0.5), .iteration(2900)])
        XCTAssertEqual(config.optimization.milestoneIterations, [1500, 2900])
        XCTAssertEqual(config.memoryStartIteration, 375)
        let path = try file(String(decoding: config.json(), as: UTF8.self))
        XCTAssertTrue(String(decoding: config.json(), as: UTF8.self).contains("\"12.5%\""))
        let longer = try TrainOptions.parse(["--config", path, "--iters", "6000"]).configuration()
        XCTAssertEqual(longer.optimization.milestoneIterations, [3000, 2900], "a share stretches with --iters, an iteration does not")
        XCTAssertEqual(longer.memoryStartIteration, 750)

        let components = try TrainingComponents(config: config, sampleShape: [8], isImages: false, comm: SingleProcessCommunicator())
        XCTAssertEqual(components.step.memoryStart, 375)
        XCTAssertEqual(components.schedule.rate(at: 1499), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(components.schedule.rate(at: 1500), 1e-4, accuracy: 1e-10)
    }

    func testMalformedIterationPointsAreRefused() {
        for arguments in [["--milestones", "120%"], ["--milestones", "5.5"], ["--xbm-start", "half"], ["--milestones", "0.5"]] {
            XCTAssertThrowsError(try TrainOptions.parse(arguments), "\(arguments)") { error in
                let text = TrainOptions.message(for: error)
                XCTAssertTrue(text.contains(arguments[0]) || text.contains(arguments[1]), text)
            }
        }
        XCTAssertEqual(IterationPoint(parsing: "0%"), .fraction(0))
        XCTAssertEqual(IterationPoint(parsing: "100%")?.resolved(iterations: 2400), 2400)
        XCTAssertEqual(IterationPoint(parsing: "1/3"), nil)
    }
}
