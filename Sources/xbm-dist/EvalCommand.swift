import ArgumentParser
import Collectives
import Foundation
import XBMData
import XBMEval
import XBMTraining

/// `xbm-dist eval --run-dir R [--data D] [--show N]`: retrieval and clustering metrics of a
/// run's checkpoint, and the retrieval picture.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a run's checkpoint: Recall@K, MAP@R, R-precision, NMI, AMI; --show draws queries and their neighbours (Docs/evaluation.md).")

    @Option(name: .customLong("run-dir"), help: "Run directory holding checkpoint.xbm.") var runDir: String
    @Option(help: "Dataset directory (default: the one the run trained on).") var data: String?
    @Option(help: "Recall@K cut-offs, comma-separated (default: the run's --recall-k, else the dataset's meta.json recall_k, else 1,10,100,1000).",
            transform: ListArgument.recallCutoffs)
    var recallK: [Int]?
    @Flag(inversion: .prefixedNo, help: "NMI and AMI of k-means with k = the classes (9-23 s for 50,000 × 128 and 1,877 classes on 2 cores; Docs/evaluation.md).")
    var clustering = true
    @Option(help: "Draw N queries, each followed by its nearest gallery items in green (same class) or red frames with their similarities, into --out (image datasets only).")
    var show: Int?
    @Option(help: "Neighbours drawn per query with --show.") var neighbours = 8
    @Flag(help: "With --show: only queries whose nearest neighbour is of another class.") var showFailures = false
    @Option(help: "PNG file of --show (default: retrieval.png in --run-dir).") var out: String?
    @Option(help: "Seed of k-means++ and of the queries --show picks (default: the run's --seed).") var seed: UInt64?
    @OptionGroup var launchOptions: LaunchOptions

    func validate() throws {
        if let show, show < 1 { throw ValidationError("--show must be at least 1, got \(show)") }
        guard neighbours >= 1 else { throw ValidationError("--neighbours must be at least 1, got \(neighbours)") }
        if show == nil && (showFailures || out != nil) {
            throw ValidationError("--show-failures and --out go with --show N, the number of queries to draw")
        }
    }

    /// What `run` does on every rank, from the parsed options.
    var job: EvalJob {
        EvalJob(runDir: runDir, data: data, recallK: recallK, clustering: clustering, seed: seed, show: show,
                neighbours: neighbours, showFailures: showFailures,
                out: URL(fileURLWithPath: out ?? RunDirectory(path: runDir).url.appendingPathComponent("retrieval.png").path))
    }

    func run() throws {
        let job = job
        try launch(launchOptions) { try job.run(comm: $0) }
    }
}

/// `xbm-dist eval` on one rank: every rank embeds its share and computes the metrics, rank 0
/// prints them and draws the picture.
struct EvalJob: Sendable {
    var runDir: String
    var data: String?
    var recallK: [Int]?
    var clustering: Bool
    var seed: UInt64?
    var show: Int?
    var neighbours: Int
    var showFailures: Bool
    var out: URL

    func run(comm: Communicator) throws {
        let model = try TrainedModel.load(runDirectory: runDir, data: data, comm: comm)
        if show != nil { try RetrievalPicture.requireImages(model.dataset) }
        let seed = seed ?? model.config.run.seed
        let split = try model.embedSplit()
        let metrics = try model.evaluate(split, ks: recallK, clusteringSeed: clustering ? seed : nil)
        if comm.rank == 0 { print(metrics.table) }
        guard let show else { return }
        let drawn = try model.writeRetrievalPicture(split, to: out, queries: show, neighbours: neighbours, seed: seed,
                                                    failuresOnly: showFailures)
        if comm.rank == 0 {
            print("wrote \(out.path): \(drawn) \(showFailures ? "failed " : "")quer\(drawn == 1 ? "y" : "ies") "
                  + "with \(neighbours) neighbours each\(drawn < show ? " (only \(drawn) qualified)" : "")")
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
