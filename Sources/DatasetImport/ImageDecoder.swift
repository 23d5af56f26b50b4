import Foundation

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng) files to 8-bit RGB, recognised by their
/// first bytes rather than their extension (SOP's are `.JPG`, some datasets hold PNGs named
/// `.jpg`). Every colour type comes out as RGB: grey and CMYK JPEGs; palette, grey,
/// grey+alpha, RGBA and 16-bit PNGs (alpha composited onto white, 16 bits rounded to 8).
public enum ImageDecoder {
    /// Why a file did not decode, in a few words for `ImportError.unreadableImage`.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }

    public static func decode(contentsOf url: URL) throws -> RGBImage {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw Failure("cannot read the file: \((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        return try decode(data)
    }

    public static func decode(_ data: Data) throws -> RGBImage {
        if data.starts(with: [0xFF, 0xD8, 0xFF]) { return try JPEGDecoder.decode(data) }
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try PNGDecoder.decode(data) }
        if data.isEmpty { throw Failure("the file is empty") }
        throw Failure("neither a JPEG nor a PNG file (first bytes \(data.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")))")
    }
}
