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

    /// mask(CRC-32C(bytes)), with the checkpoint file's `CRC32C` (Castagnoli; Docs/evaluation.md).
    static func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update($0) }
        return ((crc.value >> 15) | (crc.value << 17)) &+ 0xA282_EAD8
    }

    private static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}
