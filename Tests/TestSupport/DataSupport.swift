import Foundation

// Helpers for the data tests: scratch directories and hand-assembled .npy bytes.

/// A fresh empty directory under the system temporary directory.
public func makeScratchDirectory(_ name: String = "xbm-data") -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(name)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A `.npy` file assembled by hand (not by `Npy`): magic, version `major`.0, the header length
/// field (2 bytes for 1.0, else 4), `header` padded with spaces and a newline to 64 bytes, then
/// `payload`. `padded: false` leaves the header exactly as given.
public func handMadeNpy(major: UInt8 = 1, header: String, payload: [UInt8], padded: Bool = true) -> [UInt8] {
    let lengthBytes = major == 1 ? 2 : 4
    var text = Array(header.utf8)
    if padded {
        let unpadded = 8 + lengthBytes + text.count + 1
        text += [UInt8](repeating: 0x20, count: (64 - unpadded % 64) % 64)
        text.append(0x0A)
    }
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
    for i in 0..<lengthBytes { out.append(UInt8(truncatingIfNeeded: text.count >> (8 * i))) }
    return out + text + payload
}

/// Little-endian bytes of `values`.
public func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v.littleEndian >> (8 * $0)) } }
}

/// Writes a dataset directory from parts, each optional part as raw bytes (so tests can break
/// any one of them). `meta` nil writes `{"name": "tiny"}`.
public func writeDatasetFiles(_ directory: URL, x: [UInt8], y: [UInt8], split: [UInt8], meta: String? = nil) throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try Data((meta ?? #"{"name": "tiny"}"#).utf8).write(to: directory.appendingPathComponent("meta.json"))
    try Data(x).write(to: directory.appendingPathComponent("x.npy"))
    try Data(y).write(to: directory.appendingPathComponent("y.npy"))
    try Data(split).write(to: directory.appendingPathComponent("split.npy"))
}

/// Header dict literal for `descr` and `shape`, as numpy writes it.
public func npyHeader(_ descr: String, _ shape: [Int], fortran: Bool = false) -> String {
    let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    return "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(dims), }"
}
