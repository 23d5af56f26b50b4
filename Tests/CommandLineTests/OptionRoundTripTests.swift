import Collectives
import Foundation
import TestSupport
@testable import XBMModel
@testable import XBMTraining
import XCTest
@testable import xbm_dist

/// Every option of `train` reaches what it configures, from the command line and from a
/// config file alike: a non-default value of each builds a `Trainer` whose components (or,
/// for options the training loop reads, whose configuration) carry it, and the same check
/// fails on the run built without it, so the check cannot pass vacuously. An option added to
/// `train` without an entry here fails the test.
final class OptionRoundTripTests: XCTestCase {
    /// A non-default value as typed and as written in JSON, any options it needs beside it,
    /// and how to see it in a built run (`baseline` is the run built without it).
    struct Case {
        var argument: String?            // nil: a flag
        var json: Any
        var context: [String: (argument: String, json: Any)] = [:]
        var reaches: (_ run: Trainer, _ baseline: Trainer) -> Bool
    }

    /// A run small enough to build in milliseconds on the feature fixture.
    private var smallRun: [String: (argument: String, json: Any)] {
        ["batch": ("16", 16), "dim": ("8", 8), "hidden": ("16", 16), "xbm-size": ("32", 32), "drift-probe": ("8", 8)]
    }

    /// Weights of another seed's network of the small run, exported: the `--init-from` source.
    private struct Source {
        var path: String
        var parameters: [Float]
    }

    private func source(data: String) throws -> Source {
        let settings = smallRun.merging(["data": (data, data), "seed": ("99", 99)]) { _, new in new }
        let trainer = try trainer(TrainOptions.parse(settings.flatMap { ["--\($0.key)", $0.value.argument] }))
        let step = trainer.components.step
        let url = TrainingFixtures.temporaryDirectory("init-source").appendingPathComponent("model.safetensors")
        try TorchExport.safetensors(model: .mlp, network: trainer.components.network, parameters: step.parameters.pointer,
                                    state: step.state.pointer).write(to: url)
        return Source(path: url.path, parameters: step.parameters.array)
    }

