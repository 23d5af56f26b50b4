import CMPI
import Foundation

/// Open MPI backend. Every call's return code is checked; a failure throws
/// `CollectiveError.mpi` naming the call and MPI's own message (errors are set to return
/// rather than abort, so the trainer can say what went wrong before it ends the job).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let ranksOnNode: Int
    public var backendName: String { "mpi" }
    private let world: MPI_Comm
    private var finalized = false

    /// Initialises MPI (once per process) and describes MPI_COMM_WORLD.
    public init() throws {
        var initialized: Int32 = 0
        try MPICommunicator.check("MPI_Initialized", MPI_Initialized(&initialized))
        if initialized == 0 {
            // Open MPI's libnbc sums an in-place MPI_Iallreduce by reducing to one rank and
            // broadcasting back (2·log₂ p transfers of the whole buffer, one way at a time);
            // its Rabenseifner moves 2(p − 1)/p of it, as the blocking allreduce does, which is
            // what lets the gradient's buckets hide behind the backward (Docs/performance.md,
            // Overlap). MCA parameters are read at MPI_Init; a value the user set stays.
            setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0)
            try MPICommunicator.check("MPI_Init", MPI_Init(nil, nil))
        }
        world = xbm_mpi_comm_world()
        try MPICommunicator.check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(world, xbm_mpi_errors_return()))
        var rank: Int32 = 0, size: Int32 = 0
        try MPICommunicator.check("MPI_Comm_rank", MPI_Comm_rank(world, &rank))
        try MPICommunicator.check("MPI_Comm_size", MPI_Comm_size(world, &size))
        self.rank = Int(rank)
        self.size = Int(size)

        var node: MPI_Comm? = xbm_mpi_comm_null()
        try MPICommunicator.check("MPI_Comm_split_type",
                                  MPI_Comm_split_type(world, xbm_mpi_comm_type_shared(), rank, xbm_mpi_info_null(), &node))
        var local: Int32 = 1
        try MPICommunicator.check("MPI_Comm_size", MPI_Comm_size(node, &local))
        try MPICommunicator.check("MPI_Comm_free", MPI_Comm_free(&node))
        ranksOnNode = Int(local)
    }

    /// True when this process was started by mpirun (or another PMIx launcher).
    public static var launchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil
            || environment["PMI_RANK"] != nil
    }

    /// Ends MPI; call once, after the last collective, on every rank.
    public func finalize() throws {
        guard !finalized else { return }
        finalized = true
        try MPICommunicator.check("MPI_Finalize", MPI_Finalize())
    }

    public func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try allreduce(buffer, op: xbm_mpi_sum(), call: "MPI_Allreduce(sum)")
    }

    public func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try allreduce(buffer, op: xbm_mpi_max(), call: "MPI_Allreduce(max)")
    }

    private func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: MPI_Op, call: String) throws {
        // Counts are C ints: reduce in chunks so buffers of any size work.
        var offset = 0
        repeat {
            let count = min(buffer.count - offset, Int(Int32.max))
            try MPICommunicator.check(call, MPI_Allreduce(xbm_mpi_in_place(), buffer.baseAddress.map { $0 + offset },
                                                          Int32(count), T.mpiType, op, world))
            offset += count
        } while offset < buffer.count
    }

    public func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> PendingCollective {
        let pending = MPIPendingCollective(call: "MPI_Iallreduce(sum)")
        var offset = 0
        repeat {
            let count = min(buffer.count - offset, Int(Int32.max))
            var request: MPI_Request? = xbm_mpi_request_null()
            try MPICommunicator.check(pending.call, MPI_Iallreduce(xbm_mpi_in_place(), buffer.baseAddress.map { $0 + offset },
                                                                   Int32(count), T.mpiType, xbm_mpi_sum(), world, &request))
            pending.requests.append(request)
            offset += count
        } while offset < buffer.count
        return pending
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        try checkArguments(receive.count == send.count * size,
                           "allgather receive has \(receive.count) elements, expected \(send.count) × \(size)")
        try checkArguments(send.count <= Int(Int32.max), "allgather block of \(send.count) elements exceeds MPI's int counts")
        try MPICommunicator.check("MPI_Allgather", MPI_Allgather(send.baseAddress, Int32(send.count), T.mpiType,
                                                                receive.baseAddress, Int32(send.count), T.mpiType, world))
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try checkArguments((0..<size).contains(root), "broadcast root \(root) outside 0..<\(size)")
        var offset = 0
        repeat {
            let count = min(buffer.count - offset, Int(Int32.max))
            try MPICommunicator.check("MPI_Bcast", MPI_Bcast(buffer.baseAddress.map { $0 + offset }, Int32(count),
                                                             T.mpiType, Int32(root), world))
            offset += count
        } while offset < buffer.count
    }

    public func barrier() throws {
        try MPICommunicator.check("MPI_Barrier", MPI_Barrier(world))
    }

    public func abort(message: String, exitCode: Int32) -> Never {
        ErrorReport.write(message, rank: rank)
        MPI_Abort(world, exitCode)
        exit(exitCode)  // MPI_Abort does not return; this satisfies the type checker.
    }

    fileprivate static func check(_ call: String, _ code: Int32) throws {
        guard code != xbm_mpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(xbm_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        let bytes = text.prefix(Int(max(length, 0))).map { UInt8(bitPattern: $0) }
        throw CollectiveError.mpi(call: call, code: code, message: String(decoding: bytes, as: UTF8.self))
    }
}

/// The requests of one started collective (one per chunk of at most Int32.max elements).
private final class MPIPendingCollective: PendingCollective {
    let call: String
    var requests: [MPI_Request?] = []

    init(call: String) { self.call = call }

    func test() throws -> Bool {
        var done = true
        for index in requests.indices {
            var flag: Int32 = 0
            try MPICommunicator.check("MPI_Test(\(call))", MPI_Test(&requests[index], &flag, xbm_mpi_status_ignore()))
            done = done && flag != 0
        }
        return done
    }

    func wait() throws {
        // MPI_Wait on a completed request (now MPI_REQUEST_NULL) returns at once.
        for index in requests.indices {
            try MPICommunicator.check("MPI_Wait(\(call))", MPI_Wait(&requests[index], xbm_mpi_status_ignore()))
        }
    }
}

extension CollectiveScalar {
    fileprivate static var mpiType: MPI_Datatype {
        switch collectiveKind {
        case .float32: return xbm_mpi_float()
        case .float64: return xbm_mpi_double()
        case .int32: return xbm_mpi_int32()
        case .uint8: return xbm_mpi_uint8()
        case .uint64: return xbm_mpi_uint64()
        }
    }
}
