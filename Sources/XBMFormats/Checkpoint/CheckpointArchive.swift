import Foundation

// The checkpoint file (Docs/distributed.md): ordered named sections behind a header with a checksum.
// Byte layout (all integers little endian; Docs/evaluation.md has the same table):
//
//   header, 32 bytes
//     0   8  magic "XBMCKPT1"
//     8   4  format version (UInt32), currently 1
//    12   4  section count (UInt32)
//    16   8  file length in bytes, header included (UInt64)
//    24   4  CRC-32C (Castagnoli) of every byte of the file except these 4
//    28   4  reserved, zero
//   then each section, starting at a multiple of 8
//     0   4  name length n in bytes (UInt32)
//     4   4  kind (UInt32): 0 bytes, 1 Float32, 2 Int32, 3 UInt64, 4 JSON (UTF-8)
//     8   8  payload length p in bytes (UInt64)
//    16   n  name (UTF-8), zero padded to a multiple of 8
//     …   p  payload, zero padded to a multiple of 8
//   and the file ends right after the last section's padding.

/// A checkpoint: named sections of bytes in insertion order, with typed helpers for flat
/// numeric arrays (stored as raw little-endian bytes, no per-element boxing) and JSON values.
/// `write(to:)` replaces the file atomically; `read(from:)` verifies it completely.
public struct CheckpointArchive: Sendable {
    public static let magic: [UInt8] = Array("XBMCKPT1".utf8)
    public static let formatVersion: UInt32 = 1
    static let headerSize = 32

    /// What a section holds; typed reads check it.
    public enum SectionKind: UInt32, Sendable, CustomStringConvertible {
        case bytes = 0, float32 = 1, int32 = 2, uint64 = 3, json = 4
        public var description: String { ["bytes", "Float32", "Int32", "UInt64", "JSON"][Int(rawValue)] }
        var elementSize: Int { switch self { case .bytes, .json: 1; case .float32, .int32: 4; case .uint64: 8 } }
    }

    struct Section: Sendable {
        var name: String
        var kind: SectionKind
        var payload: [UInt8]
    }

    private var sections: [Section] = []
    private var positions: [String: Int] = [:]
    /// The file this archive was read from (for error messages), or "<memory>".
    public private(set) var source = "<memory>"

    public init() {}

    /// Section names in order.
    public var sectionNames: [String] { sections.map(\.name) }
    public func contains(_ name: String) -> Bool { positions[name] != nil }

    // MARK: Writing sections (a name already present is replaced in place)

    public mutating func setBytes(_ bytes: [UInt8], named name: String) { set(Section(name: name, kind: .bytes, payload: bytes)) }
    public mutating func setFloats(_ values: UnsafeBufferPointer<Float>, named name: String) { set(Section(name: name, kind: .float32, payload: Self.littleEndianBytes(values))) }
    public mutating func setFloats(_ values: [Float], named name: String) { values.withUnsafeBufferPointer { setFloats($0, named: name) } }
    public mutating func setInt32s(_ values: [Int32], named name: String) { set(Section(name: name, kind: .int32, payload: values.withUnsafeBufferPointer(Self.littleEndianBytes))) }
    public mutating func setUInt64s(_ values: [UInt64], named name: String) { set(Section(name: name, kind: .uint64, payload: values.withUnsafeBufferPointer(Self.littleEndianBytes))) }

    /// Stores `value` as JSON (sorted keys, so equal values give equal bytes).
    public mutating func setJSON<Value: Encodable>(_ value: Value, named name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        set(Section(name: name, kind: .json, payload: Array(try encoder.encode(value))))
    }

    private mutating func set(_ section: Section) {
        precondition(!section.name.isEmpty && section.name.utf8.count <= 4096,
                     "checkpoint section names must have 1 to 4096 UTF-8 bytes, got \"\(section.name)\"")
        if let position = positions[section.name] { sections[position] = section; return }
        positions[section.name] = sections.count
        sections.append(section)
    }

    // MARK: Reading sections

    public func bytes(named name: String) throws -> [UInt8] { try section(name, kind: .bytes).payload }

    /// The Float32 section `name`; with `count`, it must hold exactly that many values.
    public func floats(named name: String, count: Int? = nil) throws -> [Float] { try values(name, .float32, count) }
    public func int32s(named name: String, count: Int? = nil) throws -> [Int32] { try values(name, .int32, count) }
    public func uint64s(named name: String, count: Int? = nil) throws -> [UInt64] { try values(name, .uint64, count) }

