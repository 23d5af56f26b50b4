import ArgumentParser

/// `xbm-dist data ...`: build, inspect and preview datasets (SPEC §7, §9).
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Build the hanzi benchmark, inspect or preview a dataset directory.")
}
