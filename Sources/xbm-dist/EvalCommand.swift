import ArgumentParser
import Foundation
import XBMData
import XBMTraining

/// `xbm-dist eval --run-dir R [--data D]`: retrieval metrics of a run's checkpoint.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a run's checkpoint: Recall@K, MAP@R, R-precision (Docs/evaluation.md).")

    @Option(name: .customLong("run-dir"), help: "Run directory holding checkpoint.xbm.") var runDir: String
    @Option(help: "Dataset directory (default: the one the run trained on).") var data: String?
    @Option(help: "Recall@K cut-offs, comma-separated (default: the run's --recall-k, else the dataset's meta.json recall_k, else 1,10,100,1000).",
            transform: ListArgument.recallCutoffs)
    var recallK: [Int]?
    @OptionGroup var launchOptions: LaunchOptions

    func run() throws {
        let runDir = runDir, data = data, ks = recallK
        try launch(launchOptions) { comm in
            let model = try TrainedModel.load(runDirectory: runDir, data: data, comm: comm)
            let metrics = try model.evaluate(ks: ks)
            if comm.rank == 0 { print(metrics.table) }
        }
    }
}

/// `xbm-dist embed --run-dir R --data D --split S --out F.npy`.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed", abstract: "Write float32 (n, d) embeddings of one split of a dataset, in dataset order.")

    @Option(name: .customLong("run-dir"), help: "Run directory holding checkpoint.xbm.") var runDir: String
    @Option(help: "Dataset directory (default: the one the run trained on).") var data: String?
    @Option(help: "train, test, query or gallery.") var split: String = "test"
    @Option(help: "Output .npy file.") var out: String
    @OptionGroup var launchOptions: LaunchOptions

    func run() throws {
        let runDir = runDir, data = data, out = out
        guard let role = Dataset.SplitRole(rawValue: split) else {
            throw ValidationError("--split must be train, test, query or gallery, got \(split)")
        }
        try launch(launchOptions) { comm in
            let model = try TrainedModel.load(runDirectory: runDir, data: data, comm: comm)
            let count = try model.writeEmbeddings(role: role, to: URL(fileURLWithPath: out))
            if comm.rank == 0 { print("wrote \(count) embeddings of dimension \(model.config.model.dim) to \(out)") }
        }
    }
}

/// `xbm-dist export --run-dir R --out model.safetensors`.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's trained network as safetensors, loadable in PyTorch with python/xbm_models.py (Docs/export.md).")

    @Option(name: .customLong("run-dir"), help: "Run directory holding checkpoint.xbm.") var runDir: String
    @Option(help: "Dataset directory, for the input shape (default: the one the run trained on).") var data: String?
    @Option(help: "Output file (.safetensors).") var out: String
    @OptionGroup var launchOptions: LaunchOptions

    func run() throws {
        let runDir = runDir, data = data, out = out
        try launch(launchOptions) { comm in
            let model = try TrainedModel.load(runDirectory: runDir, data: data, comm: comm)
            try model.exportSafetensors(to: URL(fileURLWithPath: out))
            if comm.rank == 0 {
                print("wrote \(out): \(model.config.model.model.resolved(isImages: model.dataset.isImages).rawValue), "
                      + "\(model.network.parameterLayout.count) parameters, embeddings of dimension \(model.network.embeddingSize)")
            }
        }
    }
}
