/// TFRecord framing, the container of TensorFlow's event files (TensorFlow's
/// core/lib/io/record_writer.cc). A file is a sequence of records, each
///
///     offset  size  field
///     0       8     length n of the data, UInt64, little endian
///     8       4     masked CRC-32C of bytes 0..<8, UInt32, little endian
///     12      n     data
///     12 + n  4     masked CRC-32C of the data, UInt32, little endian
///
/// where mask(c) = ((c >> 15) | (c << 17)) &+ 0xa282ead8 (TensorFlow's crc32c::Mask, from
/// LevelDB: a CRC of bytes that hold CRCs is weak, so stored CRCs are rotated and offset).
enum TFRecord {
    /// The bytes of one record holding `data`.
    static func frame(_ data: [UInt8]) -> [UInt8] {
        let length = littleEndianBytes(UInt64(data.count))
        return length + littleEndianBytes(maskedCRC32C(length)) + data + littleEndianBytes(maskedCRC32C(data))
    }

    /// The data of the records of `bytes`, in order, up to the first one that is torn (a run
    /// killed while writing it) or fails a CRC; `end` is the offset where reading stopped.
    static func read(_ bytes: [UInt8]) -> (records: [[UInt8]], end: Int) {
        var records: [[UInt8]] = []
        var offset = 0
        while bytes.count - offset >= 16 {
            let lengthBytes = Array(bytes[offset..<offset + 8])
            let length: UInt64 = littleEndian(lengthBytes[...])
            let start = offset + 12
            guard littleEndian(bytes[offset + 8..<start]) == maskedCRC32C(lengthBytes),
                  length <= UInt64(bytes.count - start - 4) else { break }
            let end = start + Int(length)
            let data = Array(bytes[start..<end])
            guard littleEndian(bytes[end..<end + 4]) == maskedCRC32C(data) else { break }
            records.append(data)
            offset = end + 4
        }
        return (records, offset)
    }

    /// mask(CRC-32C(bytes)), with the checkpoint file's `CRC32C` (Castagnoli; Docs/evaluation.md).
    static func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update($0) }
        return ((crc.value >> 15) | (crc.value << 17)) &+ 0xA282_EAD8
    }

    private static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    private static func littleEndian<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>) -> T {
        bytes.reversed().reduce(0) { $0 << 8 | T($1) }
    }
}
