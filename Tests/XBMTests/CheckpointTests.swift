@testable import XBMFormats
@testable import XBMKernels
import XCTest

final class CheckpointTests: XCTestCase {
    struct Config: Codable, Equatable { var model: String; var iteration: Int; var lr: Double }

    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("xbm-checkpoint-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func sampleArchive() throws -> CheckpointArchive {
        var archive = CheckpointArchive()
        archive.setFloats([1.5, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 3], named: "parameters")
        archive.setInt32s([Int32.min, -1, 0, 7, Int32.max], named: "memory.labels")
        archive.setUInt64s([0, 1, UInt64.max, 0x0123_4567_89AB_CDEF], named: "rng")
        archive.setBytes([0, 255, 7], named: "opaque")          // 3 bytes: exercises padding
        archive.setBytes([], named: "empty")
        try archive.setJSON(Config(model: "glyphnet", iteration: 800, lr: 1e-3), named: "config")
        return archive
    }

    /// Bit-by-bit CRC-32C, the reference for the table-driven one.
    func bitwiseCRC32C(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    func testCRC32CMatchesTheStandardCheckValueAndABitwiseReference() {
        var crc = CRC32C()
        Array("123456789".utf8).withUnsafeBytes { crc.update($0) }
        XCTAssertEqual(crc.value, 0xE306_9283)                  // the published check value of CRC-32C
        var random = RandomSource(seed: 2)
        for length in [0, 1, 7, 8, 9, 63, 200] {
            let bytes = (0..<length + 3).map { _ in UInt8(random.nextInt(below: 256)) }
            var split = CRC32C()                                // unaligned start, fed in two pieces
            bytes.withUnsafeBytes { raw in
                split.update(UnsafeRawBufferPointer(rebasing: raw[3..<3 + length / 2]))
                split.update(UnsafeRawBufferPointer(rebasing: raw[(3 + length / 2)...]))
            }
            XCTAssertEqual(split.value, bitwiseCRC32C(Array(bytes[3...])), "length \(length)")
        }
    }

    func testRoundTripOfEverySectionType() throws {
        let url = directory.appendingPathComponent("checkpoint.xbm")
        try sampleArchive().write(to: url)
        let read = try CheckpointArchive.read(from: url)
        XCTAssertEqual(read.sectionNames, ["parameters", "memory.labels", "rng", "opaque", "empty", "config"])
        let floats = try read.floats(named: "parameters", count: 7)
        XCTAssertEqual(floats.map(\.bitPattern), [1.5, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 3].map { (x: Float) in x.bitPattern })
        XCTAssertEqual(try read.int32s(named: "memory.labels"), [Int32.min, -1, 0, 7, Int32.max])
        XCTAssertEqual(try read.uint64s(named: "rng", count: 4), [0, 1, UInt64.max, 0x0123_4567_89AB_CDEF])
        XCTAssertEqual(try read.bytes(named: "opaque"), [0, 255, 7])
        XCTAssertEqual(try read.bytes(named: "empty"), [])
        XCTAssertEqual(try read.json(Config.self, named: "config"), Config(model: "glyphnet", iteration: 800, lr: 1e-3))
        var destination = [Float](repeating: 0, count: 7)
        try destination.withUnsafeMutableBufferPointer { try read.copyFloats(named: "parameters", into: $0) }
        XCTAssertEqual(destination.map(\.bitPattern), floats.map(\.bitPattern))
    }

    func testLargeArrayRoundTripAndReplacingASectionKeepsItsPlace() throws {
        var random = RandomSource(seed: 4)
        let parameters = (0..<2_500_000).map { _ in random.nextUniform() }      // 10 MB
        var archive = try sampleArchive()
        archive.setFloats(parameters, named: "parameters")
        let url = directory.appendingPathComponent("large.xbm")
        try archive.write(to: url)
        let read = try CheckpointArchive.read(from: url)
        XCTAssertEqual(read.sectionNames.first, "parameters")
        XCTAssertEqual(try read.floats(named: "parameters", count: parameters.count), parameters)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int, archive.encoded().count)
    }

    func testEverySingleByteFlipIsDetected() throws {
        let file = try sampleArchive().encoded()
        var positions = Array(0..<32)                           // the whole header
        var random = RandomSource(seed: 8)
        for _ in 0..<60 { positions.append(32 + random.nextInt(below: file.count - 32)) }
        positions.append(file.count - 1)
        for position in positions {
            for flip: UInt8 in [0x01, 0x80, 0xFF] {
                var corrupted = file
                corrupted[position] ^= flip
                XCTAssertThrowsError(try CheckpointArchive(decoding: corrupted, path: "c.xbm"), "byte \(position) ^ \(flip)") { error in
                    guard let error = error as? CheckpointError else { return XCTFail("\(error)") }
                    switch position {
                    case 0..<8: XCTAssertEqual(error, .badMagic(path: "c.xbm"))
                    case 8..<12: guard case .unsupportedVersion = error else { return XCTFail("\(error)") }
                    case 16..<24:
                        switch error { case .truncated, .malformed: break; default: XCTFail("\(error)") }
                    default: guard case .checksumMismatch = error else { return XCTFail("byte \(position): \(error)") }
                    }
                }
            }
        }
    }

