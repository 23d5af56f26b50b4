import Foundation

/// Another communicator whose collectives are counted: calls and payload bytes per operation
/// (`xbm-dist bench step` reports them per step; Docs/performance.md, Communication cost).
/// Everything is delegated unchanged. Bytes are what each rank contributes: the buffer of an
/// allreduce or broadcast, the send block of an allgather.
public final class CountingCommunicator: Communicator {
    public let base: Communicator
    /// What has been called since the start or the last `reset()`.
    public private(set) var tally = CollectiveTally()

    public init(wrapping base: Communicator) { self.base = base }

    public var rank: Int { base.rank }
    public var size: Int { base.size }
    public var ranksOnNode: Int { base.ranksOnNode }
    public var backendName: String { base.backendName }

    public func reset() { tally = CollectiveTally() }

    public func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        tally.add(.allreduce, bytes: buffer.count * MemoryLayout<T>.stride)
        try base.allreduceSum(buffer)
    }

    public func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        tally.add(.allreduce, bytes: buffer.count * MemoryLayout<T>.stride)
        try base.allreduceMax(buffer)
    }

    public func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> PendingCollective {
        tally.add(.allreduce, bytes: buffer.count * MemoryLayout<T>.stride)
        return try base.startAllreduceSum(buffer)
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        tally.add(.allgather, bytes: send.count * MemoryLayout<T>.stride)
        try base.allgather(send, into: receive)
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        tally.add(.broadcast, bytes: buffer.count * MemoryLayout<T>.stride)
        try base.broadcast(buffer, root: root)
    }

    public func barrier() throws {
        tally.add(.barrier, bytes: 0)
        try base.barrier()
    }

    public func abort(message: String, exitCode: Int32) -> Never {
        base.abort(message: message, exitCode: exitCode)
    }
}

/// Calls and bytes per collective operation; each allreduce's size is also kept, since the
/// latency and bandwidth of one depend on its size, not on the total.
public struct CollectiveTally: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        public var calls = 0
        public var bytes = 0
        /// Bytes per call, in call order.
        public var sizes: [Int] = []
    }

    public private(set) var entries: [CollectiveOperation: Entry] = [:]

    public init() {}

    public subscript(operation: CollectiveOperation) -> Entry { entries[operation] ?? Entry() }

    /// Calls the tallied collectives again on `comm` with buffers of the same sizes (Float
    /// elements; allreduces, then allgathers, then broadcasts and barriers): the communication
    /// of a step without its computation, which the cost model predicts (Docs/performance.md).
    public func replay(on comm: Communicator) throws {
        for n in self[.allreduce].sizes {
            var buffer = [Float](repeating: 1, count: n / MemoryLayout<Float>.stride)
            try comm.allreduceSum(&buffer)
        }
        for n in self[.allgather].sizes {
            _ = try comm.allgather([Float](repeating: 1, count: n / MemoryLayout<Float>.stride))
        }
        for n in self[.broadcast].sizes {
            var buffer = [Float](repeating: 1, count: n / MemoryLayout<Float>.stride)
            try comm.broadcast(&buffer, root: 0)
        }
        for _ in self[.barrier].sizes { try comm.barrier() }
    }

    mutating func add(_ operation: CollectiveOperation, bytes: Int) {
        entries[operation, default: Entry()].calls += 1
        entries[operation, default: Entry()].bytes += bytes
        entries[operation, default: Entry()].sizes.append(bytes)
    }
}
