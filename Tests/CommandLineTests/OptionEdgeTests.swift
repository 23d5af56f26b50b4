import ArgumentParser
import Collectives
import Foundation
import TestSupport
import XBMTraining
import XCTest
@testable import xbm_dist

/// Docs/reliability.md: every option of `train` at its edge values (0, negative, huge, NaN
/// and infinities for numbers, empty and malformed lists) is either refused with a message
/// that names the option — when parsed, validated or when the run is built — or builds a
/// run; it never traps. A trap ends this test process, which fails the suite.
final class OptionEdgeTests: XCTestCase {
    private enum Kind { case integer, real, list, point, path, choice, flag }

    private let kinds: [String: Kind] = [
        "data": .path, "model": .choice, "augment": .choice, "dim": .integer, "hidden": .integer, "bn": .choice,
        "init-from": .path, "init-from-checksum": .choice, "redraw-head": .flag,
        "loss": .choice, "margin": .real, "epsilon": .real, "ms-alpha": .real, "ms-beta": .real,
        "ms-lambda": .real, "ms-mu": .real, "temperature": .real,
        "batch": .integer, "instances": .integer, "iters": .integer, "schedule-iters": .integer,
        "optimizer": .choice, "lr": .real, "weight-decay": .real, "momentum": .real, "schedule": .choice,
        "milestones": .list, "gamma": .real, "warmup": .integer, "deterministic": .flag, "deterministic-chunks": .integer,
        "xbm-size": .integer, "xbm-start": .point, "xbm-weight": .real, "xbm-reduce": .choice, "xbm-init": .choice, "xbm-compensate": .choice, "xbm-refresh": .integer,
        "drift-every": .integer, "drift-probe": .integer, "drift-threshold": .real,
        "eval-every": .integer, "eval-batch": .integer, "recall-k": .list,
        "log-every": .integer, "checkpoint-every": .integer, "keep-checkpoints": .integer, "run-dir": .path, "seed": .integer,
        "check-replicas": .flag, "step-timeout": .real,
    ]

    private func edges(_ kind: Kind) -> [String] {
        switch kind {
        case .integer: ["0", "-1", "-9223372036854775808", "9223372036854775807", "4294967297", "1e3", ""]
        case .real: ["0", "-1", "1e308", "-1e308", "nan", "inf", "-inf", "5e-324", ""]
        case .list: ["", ",", "0", "-1", "1,,2", "9223372036854775807", "50%,50%", "1e3"]
        case .point: ["-1", "0", "101%", "nan%", "inf%", "1e20", "9223372036854775807", ""]
        case .path: ["", "/nonexistent/xbm", "/proc/xbm-run"]
        case .choice: ["", "NONE", "-1"]
        case .flag: []
        }
    }

    private struct Refusal: Error, CustomStringConvertible { let description: String }

    /// `base` with `--name value` parsed and applied by the option group that owns `--name`:
    /// the same parsing and overrides as `train`, without parsing all six groups per case
    /// (ArgumentParser's debug-build checks make that slow).
    private struct Group {
        var names: Set<String>
        var apply: ([String], inout TrainingConfig) throws -> Void

        init<G: ParsableArguments, C>(_: G.Type, _ path: WritableKeyPath<TrainingConfig, C>, _ overrides: @escaping (G) -> [Override<C>]) {
            names = optionNames(inHelp: G.helpMessage(columns: 400))
            apply = { arguments, config in
                let group: G
                do { group = try G.parse(arguments) } catch { throw Refusal(description: G.message(for: error)) }
                for override in overrides(group) { override.apply(&config[keyPath: path]) }
            }
        }
    }

    private let groups = [
        Group(ModelArguments.self, \.model) { $0.overrides }, Group(LossArguments.self, \.loss) { $0.overrides },
        Group(OptimizationArguments.self, \.optimization) { $0.overrides }, Group(MemoryArguments.self, \.memory) { $0.overrides },
        Group(EvaluationArguments.self, \.evaluation) { $0.overrides }, Group(RunArguments.self, \.run) { $0.overrides },
    ]

    private func applying(_ name: String, _ value: String, to base: TrainingConfig) throws -> TrainingConfig {
        var config = base
        let owner = try XCTUnwrap(groups.first { $0.names.contains(name) }, "no option group owns --\(name)")
        try owner.apply(["--\(name)", value], &config)
        return config
    }

    func testEveryOptionAtItsEdgesIsRefusedByNameOrBuilds() throws {
        let data = try TrainingFixtures.featureDataset().path
        let run = TrainingFixtures.temporaryDirectory("edges").path
        let base = try TrainOptions.parse(["--data", data, "--run-dir", run, "--batch", "16", "--dim", "8", "--hidden", "16",
                                           "--xbm-size", "32", "--drift-probe", "8"]).configuration()
        var built = 0, refused = 0
        for (name, kind) in kinds.sorted(by: { $0.key < $1.key }) {
            for value in edges(kind) {
                let context = "--\(name) \(value)"
                do {
                    let config = try applying(name, value, to: base)
                    try config.validate(ranks: 1)
                    _ = try Trainer(config: config, comm: SingleProcessCommunicator(), writeOutputs: false)
                    built += 1
                } catch {
                    refused += 1
                    let message = "\(error)"
                    XCTAssertFalse(message.isEmpty, context)
                    let named = message.contains("--\(name)") || message.contains("\"\(name)\"")
                        || message.contains("'\(value)'") || message.contains("\"\(value)\"")
                        || (kind == .path && message.contains(value.isEmpty ? "--data" : value))
                    XCTAssertTrue(named, "\(context): the message should name the option or the value: \(message)")
                }
            }
        }
        XCTAssertGreaterThan(refused, 100)
        XCTAssertGreaterThan(built, 10)
    }

    /// The table above covers exactly the options `train --help` lists.
    func testTheSweepCoversEveryOption() {
        let options = trainConfigurationOptions()
        XCTAssertEqual(Set(kinds.keys), options)
    }
}
