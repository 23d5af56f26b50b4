import ArgumentParser
import Collectives
import Foundation
import XBM
import XCTest
@testable import xbm_dist

/// README.md: options come from the command line, else from `--config`, else the defaults;
/// unknown config keys are errors; `config.json` can be fed back as `--config`.
final class ConfigTests: XCTestCase {
    private func file(_ json: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xbm-config-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: url)
        return url.path
    }

    func testDefaultsAreTheMeasuredRecipe() throws {
        let config = try TrainOptions.parse([]).effectiveConfig()
        XCTAssertEqual(config.lr, 1e-3)
        XCTAssertEqual(config.iters, 2400)
        XCTAssertEqual(config.milestones, [.fraction(0.75)])
        XCTAssertEqual(config.milestoneIterations, [1800])
        XCTAssertEqual(config.gamma, 0.1)
        XCTAssertEqual(config.xbmSize, 16384)
        XCTAssertEqual(config.xbmStart, .at(.fraction(0.75)))
        XCTAssertEqual(config.memoryStartIteration, 1800)
        XCTAssertEqual(config.xbmReduce, "mean")
        XCTAssertEqual(config.xbmWeight, 1)
        XCTAssertEqual(config.batch, 64)
        XCTAssertEqual(config.instances, 4)
        XCTAssertEqual(config.optimizer, "adam")
        XCTAssertEqual(config.bn, "sync")
    }

    func testCommandLineOverridesFileOverridesDefaults() throws {
        let path = try file(#"{"xbm-size": 4096, "lr": 0.01, "loss": "triplet", "milestones": [10, 20]}"#)
        let config = try TrainOptions.parse(["--config", path, "--lr", "0.002", "--xbm-start", "auto"]).effectiveConfig()
        XCTAssertEqual(config.xbmSize, 4096, "from the file")
        XCTAssertEqual(config.loss, "triplet", "from the file")
        XCTAssertEqual(config.milestones, [.iteration(10), .iteration(20)], "from the file")
        XCTAssertEqual(config.lr, 0.002, "the command line wins")
        XCTAssertEqual(config.xbmStart, .auto)
        XCTAssertEqual(config.iters, 2400, "the default")
    }

    func testUnknownKeyIsAnErrorWithAHint() throws {
        let path = try file(#"{"xbm-sise": 4096}"#)
        XCTAssertThrowsError(try TrainOptions.parse(["--config", path]).effectiveConfig()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown key \"xbm-sise\"") && text.contains("xbm-size"), text)
        }
    }

    func testWrongTypeNamesTheKey() throws {
        let path = try file(#"{"batch": "big"}"#)
        XCTAssertThrowsError(try TrainOptions.parse(["--config", path]).effectiveConfig()) { error in
            XCTAssertTrue("\(error)".contains("batch"), "\(error)")
        }
    }

    func testWrittenConfigReadsBackToTheSameConfiguration() throws {
        var original = try TrainOptions.parse(["--loss", "lifted", "--margin", "0.3", "--xbm-start", "auto",
                                               "--recall-k", "1,5", "--check-replicas"]).effectiveConfig()
        original.seed = 42
        let path = try file(String(decoding: original.json(), as: UTF8.self))
        let reread = try TrainOptions.parse(["--config", path]).effectiveConfig()
        XCTAssertEqual(reread, original)
        // Every key the config writes is one the loader accepts.
        let object = try JSONSerialization.jsonObject(with: original.json()) as! [String: Any]
        XCTAssertEqual(Set(object.keys), Set(TrainingConfig.keys))
    }

    func testCrossFieldRulesNameTheOptions() throws {
        func message(_ arguments: [String], ranks: Int = 1) -> String {
            do {
                try TrainOptions.parse(arguments).effectiveConfig().validate(ranks: ranks)
                return ""
            } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["--batch", "30", "--instances", "4"]).contains("not a multiple of --instances 4"))
        XCTAssertTrue(message(["--xbm-size", "32", "--batch", "64"]).contains("--xbm-size 32 is smaller than the global batch"))
        XCTAssertTrue(message(["--batch", "64"], ranks: 3).contains("not divisible by the 3 ranks"))
        XCTAssertTrue(message(["--batch", "16", "--instances", "4"], ranks: 8).contains("local batch 2"))
        XCTAssertTrue(message(["--bn", "global"]).contains("--bn must be sync or local"))
        XCTAssertEqual(message(["--batch", "64"], ranks: 4), "")
    }

    /// Milestones and the memory start may be shares of --iters; they reach the built schedule
    /// and step as iterations of this run, and config.json keeps them relative.
    func testRelativeIterationPointsResolveAgainstIters() throws {
        let config = try TrainOptions.parse(["--iters", "3000", "--milestones", "50%,2900", "--xbm-start", "12.5%",
                                             "--schedule", "step"]).effectiveConfig()
        XCTAssertEqual(config.milestones, [.fraction(0.5), .iteration(2900)])
        XCTAssertEqual(config.milestoneIterations, [1500, 2900])
        XCTAssertEqual(config.memoryStartIteration, 375)
        let path = try file(String(decoding: config.json(), as: UTF8.self))
        XCTAssertTrue(String(decoding: config.json(), as: UTF8.self).contains("\"12.5%\""))
        let longer = try TrainOptions.parse(["--config", path, "--iters", "6000"]).effectiveConfig()
        XCTAssertEqual(longer.milestoneIterations, [3000, 2900], "a share stretches with --iters, an iteration does not")
        XCTAssertEqual(longer.memoryStartIteration, 750)

        let components = try TrainingComponents(config: config, sampleShape: [8], isImages: false, comm: SingleProcessCommunicator())
        XCTAssertEqual(components.step.memoryStart, 375)
        XCTAssertEqual(components.schedule.rate(at: 1499), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(components.schedule.rate(at: 1500), 1e-4, accuracy: 1e-10)
    }

    func testMalformedIterationPointsAreRefused() {
        for arguments in [["--milestones", "120%"], ["--milestones", "5.5"], ["--xbm-start", "half"], ["--milestones", "0.5"]] {
            XCTAssertThrowsError(try TrainOptions.parse(arguments).effectiveConfig(), "\(arguments)") { error in
                XCTAssertTrue("\(error)".contains(arguments[0]) && "\(error)".contains("75%"), "\(error)")
            }
        }
        XCTAssertEqual(IterationPoint(parsing: "0%"), .fraction(0))
        XCTAssertEqual(IterationPoint(parsing: "100%")?.resolved(iterations: 2400), 2400)
        XCTAssertEqual(IterationPoint(parsing: "1/3"), nil)
    }
}
