import ArgumentParser
import Foundation
import XBM

/// The options of a training run. Every option is optional here so that the effective value
/// is: command line, else `--config` file, else the default of `TrainingConfig` (README.md).
struct TrainOptions: ParsableArguments {
    @Option(help: "JSON config file keyed by option names without dashes; the command line overrides it.")
    var config: String?

    @Option(help: "Dataset directory (Docs/data.md). Default: the built-in hanzi benchmark in data/hanzi, built on first use.")
    var data: String?
    @Option(help: "auto (glyphnet for images, mlp for features), glyphnet or mlp.") var model: String?
    @Option(help: "Embedding size d.") var dim: Int?
    @Option(help: "Hidden width of the mlp model.") var hidden: Int?
    @Option(help: "Batch norm statistics: sync (over all ranks) or local (per rank).") var bn: String?

    @Option(help: "contrastive, multi-similarity, triplet, lifted or npair.") var loss: String?
    @Option(help: "Margin of contrastive (0.5), triplet (0.1) or lifted (0.5).") var margin: Double?
    @Option(help: "Contrastive: positives with s ≥ 1 − ε are inactive.") var epsilon: Double?
    @Option(name: .customLong("ms-alpha"), help: "Multi-similarity α.") var msAlpha: Double?
    @Option(name: .customLong("ms-beta"), help: "Multi-similarity β.") var msBeta: Double?
    @Option(name: .customLong("ms-lambda"), help: "Multi-similarity λ.") var msLambda: Double?
    @Option(name: .customLong("ms-mu"), help: "Multi-similarity mining margin μ.") var msMu: Double?
    @Option(help: "N-pair temperature τ.") var temperature: Double?

    @Option(help: "Global batch B (each rank takes B / ranks).") var batch: Int?
    @Option(help: "Instances per class K in a batch.") var instances: Int?
    @Option(help: "Training iterations.") var iters: Int?
    @Option(help: "adam, adamw or sgd.") var optimizer: String?
    @Option(help: "Base learning rate.") var lr: Double?
    @Option(name: .customLong("weight-decay"), help: "Weight decay (weights only).") var weightDecay: Double?
    @Option(help: "SGD momentum.") var momentum: Double?
    @Option(help: "constant, step or cosine.") var schedule: String?
    @Option(help: "Step schedule: where the rate is multiplied by --gamma, as iterations or shares of --iters (800, 75%; repeat or comma-separate).")
    var milestones: [String] = []
    @Option(help: "Step schedule factor.") var gamma: Double?
    @Option(help: "Linear warm-up iterations.") var warmup: Int?

    @Option(name: .customLong("xbm-size"), help: "Cross-batch memory rows M (0 disables the memory).") var xbmSize: Int?
    @Option(name: .customLong("xbm-start"), help: "First iteration that uses the memory, as an iteration or a share of --iters (800, 75%), or auto (first drift measurement below --drift-threshold).")
    var xbmStart: String?
    @Option(name: .customLong("xbm-weight"), help: "Weight w of the memory term.") var xbmWeight: Double?
    @Option(name: .customLong("xbm-reduce"), help: "Memory term over its pairs: sum (the paper's), mean (per anchor, over the active pairs) or scaled (sum × batch / memory rows).") var xbmReduce: String?
    @Option(name: .customLong("xbm-init"), help: "none, or fill: fill the memory with current embeddings at the start iteration.") var xbmInit: String?

    @Option(name: .customLong("drift-every"), help: "Measure feature drift on a fixed probe set every N iterations (0: never).") var driftEvery: Int?
    @Option(name: .customLong("drift-probe"), help: "Training samples in the drift probe set.") var driftProbe: Int?
    @Option(name: .customLong("drift-threshold"), help: "Mean drift below which --xbm-start auto starts the memory.") var driftThreshold: Double?

