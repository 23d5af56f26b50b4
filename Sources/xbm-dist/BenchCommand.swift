import ArgumentParser
import Collectives
import XBM

/// `xbm-dist bench ...`: measurements users run on their own machines (SPEC §9, §11).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Check and time the collectives, the training step and retrieval.",
        subcommands: [BenchCollectives.self])
}

struct BenchCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collectives",
        abstract: "Verify allreduce, allgather and broadcast against closed forms and time them (1 float to 16 MiB).")

    @OptionGroup var launchOptions: LaunchOptions

    @Option(help: "Timed repetitions per size (median reported).")
    var repetitions: Int = 5

    func run() throws {
        let repetitions = repetitions
        try launch(launchOptions) { comm in
            let rows = try CollectivesBenchmark.run(comm, repetitions: repetitions)
            if comm.rank == 0 {
                print(CollectivesBenchmark.table(rows, ranks: comm.size, backend: comm.backendName))
            }
            if rows.contains(where: { !$0.correct }) {
                throw CollectivesMismatch()
            }
        }
    }
}

struct CollectivesMismatch: SameOnEveryRankError {
    var description: String { "a collective returned a wrong result (see WRONG rows above): check the MPI installation and network" }
}
