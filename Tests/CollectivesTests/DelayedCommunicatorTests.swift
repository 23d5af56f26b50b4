@testable import Collectives
import Foundation
import XCTest

/// The decorators of Launch/netlink's measurements: they delegate exactly, the delays are the
/// latency model's, and the tally counts what was sent.
final class DelayedCommunicatorTests: XCTestCase {
    /// A clock that only moves when told to, recording every sleep.
    private final class ManualClock: @unchecked Sendable {
        private let lock = NSLock()
        private var time = 0.0
        private(set) var sleeps: [Double] = []
        var now: Double { lock.lock(); defer { lock.unlock() }; return time }
        func advance(_ seconds: Double) { lock.lock(); time += seconds; lock.unlock() }
        func sleep(_ seconds: Double) { lock.lock(); sleeps.append(seconds); time += seconds; lock.unlock() }
        var delayClock: DelayClock { DelayClock(now: { self.now }, sleep: { self.sleep($0) }) }
    }

    func testRoundsFollowOpenMPI41sFixedDecisions() {
        // 1 rank: nothing travels.
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 4096, ranks: 1), 0)
        // 2 ranks: the SyncBN sizes of glyphnet (520 B recursive doubling; 4,104 B ring),
        // ∂L/∂E (65,604 B segmented ring) and the gradient (1.7 MB Rabenseifner).
        XCTAssertEqual(LatencyModel.allreduceAlgorithm(bytes: 520, ranks: 2), LatencyModel.AllreduceAlgorithm.recursiveDoubling)
        XCTAssertEqual(LatencyModel.allreduceAlgorithm(bytes: 4104, ranks: 2), LatencyModel.AllreduceAlgorithm.ring)
        XCTAssertEqual(LatencyModel.allreduceAlgorithm(bytes: 65_604, ranks: 2), LatencyModel.AllreduceAlgorithm.ring)
        XCTAssertEqual(LatencyModel.allreduceAlgorithm(bytes: 1_684_864, ranks: 2), LatencyModel.AllreduceAlgorithm.rabenseifner)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 520, ranks: 2), 1)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 4104, ranks: 2), 2)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 1_684_864, ranks: 2), 2)
        // 3 ranks: past the power of 2, recursive doubling and Rabenseifner take 2 more rounds.
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 520, ranks: 3), 3)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 100_000, ranks: 3), 4)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 1 << 20, ranks: 3), 4)
        // 4 ranks: below 8 KiB recursive doubling, above Rabenseifner.
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 4104, ranks: 4), 2)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 131_140, ranks: 4), 4)
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 8, ranks: 4), 6)     // ring below 16 B
        XCTAssertEqual(LatencyModel.rounds(.allreduce, bytes: 1 << 20, ranks: 64), 12)
        XCTAssertEqual(LatencyModel.rounds(.allgather, bytes: 32_768, ranks: 2), 1)
        XCTAssertEqual(LatencyModel.rounds(.allgather, bytes: 32_768, ranks: 4), 2)
        XCTAssertEqual(LatencyModel.rounds(.broadcast, bytes: 100, ranks: 5), 3)
        XCTAssertEqual(LatencyModel.rounds(.barrier, bytes: 0, ranks: 4), 2)
    }

    func testEveryCollectiveDelegatesExactly() throws {
        for size in [1, 2, 3] {
            let results = try SimulatedRanks.run(size: size) { base -> [[Float]] in
                let comm = DelayedCommunicator(wrapping: base, model: LatencyModel(perMessage: 1e-6))
                XCTAssertEqual(comm.rank, base.rank)
                XCTAssertEqual(comm.size, base.size)
                XCTAssertEqual(comm.ranksOnNode, base.ranksOnNode)
                var sum: [Float] = [Float(comm.rank) + 0.5, 1]
                try comm.allreduceSum(&sum)
                var maximum: [Float] = [Float(comm.rank)]
                try comm.allreduceMax(&maximum)
                let gathered = try comm.allgather([Float(comm.rank), -Float(comm.rank)])
                var broadcast: [Float] = [Float(comm.rank)]
                try comm.broadcast(&broadcast, root: size - 1)
                var started: [Float] = [Float(comm.rank)]
                try started.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0).wait() }
                try comm.barrier()
                return [sum, maximum, gathered, broadcast, started]
            }
            let ranks = Float(size)
            for result in results {
                XCTAssertEqual(result[0], [ranks * (ranks - 1) / 2 + 0.5 * ranks, ranks], "size \(size)")
                XCTAssertEqual(result[1], [ranks - 1])
                XCTAssertEqual(result[2], (0..<size).flatMap { [Float($0), -Float($0)] })
                XCTAssertEqual(result[3], [ranks - 1])
                XCTAssertEqual(result[4], [ranks * (ranks - 1) / 2])
            }
        }
    }

    func testBlockingCollectivesSleepAlphaTimesTheirRounds() throws {
        let clocks = (0..<4).map { _ in ManualClock() }
        let alpha = 20e-6
        _ = try SimulatedRanks.run(size: 4) { base in
            let comm = DelayedCommunicator(wrapping: base, model: LatencyModel(perMessage: alpha),
                                           clock: clocks[base.rank].delayClock)
            var small = [Double](repeating: 1, count: 9)              // 72 B: recursive doubling
            try comm.allreduceSum(&small)
            var large = [Float](repeating: 1, count: 1 << 16)         // 256 KiB: Rabenseifner
            try comm.allreduceSum(&large)
            _ = try comm.allgather([Float](repeating: 0, count: 8))
            try comm.barrier()
        }
        for clock in clocks {
            XCTAssertEqual(clock.sleeps.count, 4)
            for (slept, rounds) in zip(clock.sleeps, [2, 4, 2, 2]) {
                XCTAssertEqual(slept, alpha * Double(rounds), accuracy: 1e-12)
            }
        }
    }

    /// A started allreduce advances one round per `test()` that comes at least α after the
    /// round began; `wait()` sleeps the rest: latency hides only as far as the caller polls.
    func testAStartedAllreduceProgressesOnlyWhenPolled() throws {
        let alpha = 1e-3
        let clocks = (0..<4).map { _ in ManualClock() }
        _ = try SimulatedRanks.run(size: 4) { base in
            let clock = clocks[base.rank]
            let comm = DelayedCommunicator(wrapping: base, model: LatencyModel(perMessage: alpha), clock: clock.delayClock)
            var polled = [Float](repeating: 1, count: 1 << 16)        // Rabenseifner: 4 rounds
            let pending = try polled.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0) }
            clock.advance(0.5 * alpha)
            _ = try pending.test()                                    // round 1 not over: nothing
            clock.advance(0.6 * alpha)
            _ = try pending.test()                                    // round 1 done; round 2 starts now
            clock.advance(5 * alpha)
            _ = try pending.test()                                    // round 2 done, however late
            clock.advance(0.25 * alpha)
            try pending.wait()                                        // 0.75 α of round 3, round 4
        }
        for clock in clocks {
            XCTAssertEqual(clock.sleeps.count, 1)
            XCTAssertEqual(clock.sleeps[0], 1.75 * alpha, accuracy: 1e-12)
        }
    }

    func testRealTimeDelayIsAtLeastTheModel() throws {
        let alpha = 2e-3
        let seconds = try SimulatedRanks.run(size: 2) { base -> Double in
            let comm = DelayedCommunicator(wrapping: base, model: LatencyModel(perMessage: alpha))
            let start = DispatchTime.now().uptimeNanoseconds
            var x = [Float](repeating: 1, count: 1 << 16)             // 2 ranks, 256 KiB: 2 rounds
            try comm.allreduceSum(&x)
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        for elapsed in seconds { XCTAssertGreaterThanOrEqual(elapsed, 2 * alpha) }
    }

    func testCountingCommunicatorTalliesBytesPerOperation() throws {
        let tallies = try SimulatedRanks.run(size: 2) { base -> CollectiveTally in
            let comm = CountingCommunicator(wrapping: base)
            var x = [Float](repeating: 1, count: 10)
            try comm.allreduceSum(&x)
            var y = [Double](repeating: 1, count: 3)
            try y.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0).wait() }
            _ = try comm.allgather([Int32](repeating: 0, count: 4))
            XCTAssertEqual(x, [Float](repeating: 2, count: 10))
            return comm.tally
        }
        for tally in tallies {
            XCTAssertEqual(tally[.allreduce], CollectiveTally.Entry(calls: 2, bytes: 64, sizes: [40, 24]))
            XCTAssertEqual(tally[.allgather], CollectiveTally.Entry(calls: 1, bytes: 16, sizes: [16]))
            XCTAssertEqual(tally[.broadcast].calls, 0)
        }
    }
}