    private func cases(otherData: String, source: Source) -> [String: Case] {
        func step(_ t: Trainer) -> DistributedStep { t.components.step }
        func schedule(_ t: Trainer) -> LearningRateSchedule { t.components.schedule }
        func mlp(_ t: Trainer) -> MLP? { t.components.network as? MLP }
        func term<T: AnchorTerm>(_ t: Trainer, _: T.Type) -> T? { (step(t).loss as? GemmPairLoss<T>)?.term }
        let multiSimilarity = ["loss": (argument: "multi-similarity", json: "multi-similarity" as Any)]
        return [
            "data": Case(argument: otherData, json: otherData) { t, _ in t.dataset.directory.standardizedFileURL.path == otherData },
            "dim": Case(argument: "12", json: 12) { t, _ in step(t).network.embeddingSize == 12 },
            "hidden": Case(argument: "24", json: 24) { t, _ in mlp(t)?.hiddenSize == 24 },
            "bn": Case(argument: "local", json: "local") { t, _ in
                if case .local? = mlp(t)?.batchNorm { true } else { false }
            },
            "loss": Case(argument: "triplet", json: "triplet") { t, _ in term(t, TripletTerm.self) != nil },
            "margin": Case(argument: "0.3", json: 0.3) { t, _ in term(t, ContrastiveTerm.self)?.margin == 0.3 },
            "epsilon": Case(argument: "0.01", json: 0.01) { t, _ in term(t, ContrastiveTerm.self)?.epsilon == 0.01 },
            "ms-alpha": Case(argument: "3", json: 3, context: multiSimilarity) { t, _ in term(t, MultiSimilarityTerm.self)?.alpha == 3 },
            "ms-beta": Case(argument: "30", json: 30, context: multiSimilarity) { t, _ in term(t, MultiSimilarityTerm.self)?.beta == 30 },
            "ms-lambda": Case(argument: "0.6", json: 0.6, context: multiSimilarity) { t, _ in term(t, MultiSimilarityTerm.self)?.lambda == 0.6 },
            "ms-mu": Case(argument: "0.2", json: 0.2, context: multiSimilarity) { t, _ in term(t, MultiSimilarityTerm.self)?.mu == 0.2 },
            "temperature": Case(argument: "0.2", json: 0.2, context: ["loss": ("npair", "npair")]) { t, _ in
                term(t, NPairTerm.self)?.temperature == 0.2
            },
            "batch": Case(argument: "32", json: 32) { t, _ in step(t).globalBatch == 32 && t.sampler.batchSize == 32 },
            "instances": Case(argument: "2", json: 2) { t, _ in t.sampler.instances == 2 },
            "iters": Case(argument: "100", json: 100) { t, _ in schedule(t).totalIterations == 100 },
            "schedule-iters": Case(argument: "500", json: 500) { t, _ in schedule(t).totalIterations == 500 },
            "step-timeout": Case(argument: "30", json: 30) { t, _ in t.config.run.stepTimeout == 30 },
            "optimizer": Case(argument: "sgd", json: "sgd") { t, _ in step(t).optimizer.kind == .sgd },
            "lr": Case(argument: "0.01", json: 0.01) { t, _ in schedule(t).baseRate == Float(0.01) },
            "weight-decay": Case(argument: "0.001", json: 0.001) { t, _ in step(t).optimizer.weightDecay == Float(0.001) },
            "momentum": Case(argument: "0.5", json: 0.5) { t, _ in step(t).optimizer.momentum == 0.5 },
            "schedule": Case(argument: "cosine", json: "cosine") { t, _ in schedule(t).kind == .cosine },
            "milestones": Case(argument: "100,50%", json: [100, "50%"]) { t, _ in schedule(t).milestones == [100, 1200] },
            "gamma": Case(argument: "0.5", json: 0.5) { t, _ in schedule(t).gamma == 0.5 },
            "warmup": Case(argument: "7", json: 7) { t, _ in schedule(t).warmupIterations == 7 },
            "deterministic": Case(argument: nil, json: true) { t, _ in
                step(t).deterministicChunks == 4 && t.components.network.batchNorm.chunks == 4
            },
            "deterministic-chunks": Case(argument: "8", json: 8) { t, _ in t.config.optimization.deterministicChunks == 8 },
            "xbm-size": Case(argument: "64", json: 64) { t, _ in step(t).memory?.capacity == 64 },
            "xbm-start": Case(argument: "30", json: 30) { t, _ in step(t).memoryStart == 30 },
            "xbm-weight": Case(argument: "0.5", json: 0.5) { t, _ in step(t).memoryWeight == 0.5 },
            "xbm-reduce": Case(argument: "sum", json: "sum") { t, _ in step(t).memoryReduction == .sum },
            "xbm-init": Case(argument: "fill", json: "fill") { t, _ in t.config.memory.initialization == .fill },
            "xbm-compensate": Case(argument: "moments", json: "moments") { t, _ in step(t).compensation?.window == 8 },
            "xbm-refresh": Case(argument: "7", json: 7) { t, _ in t.config.memory.refresh == 7 },
            "drift-every": Case(argument: "0", json: 0) { t, _ in t.drift == nil },
            "drift-probe": Case(argument: "10", json: 10) { t, _ in t.drift?.probe.count == 10 },
            "drift-threshold": Case(argument: "0.05", json: 0.05) { t, _ in t.config.memory.driftThreshold == 0.05 },
            "eval-every": Case(argument: "10", json: 10) { t, _ in t.config.evaluation.every == 10 },
            "eval-batch": Case(argument: "40", json: 40) { t, _ in t.components.inferenceNetwork.maxBatch == 40 },
            "recall-k": Case(argument: "5,1", json: [1, 5]) { t, _ in t.config.evaluation.recallK == [1, 5] },
            "log-every": Case(argument: "3", json: 3) { t, _ in t.config.run.logEvery == 3 },
            "checkpoint-every": Case(argument: "9", json: 9) { t, _ in t.config.run.checkpointEvery == 9 },
            "keep-checkpoints": Case(argument: "3", json: 3) { t, _ in t.config.run.keepCheckpoints == 3 },
            "run-dir": Case(argument: "runs/elsewhere", json: "runs/elsewhere") { t, _ in t.config.run.directory == "runs/elsewhere" },
            "seed": Case(argument: "7", json: 7) { t, baseline in
                t.sampler.state != baseline.sampler.state && step(t).parameters.array != step(baseline).parameters.array
            },
            "check-replicas": Case(argument: nil, json: true) { t, _ in t.config.run.checkReplicas },
            "init-from": Case(argument: source.path, json: source.path) { t, _ in step(t).parameters.array == source.parameters },
            "redraw-head": Case(argument: nil, json: true, context: ["init-from": (source.path, source.path)]) { t, baseline in
                // The head keeps this run's seeded initialisation; the rest is the source's.
                let head = t.components.network.parameterLayout["fc2.weight"]!
                let range = head.offset..<(head.offset + head.count)
                return step(t).parameters.array[range] != step(baseline).parameters.array[range]
                    && step(t).parameters.array[..<head.offset] == step(baseline).parameters.array[..<head.offset]
            },
        ]
    }

