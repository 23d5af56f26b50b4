import Foundation
@testable import XBM
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
    func testFramingMatchesTensorBoardsOwnWriter() throws {
        XCTAssertEqual(hexString(TFRecord.frame([])), "000000000000000029039807d8ea82a2")
        XCTAssertEqual(hexString(TFRecord.frame(Array("hello".utf8))), "0500000000000000eab2043e68656c6c6fbb1f1c19")
        XCTAssertEqual(try TFRecordReader.records(TFRecord.frame([]) + TFRecord.frame(Array("hello".utf8))),
                       [[], Array("hello".utf8)])
    }

    func testTheReaderFindsAFlippedBitAndATornRecord() {
        let record = TFRecord.frame(Array("hello".utf8))
        for index in record.indices {
            var damaged = record
            damaged[index] ^= 0x10
            XCTAssertThrowsError(try TFRecordReader.records(damaged), "bit 4 of byte \(index) flipped")
        }
        XCTAssertThrowsError(try TFRecordReader.records(Array(record.dropLast())))
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// Reads TFRecord files back for the tests (xbm-dist only writes them): splits the bytes into
/// records and checks both masked CRCs of each.
enum TFRecordReader {
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else { throw Malformed(description: "a torn length at byte \(offset)") }
            let lengthBytes = Array(bytes[offset..<offset + 8])
            guard littleEndian(bytes[offset + 8..<offset + 12]) == TFRecord.maskedCRC32C(lengthBytes) else {
                throw Malformed(description: "the length's CRC at byte \(offset) does not match")
            }
            let start = offset + 12
            let length: UInt64 = littleEndian(lengthBytes[...])
            guard UInt64(bytes.count - start) >= length + 4 else { throw Malformed(description: "a torn record at byte \(offset)") }
            let end = start + Int(length)
            let data = Array(bytes[start..<end])
            guard littleEndian(bytes[end..<end + 4]) == TFRecord.maskedCRC32C(data) else {
                throw Malformed(description: "the data's CRC at byte \(end) does not match")
            }
            records.append(data)
            offset = end + 4
        }
        return records
    }

    static func events(in file: URL) throws -> [Tensorflow_Event] {
        try records(Array(Data(contentsOf: file))).map { try Tensorflow_Event(serializedBytes: $0) }
    }

    private static func littleEndian<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>) -> T {
        bytes.reversed().reduce(0) { $0 << 8 | T($1) }
    }
}
