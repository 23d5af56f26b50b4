import ArgumentParser
import Collectives

/// How the ranks of a command are started; shared by every command that computes.
struct LaunchOptions: ParsableArguments {
    @Option(name: .customLong("simulate-ranks"), help: "Simulate N ranks as threads of this process (debugging; not with mpirun).")
    var simulateRanks: Int = 0

    @Option(help: "BLAS threads per rank (default: cores on the node / ranks on the node, at least 1).")
    var threads: Int?

    func validate() throws {
        guard simulateRanks >= 0 else { throw ValidationError("--simulate-ranks must be 0 or more, got \(simulateRanks)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    var launcher: Launcher.Options { Launcher.Options(simulateRanks: simulateRanks, threads: threads) }
}

/// Runs `body` on every rank and ends the process with the launcher's exit code.
func launch(_ options: LaunchOptions, _ body: @escaping @Sendable (Communicator) throws -> Void) throws {
    let code = Launcher.run(options.launcher, body)
    if code != 0 { throw ExitCode(code) }
}