    @Option(name: .customLong("eval-every"), help: "Evaluate every N iterations (0: only at the end).") var evalEvery: Int?
    @Option(name: .customLong("eval-batch"), help: "Samples per forward when embedding for evaluation.") var evalBatch: Int?
    @Option(name: .customLong("recall-k"), help: "Recall@K cut-offs (repeat or comma-separate).") var recallK: [String] = []
    @Option(name: .customLong("log-every"), help: "Progress line and metrics.jsonl every N iterations.") var logEvery: Int?
    @Option(name: .customLong("checkpoint-every"), help: "Checkpoint every N iterations (0: only at the end).") var checkpointEvery: Int?
    @Option(name: .customLong("run-dir"), help: "Directory for config.json, metrics, checkpoints and plots.") var runDir: String?
    @Option(help: "Seed of initialisation, sampling and augmentation.") var seed: UInt64?
    @Flag(name: .customLong("check-replicas"), help: "Compare parameter and memory checksums across ranks every step.")
    var checkReplicas = false

    /// Command line over config file over defaults. `base` is used when no `--config` is given
    /// (the run directory's own config.json on `--resume`).
    func effectiveConfig(base: URL? = nil) throws -> TrainingConfig {
        var merged: [String: Any] = [:]
        if let file = config.map({ URL(fileURLWithPath: $0) }) ?? base {
            merged = try TrainingConfig.load(file: file)
        }
        func set(_ key: String, _ value: Any?) { if let value { merged[key] = value } }
        set("data", data); set("model", model); set("dim", dim); set("hidden", hidden); set("bn", bn)
        set("loss", loss); set("margin", margin); set("epsilon", epsilon)
        set("ms-alpha", msAlpha); set("ms-beta", msBeta); set("ms-lambda", msLambda); set("ms-mu", msMu)
        set("temperature", temperature)
        set("batch", batch); set("instances", instances); set("iters", iters); set("optimizer", optimizer); set("lr", lr)
        set("weight-decay", weightDecay); set("momentum", momentum); set("schedule", schedule); set("gamma", gamma)
        set("warmup", warmup)
        if !milestones.isEmpty {
            merged["milestones"] = try milestones.flatMap { $0.split(separator: ",") }.map { text -> String in
                guard let point = IterationPoint(parsing: String(text)) else {
                    throw ValidationError("--milestones expects iterations or percentages of --iters (800, 75%), got \"\(text)\"")
                }
                return point.description
            }
        }
        if let xbmStart {
            guard let start = MemoryStart(parsing: xbmStart) else {
                throw ValidationError("--xbm-start expects an iteration, a percentage of --iters (800, 75%) or auto, got \"\(xbmStart)\"")
            }
            merged["xbm-start"] = start.description
        }
        set("drift-every", driftEvery); set("drift-probe", driftProbe); set("drift-threshold", driftThreshold)
        set("xbm-size", xbmSize); set("xbm-weight", xbmWeight)
        set("xbm-reduce", xbmReduce); set("xbm-init", xbmInit)
        set("eval-every", evalEvery); set("eval-batch", evalBatch)
        if !recallK.isEmpty { merged["recall-k"] = try integers(recallK, option: "--recall-k") }
        set("log-every", logEvery); set("checkpoint-every", checkpointEvery); set("run-dir", runDir)
        set("seed", seed)
        if checkReplicas { merged["check-replicas"] = true }
        do {
            let data = try JSONSerialization.data(withJSONObject: merged)
            return try JSONDecoder().decode(TrainingConfig.self, from: data)
        } catch let error as DecodingError {
            throw ValidationError("config: \(describe(error))")
        }
    }

    private func integers(_ values: [String], option: String) throws -> [Int] {
        try values.flatMap { $0.split(separator: ",") }.map {
            guard let value = Int($0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(option) expects integers, got \"\($0)\"")
            }
            return value
        }
    }
}

/// One line for a JSON decoding error: which key, what was expected.
func describe(_ error: DecodingError) -> String {
    switch error {
    case let .typeMismatch(type, context), let .valueNotFound(type, context):
        return "key \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" should be \(type)"
    case let .dataCorrupted(context), let .keyNotFound(_, context):
        return context.debugDescription
    @unknown default:
        return "\(error)"
    }
}