    private func trainer(_ options: TrainOptions) throws -> Trainer {
        try Trainer(config: options.configuration(), comm: SingleProcessCommunicator(), writeOutputs: false)
    }

    private func jsonFile(_ object: [String: Any]) throws -> String {
        let url = TrainingFixtures.temporaryDirectory("options").appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url.path
    }

    /// The same object as a YAML file, one `key: value` line each (values as JSON, which
    /// YAML's flow style reads as the same numbers, strings, booleans and lists).
    private func yamlFile(_ object: [String: Any]) throws -> String {
        let url = TrainingFixtures.temporaryDirectory("options").appendingPathComponent("config.yaml")
        let lines = try object.keys.sorted().map { key in
            let value = try JSONSerialization.data(withJSONObject: [object[key]!], options: [.fragmentsAllowed])
            return "\(key): \(String(decoding: value.dropFirst().dropLast(), as: UTF8.self))"
        }
        try Data(("# written by OptionRoundTripTests\n" + lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url.path
    }

    func testEveryOptionReachesTheRunFromTheCommandLineAndFromAConfigFile() throws {
        let data = try TrainingFixtures.featureDataset().standardizedFileURL.path
        let other = try TrainingFixtures.featureDataset(classes: 10, seed: 6).standardizedFileURL.path
        let table = cases(otherData: other, source: try source(data: data))
        XCTAssertEqual(Set(table.keys).union(["model", "augment", "init-from-checksum"]), trainConfigurationOptions(),
                       "every option of train has a case, and no case is stale")

        var baselines: [String: Trainer] = [:]
        for (name, entry) in table.sorted(by: { $0.key < $1.key }) {
            var settings = smallRun.merging(entry.context) { _, new in new }
            settings["data"] = (data, data)
            func arguments(_ settings: [String: (argument: String, json: Any)]) -> [String] {
                settings.flatMap { ["--\($0.key)", $0.value.argument] }
            }
            // Parsing is slow in a debug build: one baseline per distinct context.
            let key = entry.context.keys.sorted().map { "\($0)=\(entry.context[$0]!.argument)" }.joined(separator: " ")
            let baseline = try baselines[key] ?? trainer(TrainOptions.parse(arguments(settings)))
            baselines[key] = baseline
            XCTAssertFalse(entry.reaches(baseline, baseline), "--\(name): the check passes without the option")

            settings[name] = nil
            let given = arguments(settings) + ["--\(name)"] + (entry.argument.map { [$0] } ?? [])
            XCTAssertTrue(entry.reaches(try trainer(TrainOptions.parse(given)), baseline), "--\(name) on the command line")

            var object = settings.mapValues(\.json)
            object[name] = entry.json
            let file = try jsonFile(object)
            XCTAssertTrue(entry.reaches(try trainer(TrainOptions.parse(["--config", file])), baseline), "\"\(name)\" in a config file")
            let yaml = try yamlFile(object)
            XCTAssertTrue(entry.reaches(try trainer(TrainOptions.parse(["--config", yaml])), baseline), "\"\(name)\" in a YAML file")
        }
    }

    /// `--augment` needs image data to show (on features every choice but none is refused):
    /// on one-channel images auto is glyph, and photo and none replace it.
    func testAugmentReachesTheTrainer() throws {
        let data = try TrainingFixtures.imageDataset().path
        let base = ["--data", data, "--batch", "8", "--instances", "2", "--dim", "8", "--xbm-size", "32", "--drift-probe", "8", "--eval-batch", "16"]
        XCTAssertEqual(try trainer(TrainOptions.parse(base)).augmentation, .glyph)
        for choice in ["photo", "none"] {
            XCTAssertEqual(try trainer(TrainOptions.parse(base + ["--augment", choice])).augmentation.rawValue, choice)
            var object: [String: Any] = ["data": data, "batch": 8, "instances": 2, "dim": 8, "xbm-size": 32, "drift-probe": 8, "eval-batch": 16]
            object["augment"] = choice
            XCTAssertEqual(try trainer(TrainOptions.parse(["--config", jsonFile(object)])).augmentation.rawValue, choice)
            XCTAssertEqual(try trainer(TrainOptions.parse(["--config", yamlFile(object)])).augmentation.rawValue, choice)
        }
        let colour = try TrainingFixtures.imageDataset(channels: 3).path
        XCTAssertEqual(try trainer(TrainOptions.parse(base + ["--data", colour])).augmentation, .photo)
        let features = try TrainingFixtures.featureDataset().path
        XCTAssertThrowsError(try trainer(TrainOptions.parse(base + ["--data", features, "--augment", "photo"]))) {
            XCTAssertTrue("\($0)".contains("--augment photo") && "\($0)".contains("feature"), "\($0)")
        }
    }

    /// `--init-from-checksum` is recorded whether given or not, so it shows only as a refusal:
    /// the source's own checksum builds the run, another is refused naming both.
    func testInitFromChecksumAcceptsTheSourcesOwnAndRefusesAnother() throws {
        let data = try TrainingFixtures.featureDataset().path
        let source = try source(data: data)
        let base = ["--data", data, "--batch", "16", "--dim", "8", "--hidden", "16", "--xbm-size", "32", "--drift-probe", "8",
                    "--init-from", source.path]
        let recorded = try XCTUnwrap(try trainer(TrainOptions.parse(base)).config.model.initFromChecksum)
        XCTAssertEqual(try trainer(TrainOptions.parse(base + ["--init-from-checksum", recorded])).config.model.initFromChecksum, recorded)
        let object: [String: Any] = ["data": data, "batch": 16, "dim": 8, "hidden": 16, "xbm-size": 32, "drift-probe": 8,
                                     "init-from": source.path, "init-from-checksum": recorded]
        XCTAssertNoThrow(try trainer(TrainOptions.parse(["--config", jsonFile(object)])))
        XCTAssertNoThrow(try trainer(TrainOptions.parse(["--config", yamlFile(object)])))
        let other = recorded == "0000000000000000" ? "0000000000000001" : "0000000000000000"
        for arguments in [base + ["--init-from-checksum", other],
                          ["--config", try jsonFile(object.merging(["init-from-checksum": other]) { _, new in new })]] {
            XCTAssertThrowsError(try trainer(TrainOptions.parse(arguments))) {
                XCTAssertTrue("\($0)".contains(other) && "\($0)".contains(recorded), "\($0)")
            }
        }
    }

    /// `--model` shows only when it disagrees with the data: glyphnet cannot take features.
    func testModelReachesTheNetworkFactory() throws {
        let data = try TrainingFixtures.featureDataset().path
        let base = ["--data", data, "--batch", "16", "--dim", "8", "--hidden", "16", "--xbm-size", "32", "--drift-probe", "8"]
        XCTAssertNoThrow(try trainer(TrainOptions.parse(base)))
        XCTAssertThrowsError(try trainer(TrainOptions.parse(base + ["--model", "glyphnet"]))) {
            XCTAssertTrue("\($0)".contains("glyphnet"), "\($0)")
        }
        let file = try jsonFile(["data": data, "batch": 16, "dim": 8, "hidden": 16, "xbm-size": 32, "drift-probe": 8, "model": "glyphnet"])
        XCTAssertThrowsError(try trainer(TrainOptions.parse(["--config", file]))) {
            XCTAssertTrue("\($0)".contains("glyphnet"), "\($0)")
        }
    }
}
