import Foundation
@testable import XBMFormats
import XCTest

/// The TFRecord framing of TensorBoard event files (Docs/evaluation.md) and the CRC-32C it
/// masks, against published check values and the bytes of TensorBoard's own writer.
final class TensorBoardRecordTests: XCTestCase {
    private func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update($0) }
        return crc.value
    }

    /// The check value of the CRC catalogue and the examples of RFC 3720 (iSCSI), B.4.
    func testCRC32CMatchesPublishedCheckValues() {
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(crc32c([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(crc32c((0..<32).map(UInt8.init)), 0x46DD_794E)
    }

    /// Expected bytes from tensorboard 2.21's `tensorboard.summary.writer.record_writer.RecordWriter`.
    func testFramingMatchesTensorBoardsOwnWriter() {
        XCTAssertEqual(hexString(TFRecord.frame([])), "000000000000000029039807d8ea82a2")
        XCTAssertEqual(hexString(TFRecord.frame(Array("hello".utf8))), "0500000000000000eab2043e68656c6c6fbb1f1c19")
    }

    func testReadingReturnsTheRecordsUpToATornOrDamagedOne() {
        let file = TFRecord.frame(Array("hello".utf8)) + TFRecord.frame([]) + TFRecord.frame([7, 8, 9])
        let whole = TFRecord.read(file)
        XCTAssertEqual(whole.records, [Array("hello".utf8), [], [7, 8, 9]])
        XCTAssertEqual(whole.end, file.count)

        let second = 21                                        // where the second record starts
        for cut in 1..<16 {
            XCTAssertEqual(TFRecord.read(Array(file.dropLast(cut))).records.count, 2, "\(cut) bytes cut off")
        }
        for index in file.indices {
            var damaged = file
            damaged[index] ^= 0x10
            let read = TFRecord.read(damaged)
            XCTAssertEqual(read.records.count, index < second ? 0 : index < second + 16 ? 1 : 2, "bit 4 of byte \(index) flipped")
            XCTAssertLessThan(read.end, file.count)
        }
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
