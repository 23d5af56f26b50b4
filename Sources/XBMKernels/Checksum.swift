/// 64-bit FNV-1a, the package's fingerprint of contents (dataset payloads, replica agreement).
/// File formats use the checks their specifications prescribe instead: CRC-32C in the
/// checkpoint archive and TensorBoard's records (XBMFormats), CRC-32 and Adler-32 in PNG.
///
///     h₀ = 0xcbf29ce484222325,   h ← (h ⊕ byte) · 0x100000001b3   for every byte in order
///
/// Not cryptographic: it detects accidental differences (a replica that drifted, a dataset
/// rebuilt differently), which is all it is used for.
public struct FNV1a64: Sendable {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        value = h
    }

    /// The little-endian bytes of `count` elements at `pointer` (floats, integers).
    public mutating func update<T>(_ pointer: UnsafePointer<T>, count: Int) {
        update(UnsafeRawBufferPointer(start: pointer, count: count * MemoryLayout<T>.stride))
    }

    /// The 8 little-endian bytes of `word`.
    public mutating func update(_ word: UInt64) {
        withUnsafeBytes(of: word.littleEndian) { update($0) }
    }

    /// 16 lower-case hex digits.
    public var hex: String { FNV1a64.hex(value) }

    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
