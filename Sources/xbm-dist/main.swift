import ArgumentParser
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

BLASKernels.selectKernels()
XBMDist.main()
