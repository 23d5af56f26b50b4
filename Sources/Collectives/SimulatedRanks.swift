import Foundation

/// N ranks simulated by N threads of one process, with the semantics of the MPI backend.
/// Tests use it to prove multi-rank properties without mpirun; users reach it through
/// `--simulate-ranks N` to debug the distributed path in one process.
///
/// Each collective runs in phases separated by a shared barrier: every rank publishes its
/// buffer's address, all ranks read what they need, and nobody returns (and so nobody reuses
/// its buffer) before every rank is done reading. Sums run over ranks in rank order into a
/// private scratch buffer, so every rank gets the same bits.
public enum SimulatedRanks {
    nonisolated(unsafe) private static var running = 0
    private static let runningLock = NSLock()

    /// The simulated ranks running now in this process, over all worlds (0 when none). While
    /// it is above 1, a process-wide setting (OpenBLAS' thread count) is shared by several
    /// ranks: one rank changing it would change what the others compute.
    public static var activeRanks: Int {
        runningLock.lock()
        defer { runningLock.unlock() }
        return running
    }

    private static func count(_ change: Int) {
        runningLock.lock()
        running += change
        runningLock.unlock()
    }

    /// Runs `body` on `size` threads, one per rank, and returns their results in rank order.
    ///
    /// When a rank throws, the others' pending and future collectives throw
    /// `CollectiveError.peerFailed` instead of waiting; `run` then rethrows the first error
    /// that was not a consequence of another rank's failure.
    public static func run<Result>(size: Int, stackSize: Int = 16 << 20,
                                   _ body: @escaping @Sendable (SimulatedCommunicator) throws -> Result) throws -> [Result] {
        precondition(size >= 1, "simulated world size must be at least 1, got \(size)")
        let world = SimulatedWorld(size: size)
        let outcomes = OutcomeBox<Result>(size: size)
        let done = DispatchGroup()
        count(size)
        defer { count(-size) }
        for rank in 0..<size {
            done.enter()
            let thread = Thread {
                let communicator = SimulatedCommunicator(rank: rank, world: world)
                do {
                    outcomes.set(rank, .success(try body(communicator)))
                } catch {
                    world.fail(rank: rank, reason: "\(error)")
                    outcomes.set(rank, .failure(error))
                }
                done.leave()
            }
            thread.stackSize = stackSize
            thread.name = "rank \(rank)"
            thread.start()
        }
        done.wait()
        return try outcomes.results()
    }
}

/// One simulated rank's view of the shared world.
public final class SimulatedCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    let world: SimulatedWorld
    /// Private reduction buffer, grown on demand and reused (no steady-state allocation).
    private var scratch = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
    private var scratchBytes = 64

    init(rank: Int, world: SimulatedWorld) {
        self.rank = rank
        self.world = world
    }

    deinit { scratch.deallocate() }

    public var size: Int { world.size }
    public var ranksOnNode: Int { world.size }
    public var backendName: String { "simulated" }

    public func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try reduce(buffer, "allreduceSum") { $0 + $1 }
    }

    public func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try reduce(buffer, "allreduceMax") { T.maximum($0, $1) }
    }

    /// Copies `buffer` now and sums the copy over ranks in `wait()`, in the order the ranks
    /// wait (the same on every rank). What the caller writes into `buffer` after the start is
    /// lost and what it reads before `wait()` is its own unreduced data, as MPI leaves both
    /// undefined: a test with simulated ranks sees either mistake.
    public func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> PendingCollective {
        SimulatedPendingSum(comm: self, buffer: buffer)
    }

    private func reduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ call: String,
                                             _ combine: (T, T) -> T) throws {
        try world.publish(rank: rank, UnsafeRawPointer(buffer.baseAddress), count: buffer.count, kind: T.collectiveKind, call: call)
        try world.barrier(rank: rank)
        try world.checkUniform(call: call)
        let bytes = buffer.count * MemoryLayout<T>.stride
        if bytes > scratchBytes {
            scratch.deallocate()
            scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            scratchBytes = bytes
        }
        let sum = scratch.bindMemory(to: T.self, capacity: buffer.count)
        let first = world.address(of: 0).assumingMemoryBound(to: T.self)
        sum.update(from: first, count: buffer.count)
        for other in 1..<max(size, 1) {
            let source = world.address(of: other).assumingMemoryBound(to: T.self)
            for i in 0..<buffer.count { sum[i] = combine(sum[i], source[i]) }
        }
        try world.barrier(rank: rank)  // every rank has read every buffer
        if let target = buffer.baseAddress { target.update(from: sum, count: buffer.count) }
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        try world.publish(rank: rank, UnsafeRawPointer(send.baseAddress), count: send.count, kind: T.collectiveKind, call: "allgather")
        try world.barrier(rank: rank)
        try world.checkUniform(call: "allgather")
        try checkArguments(receive.count == send.count * size,
                           "allgather receive has \(receive.count) elements, expected \(send.count) × \(size)")
        if let target = receive.baseAddress {
            for other in 0..<size {
                let source = world.address(of: other).assumingMemoryBound(to: T.self)
                (target + other * send.count).update(from: source, count: send.count)
            }
        }
        try world.barrier(rank: rank)
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try checkArguments((0..<size).contains(root), "broadcast root \(root) outside 0..<\(size)")
        try world.publish(rank: rank, UnsafeRawPointer(buffer.baseAddress), count: buffer.count, kind: T.collectiveKind, call: "broadcast")
        try world.barrier(rank: rank)
        try world.checkUniform(call: "broadcast")
        if rank != root, let target = buffer.baseAddress {
            target.update(from: world.address(of: root).assumingMemoryBound(to: T.self), count: buffer.count)
        }
        try world.barrier(rank: rank)
    }

    public func barrier() throws {
        try world.barrier(rank: rank)
    }

    public func abort(message: String, exitCode: Int32) -> Never {
        world.fail(rank: rank, reason: message)
        ErrorReport.write(message, rank: rank)
        exit(exitCode)
    }
}

