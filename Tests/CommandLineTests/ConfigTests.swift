import ArgumentParser
import Foundation
import XBM
import XCTest
@testable import xbm_dist

/// SPEC §9: options come from the command line, else from `--config`, else the defaults;
/// unknown config keys are errors; `config.json` can be fed back as `--config`.
final class ConfigTests: XCTestCase {
    private func file(_ json: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xbm-config-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: url)
        return url.path
    }

    func testDefaultsAreTheProvisionalHanziRecipe() throws {
        let config = try TrainOptions.parse([]).effectiveConfig()
        XCTAssertEqual(config.lr, 1e-3)
        XCTAssertEqual(config.iters, 2400)
        XCTAssertEqual(config.milestones, [800])
        XCTAssertEqual(config.gamma, 0.1)
        XCTAssertEqual(config.xbmSize, 16384)
        XCTAssertEqual(config.xbmStart, 800)
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
        XCTAssertEqual(config.milestones, [10, 20], "from the file")
        XCTAssertEqual(config.lr, 0.002, "the command line wins")
        XCTAssertEqual(config.xbmStart, TrainingConfig.autoStart)
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
}
