import Foundation
import XBMFormats

/// Writes a uint8 `.npy` array of shape (N, sample...) one sample at a time, so an import
/// holds one picture in memory instead of all of them. The header goes first with the N the
/// lists promise; `finish()` rewrites it in place when fewer samples were written (images
/// skipped as unreadable). The rewritten header keeps the original length: its shape has no
/// more digits, and the difference is padded with spaces before the closing newline, as the
/// format allows.
final class NpyStreamWriter {
    let url: URL
    let sampleShape: [Int]
    let expectedCount: Int
    private(set) var written = 0
    private let file: UnsafeMutablePointer<FILE>
    private let headerLength: Int
    private var closed = false

    init(url: URL, count: Int, sampleShape: [Int]) throws {
        self.url = url
        self.expectedCount = count
        self.sampleShape = sampleShape
        guard let file = fopen(url.path, "wb") else { throw ImportError.writeFailed(path: url.path, reason: String(cString: strerror(errno))) }
        self.file = file
        let header = Npy.header(dtype: .uint8, shape: [count] + sampleShape)
        headerLength = header.count
        try write(header)
    }

    deinit { if !closed { fclose(file) } }

    /// Appends one sample (the product of `sampleShape` bytes).
    func append(_ sample: UnsafeBufferPointer<UInt8>) throws {
        precondition(sample.count == sampleShape.reduce(1, *), "sample of \(sample.count) bytes for shape \(sampleShape)")
        precondition(written < expectedCount, "more than the \(expectedCount) samples the header announced")
        try write(UnsafeRawBufferPointer(sample))
        written += 1
    }

    /// Fixes the header to the samples written and closes the file.
    func finish() throws {
        if written != expectedCount {
            let header = Self.header(shape: [written] + sampleShape, length: headerLength)
            guard fseek(file, 0, SEEK_SET) == 0 else { throw ImportError.writeFailed(path: url.path, reason: String(cString: strerror(errno))) }
            try write(header)
        }
        closed = true
        guard fclose(file) == 0 else { throw ImportError.writeFailed(path: url.path, reason: String(cString: strerror(errno))) }
    }

    /// The uint8 header of `shape` padded to exactly `length` bytes (≥ its natural length).
    static func header(shape: [Int], length: Int) -> [UInt8] {
        var header = Npy.header(dtype: .uint8, shape: shape, version: 1)
        precondition(header.count <= length, "a header of \(header.count) bytes does not fit in \(length)")
        header.insert(contentsOf: [UInt8](repeating: 0x20, count: length - header.count), at: header.count - 1)
        let declared = length - 10  // magic (6), version (2), header length (2)
        header[8] = UInt8(declared & 0xFF)
        header[9] = UInt8(declared >> 8)
        return header
    }

    private func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.isEmpty || fwrite(bytes.baseAddress!, 1, bytes.count, file) == bytes.count else {
            throw ImportError.writeFailed(path: url.path, reason: "short write: " + String(cString: strerror(errno)))
        }
    }
}
