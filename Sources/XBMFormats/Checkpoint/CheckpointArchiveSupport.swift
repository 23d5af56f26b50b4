import Foundation

// Errors, checksum and file primitives of `CheckpointArchive`.

/// Why a checkpoint could not be read, used or written; each message is one line naming the
/// file, what is wrong and what was expected.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case fileMissing(path: String)
    case unreadable(path: String, reason: String)
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    case badMagic(path: String)
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
    case checksumMismatch(path: String, stored: UInt32, computed: UInt32)
    case malformed(path: String, reason: String)
    case missingSection(path: String, name: String)
    case wrongSectionKind(path: String, name: String, expected: CheckpointArchive.SectionKind, found: CheckpointArchive.SectionKind)
    case wrongSectionSize(path: String, name: String, expectedCount: Int, foundCount: Int)
    case undecodableSection(path: String, name: String, reason: String)
    case writeFailed(path: String, operation: String, reason: String)

    public var description: String {
        switch self {
        case .fileMissing(let path):
            "checkpoint \(path) does not exist"
        case .unreadable(let path, let reason):
            "checkpoint \(path) cannot be read: \(reason)"
        case .truncated(let path, let expected, let actual):
            "checkpoint \(path) is truncated: \(actual) bytes, expected \(expected) (a partial copy, or a full disk when it was written)"
        case .badMagic(let path):
            "\(path) is not an xbm-dist checkpoint (it does not start with \"XBMCKPT1\")"
        case .unsupportedVersion(let path, let found, let supported):
            "checkpoint \(path) has format version \(found); this build reads version \(supported)"
        case .checksumMismatch(let path, let stored, let computed):
            "checkpoint \(path) is corrupted: checksum mismatch (stored \(hex(stored)), computed \(hex(computed))): its bytes changed after it was written"
        case .malformed(let path, let reason):
            "checkpoint \(path) is malformed: \(reason)"
        case .missingSection(let path, let name):
            "checkpoint \(path) has no section \"\(name)\""
        case .wrongSectionKind(let path, let name, let expected, let found):
            "checkpoint \(path): section \"\(name)\" holds \(found), expected \(expected)"
        case .wrongSectionSize(let path, let name, let expected, let found):
            "checkpoint \(path): section \"\(name)\" holds \(found) values, expected \(expected) (a checkpoint of another model or configuration?)"
        case .undecodableSection(let path, let name, let reason):
            "checkpoint \(path): section \"\(name)\" is not the expected JSON: \(reason)"
        case .writeFailed(let path, let operation, let reason):
            "cannot write checkpoint \(path): \(operation) failed: \(reason)"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final xor
/// 0xFFFFFFFF), slicing by 8 bytes: eight 256-entry tables let one step consume 8 bytes.
/// Check value: CRC-32C("123456789") = 0xE3069283.
struct CRC32C {
    private static let tables: [UInt32] = {                   // (8, 256)
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[byte] = crc
        }
        for table in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(table - 1) * 256 + byte]
                tables[table * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    private var state: UInt32 = 0xFFFF_FFFF

    var value: UInt32 { state ^ 0xFFFF_FFFF }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var crc = state
        let count = bytes.count
        Self.tables.withUnsafeBufferPointer { tables in
            let t = tables.baseAddress!
            var i = 0
            while i + 8 <= count {
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ UInt64(crc)
                crc = t[7 * 256 + Int(word & 0xFF)] ^ t[6 * 256 + Int((word >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xFF)] ^ t[4 * 256 + Int((word >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xFF)] ^ t[2 * 256 + Int((word >> 40) & 0xFF)]
                    ^ t[1 * 256 + Int((word >> 48) & 0xFF)] ^ t[Int(word >> 56)]
                i += 8
            }
            while i < count {
                crc = (crc >> 8) ^ t[Int((crc ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
        }
        state = crc
    }
}

/// The POSIX calls behind reading and atomically replacing a checkpoint.
enum FileIO {
    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func readAll(path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw CheckpointError.fileMissing(path: path) }
            throw CheckpointError.unreadable(path: path, reason: errorText(code))
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw CheckpointError.unreadable(path: path, reason: errorText(errno)) }
        let size = Int(status.st_size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            while initialized < size {
                let n = read(fd, buffer.baseAddress! + initialized, size - initialized)
                if n > 0 { initialized += n } else if n < 0 && errno == EINTR { continue } else { failure = n < 0 ? errno : 0; break }
            }
        }
        if failure != 0 { throw CheckpointError.unreadable(path: path, reason: errorText(failure)) }
        guard bytes.count == size else { throw CheckpointError.unreadable(path: path, reason: "the file shrank while being read") }
        return bytes
    }

    /// Writes `bytes` to "<path>.tmp-<pid>", fsyncs it, renames it to `path` and fsyncs the
    /// directory; removes the temporary file on any failure.
    static func replaceAtomically(path: String, with bytes: [UInt8]) throws {
        let temporary = "\(path).tmp-\(getpid())"
        func fail(_ operation: String, _ code: Int32) -> CheckpointError {
            .writeFailed(path: path, operation: operation, reason: errorText(code))
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("creating \(temporary)", errno) }
        var written = 0
        let writeError: Int32 = bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n >= 0 { written += n } else if errno != EINTR { return errno }
            }
            return 0
        }
        let syncError = writeError == 0 && fsync(fd) != 0 ? errno : 0
        let closeError = close(fd) != 0 ? errno : 0
        if writeError != 0 || syncError != 0 || closeError != 0 {
            unlink(temporary)
            let (operation, code) = writeError != 0 ? ("write", writeError) : syncError != 0 ? ("fsync", syncError) : ("close", closeError)
            throw fail(operation, code)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw fail("renaming \(temporary)", code)
        }
        // Make the rename itself durable.
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw fail("opening directory \(directory)", errno) }
        defer { close(directoryFD) }
        // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as they allow.
        guard fsync(directoryFD) == 0 || errno == EINVAL else { throw fail("fsync of directory \(directory)", errno) }
    }
}
