import Collectives
import Foundation
import TestSupport
@testable import XBMFormats
@testable import XBMModel
@testable import XBMTraining
import XCTest

/// The parsers of untrusted files (.npy arrays, config files, checkpoints) fed what the fuzzers
/// of Launch/fuzz found and hand-made malformations of each kind. Every input must end in an
/// error that every rank reports alike (`SameOnEveryRankError`), in one line that names the
/// problem — never a trap, a hang or a huge allocation. Fixtures/fuzz/ holds the fuzzers'
/// findings and inputs made by hand at their crash sites, named `<parser>-<what is wrong>`.
final class FuzzRegressionTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz")

    func fixture(_ name: String) throws -> Data { try Data(contentsOf: Self.fixtures.appendingPathComponent(name)) }

    /// `parse` must throw a `SameOnEveryRankError` whose one-line message contains `fragment`.
    func assertRejects(_ fragment: String, file: StaticString = #filePath, line: UInt = #line, _ parse: () throws -> Void) {
        XCTAssertThrowsError(try parse(), file: file, line: line) { error in
            XCTAssertTrue(error is any SameOnEveryRankError, "\(type(of: error)) is not reported alike on every rank: \(error)",
                          file: file, line: line)
            let message = "\(error)"
            XCTAssertFalse(message.contains(where: \.isNewline), "more than one line: \(message.debugDescription)", file: file, line: line)
            XCTAssertTrue(message.contains(fragment), "\(message.debugDescription) does not contain \(fragment.debugDescription)",
                          file: file, line: line)
        }
    }

    // MARK: .npy

    func assertNpyRejects(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        assertRejects(fragment, file: file, line: line) { _ = try NpyArray.decode(Data(bytes), name: "bad.npy") }
    }

    func testNpyFindingsOfTheFuzzer() throws {
        // Header text was quoted raw into the message: a form feed after the shape's last
        // dimension, and a key holding a carriage return and a NUL, split the error line.
        assertNpyRejects([UInt8](try fixture("npy-form-feed-in-shape.npy")), "expected ')' at character 55, found '\\u{C}'")
        assertNpyRejects([UInt8](try fixture("npy-carriage-return-in-key.npy")), "unexpected key 'fortran_\\r\\u{0}r'")
    }

    func testMalformedNpyFiles() {
        let valid = handMadeNpy(header: npyHeader("<f4", [2, 3]), payload: [UInt8](repeating: 0, count: 24))
        assertNpyRejects(Array("PK\u{3}\u{4}".utf8) + valid.dropFirst(4), "not a .npy file")
        assertNpyRejects(Array(valid.prefix(40)), "header claims 118 bytes, only 30 present")
        var version = valid
        version[6] = 9
        assertNpyRejects(version, "version 9.0 is not supported")
        // Shapes whose size overflows, or that claim a terabyte the file does not hold: refused
        // from the header alone, before anything is allocated.
        assertNpyRejects(handMadeNpy(header: npyHeader("<f4", [1 << 62]), payload: []), "shape [4611686018427387904] is too large")
        assertNpyRejects(handMadeNpy(header: npyHeader("|u1", [1 << 20, 1 << 20]), payload: []),
                         "payload has 0 bytes, shape [1048576, 1048576] of |u1 needs 1099511627776")
        for shape in ["(-3,)", "(99999999999999999999,)"] {
            assertNpyRejects(handMadeNpy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }", payload: []),
                             "expected a non-negative integer in 'shape'")
        }
        assertNpyRejects(handMadeNpy(header: npyHeader("<f8\n", [1]), payload: []), "unsupported .npy dtype '<f8\\n'")
    }

    // MARK: Config files

    func assertConfigRejects(_ json: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        assertRejects(fragment, file: file, line: line) {
            try TrainingConfig(json: Data(json.utf8), source: "--config bad.json").validate(ranks: 1)
        }
    }

    func testConfigFindingOfTheFuzzer() throws {
        // The first unknown key in sorted order holds a carriage return: it was quoted raw.
        let file = try fixture("config-carriage-return-in-key.json")
        assertRejects("--config bad.json: unknown key \"\\rift-every\" (did you mean \"drift-every\"?)") {
            _ = try TrainingConfig(json: file, source: "--config bad.json")
        }
    }

    func testMalformedConfigs() {
        assertConfigRejects(#"{"lr": 0.1"#, "not valid JSON: Unexpected end of file")
        assertConfigRejects(#"{"lr": 01}"#, "not valid JSON: Number with leading zero")
        let nested = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        assertConfigRejects(#"{"recall-k": \#(nested)}"#, "not valid JSON: Too many nested arrays or dictionaries")
        assertConfigRejects("[16384, 0.001]", "expected a JSON object")
        // A value of the wrong type names the key and the type it should have.
        assertConfigRejects(#"{"data": 5}"#, #"key "data" should be String"#)
        assertConfigRejects(#"{"lr": "fast"}"#, #"key "lr" should be Double"#)
        // Numbers the key's type cannot hold: Foundation names no key for them, the reader does.
        assertConfigRejects(#"{"seed": -1}"#, #"key "seed" cannot hold -1; its default is 0"#)
        assertConfigRejects(#"{"lr": 0.1, "dim": 1.5}"#, #"key "dim" cannot hold 1.5; its default is 128"#)
        assertConfigRejects(#"{"loss": "hinge"}"#, #"key "loss""#)
        // Text from the file stays on the line: a line separator in a key, a newline in a value.
        assertConfigRejects(#"{"drift\u2028every": 1}"#, #"unknown key "drift\u{2028}every""#)
        assertConfigRejects(#"{"milestones": ["75\n%"]}"#, #"got "75\n%""#)
        // Well-formed but out of range: validate(ranks:) refuses it.
        assertConfigRejects(#"{"batch": 0}"#, "--batch must be at least 2")
        assertConfigRejects(#"{"lr": -0.5}"#, "--lr must be positive, got -0.5")
    }

    /// FuzzYAML's first finding: Yams' scanner error spans lines (the text, then a caret).
    func testYAMLFindingOfTheFuzzer() throws {
        let text = String(decoding: try fixture("yaml-scanner-error-over-lines.yaml"), as: UTF8.self)
        assertRejects("fuzz.yaml: not valid YAML (") { _ = try TrainingConfig(yaml: text, source: "--config fuzz.yaml") }
        // Its second: YAML's .nan (and .inf), which no JSON number holds.
        let nan = String(decoding: try fixture("yaml-nan-value.yaml"), as: UTF8.self)
        assertRejects("options take finite numbers") { _ = try TrainingConfig(yaml: nan, source: "--config fuzz.yaml") }
        assertRejects("\"lr\" holds inf") { _ = try TrainingConfig(yaml: "lr: .inf", source: "--config fuzz.yaml") }
        // Its third: a mapping as a key (`{}:`), on which Yams' own conversion traps.
        let mappingKey = String(decoding: try fixture("yaml-mapping-as-key.yaml"), as: UTF8.self)
        assertRejects("a key that is not an option name (a mapping)") {
            _ = try TrainingConfig(yaml: mappingKey, source: "--config fuzz.yaml")
        }
    }

    // MARK: Checkpoints

    func assertCheckpointRejects(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        assertRejects(fragment, file: file, line: line) { _ = try TrainingCheckpoint.decode(bytes, path: "bad.xbm") }
    }

    func testCheckpointFindingOfTheFuzzer() throws {
        // A memory of 32 rows in a ring of 33 with its head at row 0, which no ring holds, and no
        // saved stamps: the reader rebuilt the stamps from these counters and indexed past them.
        // Decoding must not trap; restoring the memory refuses the counters by name.
        let checkpoint = try TrainingCheckpoint.decode([UInt8](try fixture("checkpoint-memory-ring-without-stamps.xbm")),
                                                       path: "bad.xbm")
        let snapshot = try XCTUnwrap(checkpoint.memory)
        assertRejects("head 0 with count 32 of 33") {
            try CrossBatchMemory(capacity: snapshot.capacity, dimension: snapshot.dimension).restore(snapshot)
        }
    }

    func testCheckpointCountersAtTheEdgesOfInt() throws {
        // Hand-made next to the finding above, from its crash site: checkpoints without stamps
        // whose memory claims Int.max rows (the ring index `% M + M` overflowed), 2^40 rows (4 TB
        // of stamps allocated before anything compared them with the 32 labels the file holds),
        // or whose iteration is Int.min (`iteration - 1` overflowed).
        for name in ["checkpoint-capacity-int-max.xbm", "checkpoint-count-2-to-the-40.xbm"] {
            let checkpoint = try TrainingCheckpoint.decode([UInt8](try fixture(name)), path: "bad.xbm")
            let snapshot = try XCTUnwrap(checkpoint.memory)
            assertRejects("cannot restore a memory of 32 rows") {
                try CrossBatchMemory(capacity: 32, dimension: snapshot.dimension).restore(snapshot)
            }
        }
        assertCheckpointRejects([UInt8](try fixture("checkpoint-iteration-int-min.xbm")), "iteration -9223372036854775808 is negative")
    }

    /// `file` with its declared length and checksum made to match its bytes, so that a
    /// malformation behind the header reaches the section parser.
    func sealed(_ file: [UInt8]) -> [UInt8] {
        var file = file
        file.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt64(raw.count).littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: CheckpointArchive.checksum(UnsafeRawBufferPointer(raw)).littleEndian, toByteOffset: 24, as: UInt32.self)
        }
        return file
    }

    func testMalformedCheckpoints() throws {
        var archive = CheckpointArchive()
        archive.setFloats([1, 2, 3], named: "parameters")
        let valid = archive.encoded()           // one section at byte 32: name length, kind, payload length
        func patched(at offset: Int, _ bytes: [UInt8]) -> [UInt8] {
            var file = valid
            file.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            return sealed(file)
        }
        assertCheckpointRejects(Array("PK\u{3}\u{4}".utf8) + valid.dropFirst(4), "is not an xbm-dist checkpoint")
        assertCheckpointRejects([], "is truncated: 0 bytes, expected 32")
        assertCheckpointRejects(Array(valid.prefix(valid.count / 2)), "is truncated")
        var flipped = valid
        flipped[valid.count - 5] ^= 1
        assertCheckpointRejects(flipped, "checksum mismatch")
        assertCheckpointRejects(patched(at: 12, [0xFF, 0xFF, 0xFF, 0xFF]), "header runs past the end of the file")
        assertCheckpointRejects(patched(at: 32, [0xFF, 0xFF, 0xFF, 0xFF]), "section 0 at byte 32: runs past the end of the file")
        assertCheckpointRejects(patched(at: 36, [7, 0, 0, 0]), "section 0 at byte 32: unknown kind")
        assertCheckpointRejects(patched(at: 40, [UInt8](repeating: 0xFF, count: 8)), "section 0 at byte 32: runs past the end of the file")
        assertCheckpointRejects(patched(at: 40, [3, 0, 0, 0, 0, 0, 0, 0]), "3 bytes is not a whole number of Float32 values")

        var twice = CheckpointArchive()
        twice.setBytes([], named: "a\nb")
        twice.setBytes([], named: "a\nc")
        var duplicate = twice.encoded()
        duplicate[duplicate.count - 6] = UInt8(ascii: "b")     // the second name, "a\nc" padded to 8 bytes
        assertCheckpointRejects(sealed(duplicate), #"duplicate name "a\nb""#)

        var records = CheckpointArchive()
        try records.setJSON(TrainingConfig(), named: "config")
        try records.setJSON(["iteration": "two"], named: "meta")
        assertCheckpointRejects(records.encoded(), #"section "meta" is not the expected JSON: key "iteration" should be Int"#)
    }
}
