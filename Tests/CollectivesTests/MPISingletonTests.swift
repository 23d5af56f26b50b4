import Collectives
import XCTest

/// The MPI backend as a singleton (no mpirun): size 1, every collective the identity. The
/// multi-rank MPI checks run under real mpirun from Launch/test (`bench collectives`).
final class MPISingletonTests: XCTestCase {
    func testSingletonWorldBehavesLikeOneRank() throws {
        let comm = try MPICommunicator()
        XCTAssertEqual(comm.size, 1)
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.ranksOnNode, 1)
        var x: [Float] = [1.5, -2]
        try comm.allreduceSum(&x)
        XCTAssertEqual(x, [1.5, -2])
        var d: [Double] = [3]
        try comm.allreduceMax(&d)
        XCTAssertEqual(d, [3])
        XCTAssertEqual(try comm.allgather([Int32(7), 8]), [7, 8])
        try comm.broadcast(&x, root: 0)
        XCTAssertEqual(x, [1.5, -2])
        try comm.barrier()
        XCTAssertThrowsError(try comm.broadcast(&x, root: 3))
    }
}