    /// Copies the Float32 section `name` into `destination`, which it must fill exactly
    /// (e.g. a parameter buffer).
    public func copyFloats(named name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let section = try self.section(name, kind: .float32, count: destination.count)
        section.payload.withUnsafeBytes { raw in
            UnsafeMutableRawBufferPointer(destination).copyMemory(from: raw)
        }
        Self.fromLittleEndian(destination)
    }

    public func json<Value: Decodable>(_ type: Value.Type, named name: String) throws -> Value {
        let section = try self.section(name, kind: .json)
        do { return try JSONDecoder().decode(type, from: Data(section.payload)) } catch {
            let reason = (error as? DecodingError).map(describe) ?? printable("\(error)", limit: 200)
            throw CheckpointError.undecodableSection(path: source, name: name, reason: reason)
        }
    }

    private func section(_ name: String, kind: SectionKind, count: Int? = nil) throws -> Section {
        guard let position = positions[name] else { throw CheckpointError.missingSection(path: source, name: name) }
        let section = sections[position]
        guard section.kind == kind else {
            throw CheckpointError.wrongSectionKind(path: source, name: name, expected: kind, found: section.kind)
        }
        if let count, section.payload.count != count * kind.elementSize {
            throw CheckpointError.wrongSectionSize(path: source, name: name, expectedCount: count,
                                                   foundCount: section.payload.count / kind.elementSize)
        }
        return section
    }