    func testChecksumMismatchMessage() {
        let error = CheckpointError.checksumMismatch(path: "run/checkpoint.xbm", stored: 0x1234, computed: 0xABCD_EF01)
        XCTAssertEqual(error.description, "checkpoint run/checkpoint.xbm is corrupted: checksum mismatch (stored 0x00001234, computed 0xabcdef01): its bytes changed after it was written")
    }

    func testTruncationIsDetected() throws {
        let file = try sampleArchive().encoded()
        for length in [0, 5, 8, 31, 32, 40, file.count / 2, file.count - 8, file.count - 1] {
            XCTAssertThrowsError(try CheckpointArchive(decoding: Array(file[0..<length]), path: "t.xbm")) { error in
                guard case .truncated(_, let expected, let actual) = error as? CheckpointError else { return XCTFail("\(length): \(error)") }
                XCTAssertEqual(actual, length)
                XCTAssertEqual(expected, length < 32 ? 32 : file.count)
            }
        }
        let url = directory.appendingPathComponent("cut.xbm")
        try Data(file[0..<file.count - 3]).write(to: url)
        XCTAssertThrowsError(try CheckpointArchive.read(from: url)) { XCTAssertEqual($0 as? CheckpointError, .truncated(path: url.path, expectedBytes: file.count, actualBytes: file.count - 3)) }
    }

    func testMissingFileBadMagicAndSectionErrors() throws {
        let missing = directory.appendingPathComponent("none.xbm")
        XCTAssertThrowsError(try CheckpointArchive.read(from: missing)) { XCTAssertEqual($0 as? CheckpointError, .fileMissing(path: missing.path)) }
        XCTAssertThrowsError(try CheckpointArchive(decoding: Array("{\"not\": \"a checkpoint\"} padding padding".utf8), path: "x")) {
            XCTAssertEqual($0 as? CheckpointError, .badMagic(path: "x"))
        }
        let archive = try CheckpointArchive(decoding: try sampleArchive().encoded(), path: "s.xbm")
        XCTAssertThrowsError(try archive.floats(named: "momentum")) { XCTAssertEqual($0 as? CheckpointError, .missingSection(path: "s.xbm", name: "momentum")) }
        XCTAssertThrowsError(try archive.floats(named: "rng")) {
            XCTAssertEqual($0 as? CheckpointError, .wrongSectionKind(path: "s.xbm", name: "rng", expected: .float32, found: .uint64))
        }
        XCTAssertThrowsError(try archive.floats(named: "parameters", count: 8)) {
            XCTAssertEqual($0 as? CheckpointError, .wrongSectionSize(path: "s.xbm", name: "parameters", expectedCount: 8, foundCount: 7))
        }
        var tooSmall = [Float](repeating: 0, count: 6)
        XCTAssertThrowsError(try tooSmall.withUnsafeMutableBufferPointer { try archive.copyFloats(named: "parameters", into: $0) })
        XCTAssertThrowsError(try archive.json([String].self, named: "config")) {
            guard case .undecodableSection(_, "config", _) = $0 as? CheckpointError else { return XCTFail("\($0)") }
        }
    }

    func testAtomicWriteLeavesNoTemporaryFiles() throws {
        let url = directory.appendingPathComponent("checkpoint.xbm")
        var archive = try sampleArchive()
        try archive.write(to: url)
        archive.setInt32s([42], named: "memory.labels")
        try archive.write(to: url)                              // replaces the previous checkpoint
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.xbm"])
        XCTAssertEqual(try CheckpointArchive.read(from: url).int32s(named: "memory.labels"), [42])

        // Failures: no directory to write into; a directory in the way of the rename.
        let nowhere = directory.appendingPathComponent("absent/checkpoint.xbm")
        XCTAssertThrowsError(try archive.write(to: nowhere)) { guard case .writeFailed = $0 as? CheckpointError else { return XCTFail("\($0)") } }
        let blocked = directory.appendingPathComponent("blocked.xbm")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("inside"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try archive.write(to: blocked)) { guard case .writeFailed = $0 as? CheckpointError else { return XCTFail("\($0)") } }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), ["blocked.xbm", "checkpoint.xbm"])
        XCTAssertEqual(try CheckpointArchive.read(from: url).int32s(named: "memory.labels"), [42])
    }
}
