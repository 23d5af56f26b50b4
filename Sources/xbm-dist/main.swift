import ArgumentParser

/// `xbm-dist` with no subcommand trains on the built-in hanzi benchmark with the defaults.
struct XBMDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xbm-dist",
        abstract: "Deep metric learning with Cross-Batch Memory, distributed over MPI ranks.",
        subcommands: [DataCommand.self, BenchCommand.self]
    )
}

XBMDist.main()