    private func values<Element: BitwiseCopyable>(_ name: String, _ kind: SectionKind, _ count: Int?) throws -> [Element] {
        let payload = try section(name, kind: kind, count: count).payload
        let n = payload.count / kind.elementSize
        let result = [Element](unsafeUninitializedCapacity: n) { buffer, initialized in
            payload.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n * kind.elementSize])) }
            initialized = n
        }
        #if _endian(big)
        return result.map { Self.swappedFromLittleEndian($0) }
        #else
        return result
        #endif
    }

    // MARK: Encoding

    /// The whole file, checksum included.
    public func encoded() -> [UInt8] {
        func padded(_ n: Int) -> Int { (n + 7) & ~7 }
        let total = sections.reduce(Self.headerSize) { $0 + 16 + padded($1.name.utf8.count) + padded($1.payload.count) }
        var file = [UInt8](repeating: 0, count: total)
        file.withUnsafeMutableBytes { raw in
            Self.magic.withUnsafeBytes { raw.copyMemory(from: $0) }
            Self.store(Self.formatVersion, raw, at: 8)
            Self.store(UInt32(sections.count), raw, at: 12)
            Self.store(UInt64(total), raw, at: 16)
            var offset = Self.headerSize
            for section in sections {
                let name = Array(section.name.utf8)
                Self.store(UInt32(name.count), raw, at: offset)
                Self.store(section.kind.rawValue, raw, at: offset + 4)
                Self.store(UInt64(section.payload.count), raw, at: offset + 8)
                offset += 16
                UnsafeMutableRawBufferPointer(rebasing: raw[offset..<offset + name.count]).copyBytes(from: name)
                offset += padded(name.count)
                section.payload.withUnsafeBytes {
                    UnsafeMutableRawBufferPointer(rebasing: raw[offset..<offset + $0.count]).copyMemory(from: $0)
                }
                offset += padded(section.payload.count)
            }
            Self.store(Self.checksum(UnsafeRawBufferPointer(raw)), raw, at: 24)
        }
        return file
    }

    /// CRC-32C of the file with bytes [24, 28) (the stored checksum) left out.
    static func checksum(_ file: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(UnsafeRawBufferPointer(rebasing: file[0..<24]))
        crc.update(UnsafeRawBufferPointer(rebasing: file[28...]))
        return crc.value
    }

    // MARK: Decoding

    /// Parses and verifies a whole file image; `path` names it in errors.
    public init(decoding file: [UInt8], path: String) throws {
        source = path
        let size = file.count
        let magicLength = min(size, 8)
        guard Array(file[0..<magicLength]) == Array(Self.magic[0..<magicLength]) else { throw CheckpointError.badMagic(path: path) }
        guard size >= Self.headerSize else { throw CheckpointError.truncated(path: path, expectedBytes: Self.headerSize, actualBytes: size) }
        try file.withUnsafeBytes { raw in
            let version: UInt32 = Self.load(raw, at: 8)
            guard version == Self.formatVersion else {
                throw CheckpointError.unsupportedVersion(path: path, found: version, supported: Self.formatVersion)
            }
            let declared: UInt64 = Self.load(raw, at: 16)
            guard declared <= UInt64(size) else { throw CheckpointError.truncated(path: path, expectedBytes: Int(clamping: declared), actualBytes: size) }
            guard declared == UInt64(size) else {
                throw CheckpointError.malformed(path: path, reason: "\(size - Int(declared)) bytes after its declared end at byte \(declared)")
            }
            let stored: UInt32 = Self.load(raw, at: 24)
            let computed = Self.checksum(raw)
            guard stored == computed else { throw CheckpointError.checksumMismatch(path: path, stored: stored, computed: computed) }
            // The checksum holds, so what follows can only fail for a file written by other code.
            let count: UInt32 = Self.load(raw, at: 12)
            var offset = Self.headerSize
            for number in 0..<Int(count) {
                func fail(_ what: String) -> CheckpointError { .malformed(path: path, reason: "section \(number) at byte \(offset): \(what)") }
                guard offset + 16 <= size else { throw fail("header runs past the end of the file") }
                let nameLength = Int(Self.load(raw, at: offset) as UInt32)
                guard let kind = SectionKind(rawValue: Self.load(raw, at: offset + 4)) else { throw fail("unknown kind") }
                let payloadLength = Int(clamping: Self.load(raw, at: offset + 8) as UInt64)
                let nameStart = offset + 16, payloadStart = nameStart + ((nameLength + 7) & ~7)
                guard payloadLength <= size, payloadStart + payloadLength <= size else { throw fail("runs past the end of the file") }
                guard payloadLength % kind.elementSize == 0 else { throw fail("\(payloadLength) bytes is not a whole number of \(kind) values") }
                let name = String(decoding: raw[nameStart..<nameStart + nameLength], as: UTF8.self)
                guard positions[name] == nil else { throw fail("duplicate name \"\(printable(name))\"") }
                positions[name] = sections.count
                sections.append(Section(name: name, kind: kind, payload: Array(raw[payloadStart..<payloadStart + payloadLength])))
                offset = payloadStart + ((payloadLength + 7) & ~7)
            }
            guard offset == size else { throw CheckpointError.malformed(path: path, reason: "sections end at byte \(offset), the file at \(size)") }
        }
    }

    // MARK: Files

    /// Reads and verifies the checkpoint at `url`.
    public static func read(from url: URL) throws -> CheckpointArchive {
        try CheckpointArchive(decoding: try FileIO.readAll(path: url.path), path: url.path)
    }

    /// Writes the archive to `url` atomically: to a temporary file in the same directory,
    /// fsync, rename over `url`, fsync of the directory. A crash leaves either the old file or
    /// the new one at `url`, never a part; a failure removes the temporary file.
    public func write(to url: URL) throws {
        try FileIO.replaceAtomically(path: url.path, with: encoded())
    }

    // MARK: Little-endian helpers

    private static func store<T: FixedWidthInteger>(_ value: T, _ raw: UnsafeMutableRawBufferPointer, at offset: Int) {
        raw.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    private static func load<T: FixedWidthInteger>(_ raw: UnsafeRawBufferPointer, at offset: Int) -> T {
        T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    private static func littleEndianBytes<Element: BitwiseCopyable>(_ values: UnsafeBufferPointer<Element>) -> [UInt8] {
        var bytes = Array(UnsafeRawBufferPointer(values))
        #if _endian(big)
        bytes.withUnsafeMutableBytes { raw in
            let size = MemoryLayout<Element>.size
            for start in stride(from: 0, to: raw.count, by: size) { raw[start..<start + size].reverse() }
        }
        #endif
        return bytes
    }

    private static func fromLittleEndian(_ values: UnsafeMutableBufferPointer<Float>) {
        #if _endian(big)
        for i in values.indices { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
        #endif
    }

    #if _endian(big)
    private static func swappedFromLittleEndian<Element>(_ value: Element) -> Element {
        var copy = value
        withUnsafeMutableBytes(of: &copy) { $0.reverse() }
        return copy
    }
    #endif
}
