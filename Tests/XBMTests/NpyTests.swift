import Foundation
import TestSupport
import XBMFormats
import XCTest

final class NpyTests: XCTestCase {
    func roundTrip<T: NpyElement & Equatable>(_ values: [T], shape: [Int], version: Int?) throws {
        let url = makeScratchDirectory("npy").appendingPathComponent("a.npy")
        try Npy.write(values, shape: shape, to: url, version: version)
        let bytes = [UInt8](try Data(contentsOf: url))
        XCTAssertEqual(bytes[6], UInt8(version ?? 1), "version byte")
        let lengthBytes = (version ?? 1) == 1 ? 2 : 4
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        XCTAssertEqual((8 + lengthBytes + headerLength) % 64, 0, "payload aligned to 64")
        XCTAssertEqual(bytes[8 + lengthBytes + headerLength - 1], 0x0A, "header ends with a newline")
        let array = try NpyArray.read(contentsOf: url)
        XCTAssertEqual(array.dtype, T.npyDType)
        XCTAssertEqual(array.shape, shape)
        XCTAssertEqual(array.values(as: T.self), values)
    }

    func testRoundTripEveryDTypeVersionAndShape() throws {
        for version in [nil, 1, 2, 3] {
            try roundTrip((0..<24).map { UInt8($0 * 10) }, shape: [2, 3, 4], version: version)
            try roundTrip([Int32.min, -1, 0, 1, Int32.max, 7], shape: [6], version: version)
            try roundTrip([Int64.min, -5, 1 << 40, Int64.max], shape: [2, 2], version: version)
            try roundTrip([Float(-1.5), .pi, 0, .greatestFiniteMagnitude, -0.0, 1e-30], shape: [1, 2, 3], version: version)
            try roundTrip([UInt8](), shape: [0, 5], version: version)
            try roundTrip((0..<120).map { Float($0) }, shape: [2, 3, 4, 5], version: version)
        }
    }

    func testReadsAHandMadeFileInEachVersion() throws {
        for major: UInt8 in [1, 2, 3] {
            let bytes = handMadeNpy(major: major, header: npyHeader("<i4", [3]), payload: littleEndianBytes([Int32(1), -2, 300]))
            let array = try NpyArray.decode(Data(bytes))
            XCTAssertEqual(array.shape, [3])
            XCTAssertEqual(array.values(as: Int32.self), [1, -2, 300])
        }
        // numpy's older 16-byte alignment, a different key order and no trailing comma are all valid.
        let loose = handMadeNpy(header: "{'shape': (2, 1), 'fortran_order': False, 'descr': '|u1'}   \n", payload: [9, 8], padded: false)
        let array = try NpyArray.decode(Data(loose))
        // A header length that leaves the payload misaligned for 4-byte elements still reads.
        let odd = handMadeNpy(header: npyHeader("<f4", [2]) + " \n", payload: littleEndianBytes([Float(1.5).bitPattern, Float(-2).bitPattern]), padded: false)
        XCTAssertNotEqual((odd.count - 8) % 4, 0)
        XCTAssertEqual(try NpyArray.decode(Data(odd)).values(as: Float.self), [1.5, -2])
        XCTAssertEqual(array.shape, [2, 1])
        XCTAssertEqual(array.values(as: UInt8.self), [9, 8])
    }

    func assertError(_ bytes: [UInt8], _ matches: (NpyError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try NpyArray.decode(Data(bytes), name: "bad.npy"), file: file, line: line) { error in
            guard let npy = error as? NpyError else { return XCTFail("not an NpyError: \(error)", file: file, line: line) }
            XCTAssertTrue(matches(npy), "unexpected error: \(npy)", file: file, line: line)
            XCTAssertTrue(npy.description.hasPrefix("bad.npy: "), "names the file: \(npy)", file: file, line: line)
            XCTAssertFalse(npy.description.contains("\n"), "one line", file: file, line: line)
        }
    }

    func testMalformedFilesGiveTheirOwnErrors() {
        let good = handMadeNpy(header: npyHeader("<f4", [2, 2]), payload: [UInt8](repeating: 0, count: 16))
        assertError(Array(good.dropLast(3))) { if case .truncated = $0 { true } else { false } }
        assertError(Array(good.prefix(20))) { if case .truncated = $0 { true } else { false } }
        assertError(Array(good.prefix(4))) { if case .truncated = $0 { true } else { false } }
        var magic = good; magic[1] = UInt8(ascii: "X")
        assertError(magic) { $0 == .badMagic(file: "bad.npy") }
        assertError(Array("PK\u{3}\u{4}not numpy at all".utf8)) { $0 == .badMagic(file: "bad.npy") }
        var version = good; version[6] = 4
        assertError(version) { $0 == .unsupportedVersion(file: "bad.npy", major: 4, minor: 0) }
        for header in ["{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2}",
                       "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2, 2), }",
                       "{'descr': '<f4', 'shape': (2, 2), }",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }",
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}",
                       "['descr', '<f4']"] {
            assertError(handMadeNpy(header: header, payload: [UInt8](repeating: 0, count: 16))) {
                if case .badHeader = $0 { true } else { false }
            }
        }
        assertError(handMadeNpy(header: npyHeader("<f4", [2, 2], fortran: true), payload: [UInt8](repeating: 0, count: 16))) {
            $0 == .fortranOrder(file: "bad.npy")
        }
        assertError(handMadeNpy(header: npyHeader(">f4", [2, 2]), payload: [UInt8](repeating: 0, count: 16))) {
            $0 == .bigEndian(file: "bad.npy", descr: ">f4")
        }
        for descr in ["<f8", "<u2", "|b1", "<c8"] {
            assertError(handMadeNpy(header: npyHeader(descr, [2]), payload: [UInt8](repeating: 0, count: 16))) {
                $0 == .unsupportedDType(file: "bad.npy", descr: descr)
            }
        }
        assertError(good + [0, 0, 0, 0]) {
            $0 == .sizeMismatch(file: "bad.npy", shape: [2, 2], dtype: "<f4", expectedBytes: 16, actualBytes: 20)
        }
    }

    func testMissingFileIsUnreadable() {
        XCTAssertThrowsError(try NpyArray.read(contentsOf: URL(fileURLWithPath: "/nonexistent/x.npy"))) { error in
            guard case .unreadable(let file, _)? = error as? NpyError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "/nonexistent/x.npy")
        }
    }
}
