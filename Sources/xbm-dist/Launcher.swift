import Collectives
import Foundation
import XBMKernels

/// Starts the ranks of a job and turns their failures into one line and an exit code
/// (Docs/distributed.md): under mpirun one process per rank, with `--simulate-ranks N` N threads,
/// otherwise a single process. BLAS threads per rank default to cores / ranks on the node.
enum Launcher {
    struct Options: Sendable {
        /// > 0: simulate that many ranks in this process.
        var simulateRanks: Int
        /// BLAS threads per rank; nil for the default.
        var threads: Int?
        init(simulateRanks: Int = 0, threads: Int? = nil) {
            self.simulateRanks = simulateRanks
            self.threads = threads
        }
    }

    /// Runs `body` on every rank and returns the process exit code.
    static func run(_ options: Options, _ body: @escaping @Sendable (Communicator) throws -> Void) -> Int32 {
        if options.simulateRanks > 0 {
            if MPICommunicator.launchedByMPI {
                report("--simulate-ranks cannot be combined with mpirun: drop one of them")
                return 2
            }
            // One process-wide OpenBLAS pool serves every simulated rank; keep it serial so
            // the ranks' threads do not contend inside it.
            BLASThreads.set(options.threads ?? 1)
            do {
                _ = try SimulatedRanks.run(size: options.simulateRanks, body)
                return 0
            } catch {
                report("\(error)")
                return exitCode(for: error)
            }
        }

        let comm: Communicator
        do {
            comm = try World.communicator()
        } catch {
            report("cannot start MPI: \(error)")
            return 3
        }
        BLASThreads.set(options.threads ?? BLASThreads.defaultCount(
            coresOnNode: ProcessInfo.processInfo.activeProcessorCount, ranksOnNode: comm.ranksOnNode))
        do {
            try body(comm)
        } catch let error as SameOnEveryRankError {
            if comm.rank == 0 { report(error.description) }
            finalize(comm)
            return 2
        } catch {
            // Possibly this rank alone: the others may be waiting in a collective, so the
            // whole job must end now.
            if comm.size > 1 { comm.abort(message: "\(error)", exitCode: 1) }
            report("\(error)")
            return 1
        }
        finalize(comm)
        return 0
    }

    private static func finalize(_ comm: Communicator) {
        if let mpi = comm as? MPICommunicator {
            do { try mpi.finalize() } catch { report("\(error)") }
        }
    }

    private static func exitCode(for error: Error) -> Int32 {
        error is SameOnEveryRankError ? 2 : 1
    }

    private static func report(_ message: String) { ErrorReport.write(message) }
}
