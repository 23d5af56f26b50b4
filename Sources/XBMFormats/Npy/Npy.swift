import Collectives
import Foundation

// NumPy `.npy` files (format 1.0, 2.0 and 3.0), little endian, C order, four dtypes.
//
// Layout: "\x93NUMPY", major, minor, header length (UInt16 LE for 1.0, UInt32 LE for 2.0/3.0),
// then an ASCII (3.0: UTF-8) Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
// padded with spaces and ended by "\n" so that the payload starts at a multiple of 64 bytes,
// then the raw elements in C order.

/// The element types the package reads and writes.
public enum NpyDType: String, Sendable, CaseIterable {
    case uint8 = "|u1"
    case int32 = "<i4"
    case int64 = "<i8"
    case float32 = "<f4"

    public var itemSize: Int {
        switch self {
        case .uint8: 1
        case .int32, .float32: 4
        case .int64: 8
        }
    }

    /// Accepts numpy's spellings of the same little-endian types ("<u1", "u1", "|u1", ...).
    init?(descr: String) {
        switch descr {
        case "|u1", "<u1", "u1", "=u1": self = .uint8
        case "<i4", "i4": self = .int32
        case "<i8", "i8": self = .int64
        case "<f4", "f4": self = .float32
        default: return nil
        }
    }
}

/// Swift element types that map to an `NpyDType`.
public protocol NpyElement: BitwiseCopyable { static var npyDType: NpyDType { get } }
extension UInt8: NpyElement { public static var npyDType: NpyDType { .uint8 } }
extension Int32: NpyElement { public static var npyDType: NpyDType { .int32 } }
extension Int64: NpyElement { public static var npyDType: NpyDType { .int64 } }
extension Float: NpyElement { public static var npyDType: NpyDType { .float32 } }

/// Why a `.npy` file could not be read or written; each description is one line naming the file.
public enum NpyError: SameOnEveryRankError, Equatable {
    case unreadable(file: String, reason: String)
    case truncated(file: String, detail: String)
    case badMagic(file: String)
    case unsupportedVersion(file: String, major: Int, minor: Int)
    case badHeader(file: String, detail: String)
    case fortranOrder(file: String)
    case bigEndian(file: String, descr: String)
    case unsupportedDType(file: String, descr: String)
    case sizeMismatch(file: String, shape: [Int], dtype: String, expectedBytes: Int, actualBytes: Int)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            "\(file): cannot read or write the .npy file (\(reason))"
        case let .truncated(file, detail):
            "\(file): truncated .npy file: \(detail)"
        case let .badMagic(file):
            "\(file): not a .npy file: expected the magic string \\x93NUMPY at the start"
        case let .unsupportedVersion(file, major, minor):
            "\(file): .npy format version \(major).\(minor) is not supported; expected 1.0, 2.0 or 3.0"
        case let .badHeader(file, detail):
            "\(file): malformed .npy header: \(detail)"
        case let .fortranOrder(file):
            "\(file): .npy array is in Fortran order; expected C order (fortran_order False)"
        case let .bigEndian(file, descr):
            "\(file): .npy dtype '\(printable(descr))' is big endian; expected little endian"
        case let .unsupportedDType(file, descr):
            "\(file): unsupported .npy dtype '\(printable(descr))'; expected one of |u1, <i4, <i8, <f4"
        case let .sizeMismatch(file, shape, dtype, expected, actual):
            "\(file): .npy payload has \(actual) bytes but shape \(shape) of \(dtype) needs \(expected)"
        }
    }
}

/// Owns the bytes an `NpyArray` points into: a private read-only file mapping or a heap copy.
final class ByteStorage: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    private let release: () -> Void

    init(base: UnsafeRawPointer, count: Int, release: @escaping () -> Void) {
        self.base = base
        self.count = count
        self.release = release
    }

    deinit { release() }

    /// Copies `data` into an owned allocation.
    static func copying(_ data: Data) -> ByteStorage {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        data.withUnsafeBytes { if let b = $0.baseAddress { raw.copyMemory(from: b, byteCount: $0.count) } }
        return ByteStorage(base: UnsafeRawPointer(raw), count: data.count) { raw.deallocate() }
    }

    /// Maps `path` read-only (an empty file gets an empty storage).
    static func mapping(path: String) throws -> ByteStorage {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw NpyError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw NpyError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        if size == 0 { return copying(Data()) }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw NpyError.unreadable(file: path, reason: "mmap: " + String(cString: strerror(errno)))
        }
        return ByteStorage(base: UnsafeRawPointer(address), count: size) { munmap(address, size) }
    }
}

