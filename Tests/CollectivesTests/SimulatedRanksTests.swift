import Collectives
import Foundation
import XCTest

/// Properties that hold for any world size (horovod's style): allreduce of x is N·x,
/// allgather comes back in rank order, broadcast copies the root's data, and a failing rank
/// ends the others instead of hanging them.
final class SimulatedRanksTests: XCTestCase {
    private let sizes = [1, 2, 3, 4]
    private let lengths = [0, 1, 7, 1000, 65_537]

    func testAllreduceSumOfIdenticalBuffersIsSizeTimesBuffer() throws {
        for size in sizes {
            for length in lengths {
                let results = try SimulatedRanks.run(size: size) { comm -> [Float] in
                    var x = (0..<length).map { Float($0 % 97) * 0.25 }
                    try comm.allreduceSum(&x)
                    return x
                }
                for (rank, x) in results.enumerated() {
                    for i in 0..<length {
                        XCTAssertEqual(x[i], Float(size) * Float(i % 97) * 0.25,
                                       "size \(size) length \(length) rank \(rank) index \(i)")
                    }
                }
            }
        }
    }

    func testAllreduceSumOfRankDependentValuesMatchesClosedForm() throws {
        for size in sizes {
            let results = try SimulatedRanks.run(size: size) { comm -> [Double] in
                var x = (0..<100).map { Double(comm.rank + 1) * Double($0) }
                try comm.allreduceSum(&x)
                return x
            }
            let rankSum = Double(size * (size + 1) / 2)  // Σ_{r=0}^{N-1} (r + 1)
            for x in results {
                XCTAssertEqual(x, (0..<100).map { rankSum * Double($0) })
            }
            // Bit-identical on every rank.
            XCTAssertTrue(results.allSatisfy { $0 == results[0] })
        }
    }

    func testAllreduceMaxPicksLargestRank() throws {
        for size in sizes {
            let results = try SimulatedRanks.run(size: size) { comm -> [Int32] in
                var x: [Int32] = [Int32(comm.rank), Int32(-comm.rank), 5]
                try comm.allreduceMax(&x)
                return x
            }
            for x in results { XCTAssertEqual(x, [Int32(size - 1), 0, 5]) }
        }
    }

    func testAllgatherReturnsBlocksInRankOrder() throws {
        for size in sizes {
            for block in [0, 1, 3, 4096] {
                let results = try SimulatedRanks.run(size: size) { comm -> ([Float], [Int32]) in
                    let floats = (0..<block).map { Float(comm.rank * 10_000 + $0) }
                    let ints = (0..<block).map { Int32(comm.rank * 10_000 + $0) }
                    return (try comm.allgather(floats), try comm.allgather(ints))
                }
                let expected = (0..<size).flatMap { r in (0..<block).map { r * 10_000 + $0 } }
                for (floats, ints) in results {
                    XCTAssertEqual(floats, expected.map(Float.init), "size \(size) block \(block)")
                    XCTAssertEqual(ints, expected.map { Int32($0) }, "size \(size) block \(block)")
                }
            }
        }
    }

    func testBroadcastCopiesRootToEveryRank() throws {
        for size in sizes {
            for root in 0..<size {
                let results = try SimulatedRanks.run(size: size) { comm -> [UInt8] in
                    var x = [UInt8](repeating: UInt8(comm.rank), count: 33)
                    try comm.broadcast(&x, root: root)
                    return x
                }
                for x in results { XCTAssertEqual(x, [UInt8](repeating: UInt8(root), count: 33)) }
            }
        }
    }

    func testBroadcastBytesOfUnknownLength() throws {
        let message = Array("hello from rank 0".utf8)
        let results = try SimulatedRanks.run(size: 3) { comm in
            try comm.broadcast(bytes: comm.rank == 0 ? message : [], root: 0)
        }
        for received in results { XCTAssertEqual(received, message) }
    }

    func testAnyIsTrueEverywhereWhenOneRankSaysSo() throws {
        let results = try SimulatedRanks.run(size: 4) { comm in try comm.any(comm.rank == 2) }
        XCTAssertEqual(results, [true, true, true, true])
        let none = try SimulatedRanks.run(size: 4) { comm in try comm.any(false) }
        XCTAssertEqual(none, [false, false, false, false])
    }

    func testManyCollectivesInSequenceStayInStep() throws {
        // Reuse of buffers between consecutive collectives must never race.
        let results = try SimulatedRanks.run(size: 4) { comm -> Float in
            var x: [Float] = [1]
            for _ in 0..<500 {
                try comm.allreduceSum(&x)
                x[0] = x[0] / 4
            }
            return x[0]
        }
        XCTAssertEqual(results, [1, 1, 1, 1])
    }

    struct Boom: Error, Equatable {}

    func testFailingRankEndsTheOthersInsteadOfHangingThem() throws {
        for size in [2, 3, 4] {
            let start = Date()
            XCTAssertThrowsError(try SimulatedRanks.run(size: size) { comm -> Int in
                if comm.rank == size - 1 { throw Boom() }
                var x: [Float] = [1]
                for _ in 0..<3 { try comm.allreduceSum(&x) }  // would wait forever for the failed rank
                return 0
            }) { error in
                XCTAssertEqual(error as? Boom, Boom(), "the root cause is reported, not the echo")
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 30)
        }
    }

    func testMismatchedCountsAreReportedOnEveryRank() throws {
        XCTAssertThrowsError(try SimulatedRanks.run(size: 2) { comm -> Int in
            var x = [Float](repeating: 1, count: comm.rank == 0 ? 3 : 4)
            try comm.allreduceSum(&x)
            return 0
        }) { error in
            guard case CollectiveError.invalidArgument(let message)? = error as? CollectiveError else {
                return XCTFail("expected invalidArgument, got \(error)")
            }
            XCTAssertTrue(message.contains("3") && message.contains("4"), message)
        }
    }
}

final class CollectivesBenchmarkTests: XCTestCase {
    func testBenchmarkVerifiesEveryOperationOnSimulatedRanks() throws {
        for size in [1, 2, 3] {
            let results = try SimulatedRanks.run(size: size) { comm in
                try CollectivesBenchmark.run(comm, counts: [1, 16, 4096], repetitions: 2).map(\.correct)
            }
            for flags in results {
                XCTAssertEqual(flags.count, 12)   // allreduce, iallreduce, allgather, broadcast × 3 sizes
                XCTAssertTrue(flags.allSatisfy { $0 }, "size \(size): \(flags)")
            }
        }
    }
}
