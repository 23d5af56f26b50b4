import ArgumentParser
import Foundation
import Hanzi
import XBMTraining

/// `xbm-dist train` (and `xbm-dist` alone): the training loop of Docs/distributed.md on every rank.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train an embedding network with cross-batch memory (the default command).",
        discussion: """
            With no --data, trains on the built-in hanzi benchmark (data/hanzi), building it on first use.
            Under mpirun every rank runs this command; --batch is the global batch.
            """)

    @OptionGroup var options: TrainOptions
    @OptionGroup var launchOptions: LaunchOptions
    @Flag(help: "Continue from the run directory's checkpoint (its config.json is the base configuration).")
    var resume = false
    @Option(parsing: .singleValue,
            help: "With --resume: keys (lr, loss, data, ...) whose change from the checkpoint's configuration is meant; repeat or comma-separate. Without it such a change is refused.",
            transform: { $0.split(separator: ",").map(String.init) })
    var resumeOverride: [[String]] = []
    @Flag(help: "Print the configuration these options resolve to (config.json, defaults filled in) and exit without training.")
    var printConfig = false

    func run() throws {
        let config = try resolvedConfig(options, resume: resume)
        if printConfig {
            print(String(decoding: config.json(), as: UTF8.self))
            return
        }
        let resume = resume, overrides = Set(resumeOverride.joined())
        guard resume || overrides.isEmpty else { throw ValidationError("--resume-override applies only with --resume") }
        try launch(launchOptions) { comm in
            var config = config
            if config.model.data.isEmpty { config.model.data = try DefaultDataset.ensureHanzi(comm: comm, log: comm.rank == 0) }
            // After the data exists: a Ctrl-C during the build should end the build.
            StopSignal.install()
            let trainer = try Trainer(config: config, comm: comm, resume: resume, resumeOverrides: overrides)
            trainer.stopRequested = { StopSignal.requested }
            _ = try trainer.run()
        }
    }
}

/// The effective configuration; on `--resume` without `--config`, the run directory's
/// config.json is the base, so `xbm-dist train --run-dir R --resume` needs nothing else.
func resolvedConfig(_ options: TrainOptions, resume: Bool) throws -> TrainingConfig {
    let first = try options.configuration()
    guard resume, options.config == nil else { return first }
    let saved = URL(fileURLWithPath: first.run.directory).appendingPathComponent("config.json")
    guard FileManager.default.fileExists(atPath: saved.path) else {
        throw ValidationError("--resume: \(saved.path) does not exist; is --run-dir \(first.run.directory) the directory of an earlier run?")
    }
    return try options.configuration(base: saved)
}
