import FuzzSupport
import XBMTraining

/// One input is one checkpoint file image, decoded twice: as it is, and sealed — its declared
/// length and CRC-32C rewritten to match its bytes. A mutated file almost never carries a
/// valid checksum, so without sealing the fuzzer would only ever meet the checksum check and
/// never the section table, the JSON records or the memory state behind it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = Array(UnsafeBufferPointer(start: data, count: size))
    for (bytes, path) in [(file, "fuzz.xbm"), (sealed(file), "fuzz-sealed.xbm")] {
        expectParsesOrRejects { _ = try TrainingCheckpoint.decode(bytes, path: path) }
    }
    return 0
}

/// `file` with bytes 16..<24 set to its length and 24..<28 to its CRC-32C, the way
/// `CheckpointArchive` writes them (Docs/evaluation.md); a file shorter than the 32-byte
/// header is returned as it is.
func sealed(_ file: [UInt8]) -> [UInt8] {
    guard file.count >= 32 else { return file }
    var file = file
    withUnsafeBytes(of: UInt64(file.count).littleEndian) { file.replaceSubrange(16..<24, with: $0) }
    let checksum = crc32c(file[..<24] + file[28...])
    withUnsafeBytes(of: checksum.littleEndian) { file.replaceSubrange(24..<28, with: $0) }
    return file
}

/// CRC-32C (Castagnoli), bit by bit: slow, short and independent of the package's sliced one.
func crc32c<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return crc ^ 0xFFFF_FFFF
}
