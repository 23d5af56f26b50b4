import ArgumentParser
import DatasetImport
import XCTest
@testable import xbm_dist

/// `xbm-dist data import`'s arguments: the format is typed, --size and --vehicleid-test are checked.
final class ImportCommandTests: XCTestCase {
    func testArguments() throws {
        let command = try ImportCommand.parse(["vehicleid", "src", "--out", "out", "--size", "64", "--skip-unreadable"])
        XCTAssertEqual(command.format, .vehicleid)
        XCTAssertEqual(command.vehicleIDTest, 800)
        XCTAssertTrue(command.skipUnreadable)
        XCTAssertEqual(try ImportCommand.parse(["vehicleid", "s", "--out", "o", "--size", "8", "--vehicleid-test", "2400"]).vehicleIDTest, 2400)
        for bad in [["gif", "s", "--out", "o", "--size", "8"],                                  // unknown format
                    ["cub", "s", "--out", "o"],                                                  // --size is required
                    ["cub", "s", "--out", "o", "--size", "0"],
                    ["cub", "s", "--out", "o", "--size", "5000"],
                    ["vehicleid", "s", "--out", "o", "--size", "8", "--vehicleid-test", "900"]] {
            XCTAssertThrowsError(try ImportCommand.parse(bad), "\(bad)")
        }
    }
}