/// A started sum of simulated ranks: a private copy of the buffer as it was at the start.
private final class SimulatedPendingSum<T: CollectiveScalar>: PendingCollective {
    private let comm: SimulatedCommunicator
    private let buffer: UnsafeMutableBufferPointer<T>
    private var copy: [T]?

    init(comm: SimulatedCommunicator, buffer: UnsafeMutableBufferPointer<T>) {
        self.comm = comm
        self.buffer = buffer
        copy = Array(buffer)
    }

    /// The simulated world moves only when every rank is in the same collective: in `wait()`.
    func test() throws -> Bool { copy == nil }

    func wait() throws {
        guard var sum = copy else { return }
        copy = nil
        try comm.allreduceSum(&sum)
        sum.withUnsafeBufferPointer { reduced in
            if let target = buffer.baseAddress, let source = reduced.baseAddress { target.update(from: source, count: reduced.count) }
        }
    }
}

/// State shared by the simulated ranks: published buffers and a reusable barrier that breaks
/// when any rank fails.
final class SimulatedWorld: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var failure: (rank: Int, reason: String)?
    private var addresses: [UnsafeRawPointer?]
    private var counts: [Int]
    private var kinds: [CollectiveKind?]
    private var calls: [String]

    init(size: Int) {
        self.size = size
        addresses = Array(repeating: nil, count: size)
        counts = Array(repeating: 0, count: size)
        kinds = Array(repeating: nil, count: size)
        calls = Array(repeating: "", count: size)
    }

    func publish(rank: Int, _ address: UnsafeRawPointer?, count: Int, kind: CollectiveKind, call: String) throws {
        condition.lock(); defer { condition.unlock() }
        if let failure { throw CollectiveError.peerFailed(rank: failure.rank, reason: failure.reason) }
        addresses[rank] = address
        counts[rank] = count
        kinds[rank] = kind
        calls[rank] = call
    }

    /// Called after the first barrier of a collective: all ranks see the same published
    /// arguments, so all throw together when they disagree.
    func checkUniform(call: String) throws {
        condition.lock(); defer { condition.unlock() }
        for r in 1..<size where calls[r] != calls[0] || counts[r] != counts[0] || kinds[r] != kinds[0] {
            throw CollectiveError.invalidArgument(
                "\(call): rank 0 called \(calls[0]) with \(counts[0]) elements, rank \(r) called \(calls[r]) with \(counts[r])")
        }
    }

    func address(of rank: Int) -> UnsafeRawPointer {
        condition.lock(); defer { condition.unlock() }
        // A zero-count buffer may have no base address; nothing is read from it then.
        return addresses[rank] ?? UnsafeRawPointer(bitPattern: 0x40)!
    }

    func barrier(rank: Int) throws {
        condition.lock(); defer { condition.unlock() }
        if let failure { throw CollectiveError.peerFailed(rank: failure.rank, reason: failure.reason) }
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        while generation == myGeneration && failure == nil { condition.wait() }
        if generation == myGeneration, let failure {
            throw CollectiveError.peerFailed(rank: failure.rank, reason: failure.reason)
        }
    }

    func fail(rank: Int, reason: String) {
        condition.lock(); defer { condition.unlock() }
        if failure == nil { failure = (rank, reason) }
        condition.broadcast()
    }
}

/// Per-rank outcomes, written by the rank threads and read after they have all finished.
private final class OutcomeBox<Result>: @unchecked Sendable {
    private let lock = NSLock()
    private var outcomes: [Swift.Result<Result, Error>?]

    init(size: Int) { outcomes = Array(repeating: nil, count: size) }

    func set(_ rank: Int, _ outcome: Swift.Result<Result, Error>) {
        lock.lock(); defer { lock.unlock() }
        outcomes[rank] = outcome
    }

    /// All results in rank order, or the root-cause error: the first failure that is not a
    /// `peerFailed` echo of another rank's failure.
    func results() throws -> [Result] {
        lock.lock(); defer { lock.unlock() }
        var echo: Error?
        for outcome in outcomes {
            if case .failure(let error)? = outcome {
                if case CollectiveError.peerFailed = error { echo = echo ?? error } else { throw error }
            }
        }
        if let echo { throw echo }
        return outcomes.map { outcome in
            guard case .success(let value)? = outcome else { fatalError("rank finished without an outcome") }
            return value
        }
    }
}
