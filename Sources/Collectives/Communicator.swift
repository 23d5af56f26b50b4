/// The one door to inter-rank communication. The trainer, the losses and the data pipeline
/// talk to a `Communicator`; only this module knows whether that is Open MPI, a single
/// process, or several ranks simulated by threads in one process.
///
/// Semantics (identical for every backend, so that a test with simulated ranks proves the
/// same property as a run under `mpirun`):
/// - every collective must be called by every rank, in the same order, with the same counts;
/// - `allreduceSum` sums in place; the result is the same on every rank, bit for bit;
/// - `allgather` concatenates equal-sized blocks in rank order;
/// - a started collective (`startAllreduceSum`) counts in that order when it is started, and
///   its buffer belongs to it until its `wait()` returns;
/// - a rank that fails makes the collectives of the others throw instead of waiting forever.
public protocol Communicator: AnyObject {
    /// This process' (or simulated thread's) rank in 0..<size.
    var rank: Int { get }
    /// Number of ranks in the job.
    var size: Int { get }
    /// Number of ranks sharing this node (for dividing the cores among BLAS thread pools).
    var ranksOnNode: Int { get }
    /// A short name of the backend for logs ("mpi", "single", "simulated").
    var backendName: String { get }

    /// In-place sum over ranks: `buffer[i] = Σ_r buffer_r[i]` on every rank.
    func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws
    /// Starts `allreduceSum(buffer)` and returns without waiting for it (MPI_Iallreduce), so
    /// that computation can run while it travels. Until `wait()` returns, `buffer` belongs to
    /// the collective: do not read or write it. Collectives called in between (blocking or
    /// started) are fine, in the same order on every rank.
    ///
    /// The sum is the same as `allreduceSum`'s, and bit for bit with simulated ranks, a single
    /// process and 2 MPI ranks (addition of two numbers commutes); with 3 or more MPI ranks
    /// Open MPI's non-blocking algorithm may add the ranks in another order than the blocking
    /// one, so results agree to rounding. The result is the same on every rank either way.
    func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> PendingCollective
    /// In-place maximum over ranks.
    func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws
    /// `receive[r·n ..< (r+1)·n] = send_r` for every rank r, with n = send.count;
    /// `receive.count` must be `size · n`.
    func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws
    /// Copies `buffer` of rank `root` into `buffer` of every rank.
    func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Ends the whole job after a failure on this rank, so that no other rank is left waiting
    /// in a collective. Under MPI this is `MPI_Abort`; simulated ranks wake the others with
    /// `CollectiveError.peerFailed`.
    func abort(message: String, exitCode: Int32) -> Never
}

/// A collective started by `Communicator.startAllreduceSum` (an MPI_Request). Wait for every
/// one exactly once; abandoning one leaves the ranks disagreeing about what comes next.
public protocol PendingCollective: AnyObject {
    /// Lets the collective progress without blocking and returns true once it has completed.
    /// MPI initialised single-threaded moves a started collective only inside MPI calls, so
    /// calling this between pieces of work is what lets it travel during them. A backend may
    /// report false until `wait()` (simulated ranks do): never spin on it, call `wait()`.
    func test() throws -> Bool
    /// Blocks until the collective has completed; its buffer then holds the result.
    func wait() throws
}

/// A collective that completed when it was started (a single process, a size-1 world).
public final class CompletedCollective: PendingCollective {
    public init() {}
    public func test() throws -> Bool { true }
    public func wait() throws {}
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// Convenience over arrays; the steady-state step uses the pointer forms.
    public func allreduceSum<T: CollectiveScalar>(_ array: inout [T]) throws {
        try array.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    public func allreduceMax<T: CollectiveScalar>(_ array: inout [T]) throws {
        try array.withUnsafeMutableBufferPointer { try allreduceMax($0) }
    }

    public func broadcast<T: CollectiveScalar>(_ array: inout [T], root: Int) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    public func allgather<T: CollectiveScalar>(_ send: [T]) throws -> [T] {
        var receive = [T](repeating: T.zero, count: send.count * size)
        try send.withUnsafeBufferPointer { s in
            try receive.withUnsafeMutableBufferPointer { try allgather(s, into: $0) }
        }
        return receive
    }

    /// Broadcasts a byte string of any length from `root` (length first, then bytes).
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        var length = [Int32(rank == root ? bytes.count : 0)]
        try broadcast(&length, root: root)
        var buffer = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        try broadcast(&buffer, root: root)
        return buffer
    }

    /// True on every rank when `condition` is true on any rank: the way to turn a failure seen
    /// by one rank (a bad file, a non-finite loss) into a decision all ranks take together.
    public func any(_ condition: Bool) throws -> Bool {
        var flag: [Int32] = [condition ? 1 : 0]
        try allreduceMax(&flag)
        return flag[0] != 0
    }
}

/// Element types the collectives carry.
public protocol CollectiveScalar: Numeric, Sendable {
    static var collectiveKind: CollectiveKind { get }
    static func maximum(_ a: Self, _ b: Self) -> Self
}

public enum CollectiveKind: Sendable {
    case float32, float64, int32, uint8, uint64
}

extension Float: CollectiveScalar {
    public static var collectiveKind: CollectiveKind { .float32 }
    public static func maximum(_ a: Float, _ b: Float) -> Float { Swift.max(a, b) }
}
extension Double: CollectiveScalar {
    public static var collectiveKind: CollectiveKind { .float64 }
    public static func maximum(_ a: Double, _ b: Double) -> Double { Swift.max(a, b) }
}
extension Int32: CollectiveScalar {
    public static var collectiveKind: CollectiveKind { .int32 }
    public static func maximum(_ a: Int32, _ b: Int32) -> Int32 { Swift.max(a, b) }
}
extension UInt8: CollectiveScalar {
    public static var collectiveKind: CollectiveKind { .uint8 }
    public static func maximum(_ a: UInt8, _ b: UInt8) -> UInt8 { Swift.max(a, b) }
}
extension UInt64: CollectiveScalar {
    public static var collectiveKind: CollectiveKind { .uint64 }
    public static func maximum(_ a: UInt64, _ b: UInt64) -> UInt64 { Swift.max(a, b) }
}

/// Failures of the communication layer. Each names the call and what went wrong.
public enum CollectiveError: Error, CustomStringConvertible, Equatable {
    /// An MPI call returned an error code.
    case mpi(call: String, code: Int32, message: String)
    /// Another (simulated) rank failed; this rank's collective was abandoned.
    case peerFailed(rank: Int, reason: String)
    /// Arguments that cannot be right on any rank (mismatched counts, bad root).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .mpi(call, code, message): return "\(call) failed with error \(code): \(message)"
        case let .peerFailed(rank, reason): return "rank \(rank) failed (\(reason)); collective abandoned"
        case let .invalidArgument(message): return "invalid collective call: \(message)"
        }
    }
}

@inline(__always)
func checkArguments(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CollectiveError.invalidArgument(message()) }
}
