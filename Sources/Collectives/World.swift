import Foundation

/// Picks the backend for this process: MPI when launched by mpirun, simulated ranks when
/// asked for, otherwise a single process (no MPI initialisation at all, so a debugging run
/// needs no launcher).
public enum World {
    public enum Backend: Equatable, Sendable {
        case automatic
        case mpi
        case single
    }

    /// The communicator for a non-simulated run. `.automatic` uses MPI under mpirun only.
    public static func communicator(_ backend: Backend = .automatic) throws -> Communicator {
        switch backend {
        case .mpi: return try MPICommunicator()
        case .single: return SingleProcessCommunicator()
        case .automatic:
            return MPICommunicator.launchedByMPI ? try MPICommunicator() : SingleProcessCommunicator()
        }
    }
}
