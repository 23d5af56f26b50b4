import Foundation

/// Another communicator with a modelled network latency added to every collective: the
/// latency a cluster's network has and one machine's emulated links do not (Launch/netlink
/// limits bandwidth with tbf; this kernel has no netem to delay packets). Each collective is
/// delegated unchanged, then sleeps α × the rounds of its algorithm (`LatencyModel`). Every
/// rank sleeps the same, so a step grows by the modelled latency as on a real network.
///
/// A started allreduce is delayed as single-threaded MPI progresses one: each round takes α
/// and the next one can begin only when the rank is inside a communication call (`test()` or
/// `wait()`), so latency hides behind computation only as far as the caller polls.
public final class DelayedCommunicator: Communicator {
    public let base: Communicator
    public let model: LatencyModel
    let clock: DelayClock

    public convenience init(wrapping base: Communicator, model: LatencyModel) {
        self.init(wrapping: base, model: model, clock: .system)
    }

    init(wrapping base: Communicator, model: LatencyModel, clock: DelayClock) {
        self.base = base
        self.model = model
        self.clock = clock
    }

    public var rank: Int { base.rank }
    public var size: Int { base.size }
    public var ranksOnNode: Int { base.ranksOnNode }
    public var backendName: String { "\(base.backendName)+\(Int((model.perMessage * 1e6).rounded()))us" }

    public func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try base.allreduceSum(buffer)
        delay(.allreduce, bytes: buffer.count * MemoryLayout<T>.stride)
    }

    public func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        try base.allreduceMax(buffer)
        delay(.allreduce, bytes: buffer.count * MemoryLayout<T>.stride)
    }

    public func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> PendingCollective {
        let rounds = LatencyModel.rounds(.allreduce, bytes: buffer.count * MemoryLayout<T>.stride, ranks: size)
        return DelayedPendingCollective(base: try base.startAllreduceSum(buffer), rounds: rounds,
                                        perRound: model.perMessage, clock: clock)
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        try base.allgather(send, into: receive)
        delay(.allgather, bytes: send.count * MemoryLayout<T>.stride)
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try base.broadcast(buffer, root: root)
        delay(.broadcast, bytes: buffer.count * MemoryLayout<T>.stride)
    }

    public func barrier() throws {
        try base.barrier()
        delay(.barrier, bytes: 0)
    }

    public func abort(message: String, exitCode: Int32) -> Never {
        base.abort(message: message, exitCode: exitCode)
    }

    private func delay(_ operation: CollectiveOperation, bytes: Int) {
        let seconds = model.delay(operation, bytes: bytes, ranks: size)
        if seconds > 0 { clock.sleep(seconds) }
    }
}

/// Time as the delays see it; tests replace it to check the modelled waits exactly.
struct DelayClock: Sendable {
    var now: @Sendable () -> Double
    var sleep: @Sendable (Double) -> Void

    static let system = DelayClock(
        now: { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 },
        sleep: { seconds in Thread.sleep(forTimeInterval: seconds) })
}

/// A started allreduce plus its modelled rounds. A round that has lasted α by the time of a
/// `test()` is done and the next one starts then; `wait()` sleeps what remains.
private final class DelayedPendingCollective: PendingCollective {
    private let base: PendingCollective
    private let perRound: Double
    private let clock: DelayClock
    private var roundsLeft: Int
    private var roundStarted: Double

    init(base: PendingCollective, rounds: Int, perRound: Double, clock: DelayClock) {
        self.base = base
        self.perRound = perRound
        self.clock = clock
        roundsLeft = rounds
        roundStarted = clock.now()
    }

    func test() throws -> Bool {
        let baseDone = try base.test()
        let now = clock.now()
        if roundsLeft > 0 && now - roundStarted >= perRound {
            roundsLeft -= 1
            roundStarted = now
        }
        return baseDone && roundsLeft == 0
    }

    func wait() throws {
        try base.wait()
        guard roundsLeft > 0 else { return }
        let remaining = max(0, perRound - (clock.now() - roundStarted)) + Double(roundsLeft - 1) * perRound
        roundsLeft = 0
        if remaining > 0 { clock.sleep(remaining) }
    }
}
