import Foundation

/// Size-1 world: every collective is the identity, with no copy. The single-process path of
/// the trainer is the same code as the distributed one, with this backend plugged in.
public final class SingleProcessCommunicator: Communicator {
    public init() {}

    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var ranksOnNode: Int { 1 }
    public var backendName: String { "single" }

    public func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {}
    public func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {}

    public func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> PendingCollective {
        CompletedCollective()
    }

    public func allgather<T: CollectiveScalar>(_ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>) throws {
        try checkArguments(receive.count == send.count, "allgather receive has \(receive.count) elements, expected \(send.count)")
        guard let source = send.baseAddress, let target = receive.baseAddress, source != UnsafePointer(target) else { return }
        target.update(from: source, count: send.count)
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try checkArguments(root == 0, "broadcast root \(root) outside 0..<1")
    }

    public func barrier() throws {}

    public func abort(message: String, exitCode: Int32) -> Never {
        ErrorReport.write(message)
        exit(exitCode)
    }
}
