import Collectives
import XCTest

/// `startAllreduceSum` on every backend gives `allreduceSum`'s bits, may interleave with
/// blocking collectives, and owns its buffer until `wait()`.
final class StartedAllreduceTests: XCTestCase {
    /// Values whose sum depends on the order of the additions, so that a different order shows.
    private static func values(rank: Int, count: Int) -> [Float] {
        (0..<count).map { i in Float(1 + rank) * 1e-3 * Float(i % 13) + (rank % 2 == 0 ? 1e4 : -1e4) / Float(1 + i % 5) }
    }

    func testStartedSumEqualsTheBlockingSumBitForBitOnSimulatedRanks() throws {
        for size in [1, 2, 3, 4] {
            for count in [0, 1, 1000, 65_537] {
                let results = try SimulatedRanks.run(size: size) { comm -> ([Float], [Float]) in
                    var blocking = Self.values(rank: comm.rank, count: count)
                    try comm.allreduceSum(&blocking)
                    var started = Self.values(rank: comm.rank, count: count)
                    try started.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0).wait() }
                    return (blocking, started)
                }
                for (rank, (blocking, started)) in results.enumerated() {
                    XCTAssertEqual(blocking.map(\.bitPattern), started.map(\.bitPattern), "size \(size) count \(count) rank \(rank)")
                }
            }
        }
    }

    func testSeveralStartedSumsInterleaveWithBlockingCollectives() throws {
        let results = try SimulatedRanks.run(size: 3) { comm -> ([Double], [Double], [Int32]) in
            var first = [Double](repeating: Double(comm.rank + 1), count: 5)
            var second = [Double](repeating: Double(10 * (comm.rank + 1)), count: 3)
            let a = try first.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0) }
            let b = try second.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0) }
            var between: [Int32] = [Int32(comm.rank)]
            try comm.allreduceMax(&between)
            try b.wait()
            try a.wait()
            return (first, second, between)
        }
        for (first, second, between) in results {
            XCTAssertEqual(first, [Double](repeating: 6, count: 5))
            XCTAssertEqual(second, [Double](repeating: 60, count: 3))
            XCTAssertEqual(between, [2])
        }
    }

    /// MPI leaves a buffer written after the start undefined; simulated ranks drop the write, so
    /// a step that wrote into a bucket it had already started would give wrong sums in a test.
    func testAWriteAfterTheStartIsLostOnSimulatedRanks() throws {
        let results = try SimulatedRanks.run(size: 2) { comm -> [Float] in
            var x: [Float] = [1, 2]
            let pending = try x.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0) }
            x[0] = 100
            try pending.wait()
            return x
        }
        for x in results { XCTAssertEqual(x, [2, 4]) }
    }

    func testSingleProcessAndMPISingletonCompleteAtOnce() throws {
        for comm in [SingleProcessCommunicator(), try MPICommunicator()] as [Communicator] {
            var x: [Float] = [1.5, -2]
            let pending = try x.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0) }
            _ = try pending.test()
            try pending.wait()
            XCTAssertTrue(try pending.test(), comm.backendName)
            XCTAssertEqual(x, [1.5, -2], comm.backendName)
        }
    }
}
