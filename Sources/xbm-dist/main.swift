import ArgumentParser
import Foundation
import XBMKernels

/// `xbm-dist` with no subcommand trains on the built-in hanzi benchmark with the defaults.
struct XBMDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xbm-dist",
        abstract: "Deep metric learning with Cross-Batch Memory, distributed over MPI ranks.",
        discussion: "Run under mpirun for several ranks, e.g. `mpirun -np 4 xbm-dist`.",
        version: XBMVersion.current,
        subcommands: [TrainCommand.self, EvalCommand.self, EmbedCommand.self, ExportCommand.self, DataCommand.self,
                      BenchCommand.self],
        defaultSubcommand: TrainCommand.self
    )
}

// First, before any code compiled for the build's target CPU runs: a binary built for a CPU
// this one is not refuses with a message instead of dying by SIGILL (Docs/performance.md).
if let problem = BuildTarget.problem() {
    FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
    exit(2)
}
BLASKernels.selectKernels()
XBMDist.main()
