import Collectives
import XCTest

final class SingleProcessTests: XCTestCase {
    func testEveryCollectiveIsTheIdentity() throws {
        let comm = SingleProcessCommunicator()
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        var x: [Float] = [1, 2, 3]
        try comm.allreduceSum(&x)
        XCTAssertEqual(x, [1, 2, 3])
        try comm.broadcast(&x, root: 0)
        XCTAssertEqual(x, [1, 2, 3])
        XCTAssertEqual(try comm.allgather([Int32(4), 5]), [4, 5])
        XCTAssertFalse(try comm.any(false))
        XCTAssertTrue(try comm.any(true))
    }

    func testBadRootIsAnError() {
        let comm = SingleProcessCommunicator()
        var x: [Float] = [1]
        XCTAssertThrowsError(try comm.broadcast(&x, root: 1))
    }
}