/// An n-dimensional array read from a `.npy` file. Large files stay memory mapped; the payload
/// is exposed as raw little-endian bytes in C order.
public final class NpyArray: @unchecked Sendable {
    public let dtype: NpyDType
    public let shape: [Int]
    /// Product of `shape` (1 for a 0-d array).
    public let count: Int
    /// The payload: `count * dtype.itemSize` bytes, valid as long as this array lives.
    public let bytes: UnsafeRawBufferPointer
    private let storage: ByteStorage

    init(dtype: NpyDType, shape: [Int], storage: ByteStorage, payloadOffset: Int) {
        self.dtype = dtype
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = storage
        self.bytes = UnsafeRawBufferPointer(start: storage.base + payloadOffset, count: count * dtype.itemSize)
    }

    /// The elements as a Swift array; `T` must match `dtype`.
    public func values<T: NpyElement>(as type: T.Type = T.self) -> [T] {
        precondition(T.npyDType == dtype, "reading \(dtype) values as \(T.npyDType)")
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            initialized = count
        }
    }

    /// Reads `url`, memory mapping the file.
    public static func read(contentsOf url: URL) throws -> NpyArray {
        let storage = try ByteStorage.mapping(path: url.path)
        return try parse(storage: storage, file: url.path)
    }

    /// Parses an in-memory `.npy` image (`name` is used in error messages).
    public static func decode(_ data: Data, name: String = "<memory>") throws -> NpyArray {
        try parse(storage: .copying(data), file: name)
    }

    static func parse(storage: ByteStorage, file: String) throws -> NpyArray {
        let all = UnsafeRawBufferPointer(start: storage.base, count: storage.count)
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard all.count >= 6 else {
            if all.elementsEqual(magic.prefix(all.count)) {
                throw NpyError.truncated(file: file, detail: "\(all.count) bytes, shorter than the 10-byte preamble")
            }
            throw NpyError.badMagic(file: file)
        }
        guard all.prefix(6).elementsEqual(magic) else { throw NpyError.badMagic(file: file) }
        guard all.count >= 8 else { throw NpyError.truncated(file: file, detail: "file ends inside the version bytes") }
        let major = Int(all[6]), minor = Int(all[7])
        let lengthBytes: Int
        switch (major, minor) {
        case (1, 0): lengthBytes = 2
        case (2, 0), (3, 0): lengthBytes = 4
        default: throw NpyError.unsupportedVersion(file: file, major: major, minor: minor)
        }
        guard all.count >= 8 + lengthBytes else { throw NpyError.truncated(file: file, detail: "file ends inside the header length") }
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(all[8 + i]) << (8 * i) }
        let headerStart = 8 + lengthBytes
        guard all.count >= headerStart + headerLength else {
            throw NpyError.truncated(file: file, detail: "header claims \(headerLength) bytes, only \(all.count - headerStart) present")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: all[headerStart..<(headerStart + headerLength)])
        guard let header = String(bytes: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw NpyError.badHeader(file: file, detail: "header is not text")
        }
        let fields = try NpyHeader.parse(header, file: file)
        if fields.fortranOrder { throw NpyError.fortranOrder(file: file) }
        if fields.descr.hasPrefix(">") { throw NpyError.bigEndian(file: file, descr: fields.descr) }
        guard let dtype = NpyDType(descr: fields.descr) else { throw NpyError.unsupportedDType(file: file, descr: fields.descr) }

        let payloadOffset = headerStart + headerLength
        let (count, overflow) = fields.shape.reduce((1, false)) { acc, n in
            let (p, o) = acc.0.multipliedReportingOverflow(by: n)
            return (p, acc.1 || o)
        }
        let (expected, overflow2) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow, !overflow2 else { throw NpyError.badHeader(file: file, detail: "shape \(fields.shape) is too large") }
        let actual = all.count - payloadOffset
        if actual < expected {
            throw NpyError.truncated(file: file, detail: "payload has \(actual) bytes, shape \(fields.shape) of \(dtype.rawValue) needs \(expected)")
        }
        if actual > expected {
            throw NpyError.sizeMismatch(file: file, shape: fields.shape, dtype: dtype.rawValue, expectedBytes: expected, actualBytes: actual)
        }
        if Int(bitPattern: storage.base + payloadOffset) % dtype.itemSize != 0 {
            // A writer that did not align the payload: copy it so typed access is aligned.
            let payload = Data(bytes: storage.base + payloadOffset, count: expected)
            return NpyArray(dtype: dtype, shape: fields.shape, storage: .copying(payload), payloadOffset: 0)
        }
        return NpyArray(dtype: dtype, shape: fields.shape, storage: storage, payloadOffset: payloadOffset)
    }
}
