import Foundation

/// A minimal PNG encoder for 8-bit greyscale and RGB images, with no compression library: the
/// zlib stream holds stored (uncompressed) deflate blocks of at most 65,535 bytes, closed by an
/// Adler-32; each chunk carries its CRC-32 (polynomial 0xEDB88320, reflected).
public enum PNG {
    /// The PNG colour types written here, by their IHDR code.
    public enum Colour: UInt8, Sendable {
        case grey = 0
        case rgb = 2

        /// Bytes per pixel (8 bits per sample).
        public var channels: Int { self == .grey ? 1 : 3 }
    }

    /// Encodes `pixels` (height, width), row major, 0 black … 255 white.
    public static func grayscale(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        encode(width: width, height: height, colour: .grey, pixels: pixels)
    }

    /// Encodes `pixels` (height, width, 3), row major, red, green, blue per pixel.
    public static func rgb(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        encode(width: width, height: height, colour: .rgb, pixels: pixels)
    }

    /// Encodes `pixels` (height, width, colour.channels), row major.
    public static func encode(width: Int, height: Int, colour: Colour, pixels: [UInt8]) -> [UInt8] {
        let rowBytes = width * colour.channels
        precondition(width > 0 && height > 0 && pixels.count == rowBytes * height,
                     "\(colour) PNG of \(width)×\(height) needs \(rowBytes * height) bytes, got \(pixels.count)")
        // Scanlines: a filter byte (0 = none) before each row.
        var raw: [UInt8] = []
        raw.reserveCapacity((rowBytes + 1) * height)
        for y in 0..<height {
            raw.append(0)
            raw += pixels[(y * rowBytes)..<((y + 1) * rowBytes)]
        }
        var zlib: [UInt8] = [0x78, 0x01]  // deflate, 32 KiB window, no preset dictionary, check bits
        var offset = 0
        repeat {
            let length = min(65_535, raw.count - offset)
            let final: UInt8 = offset + length == raw.count ? 1 : 0
            zlib += [final, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            zlib += raw[offset..<(offset + length)]
            offset += length
        } while offset < raw.count
        zlib += bigEndian(adler32(raw))

        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        // 8 bits per sample, the colour type, deflate, filter method 0, no interlace.
        let header = bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, colour.rawValue, 0, 0, 0]
        appendChunk("IHDR", header, to: &out)
        appendChunk("IDAT", zlib, to: &out)
        appendChunk("IEND", [], to: &out)
        return out
    }

    public static func write(to url: URL, width: Int, height: Int, colour: Colour, pixels: [UInt8]) throws {
        try Data(encode(width: width, height: height, colour: colour, pixels: pixels)).write(to: url)
    }

    static func appendChunk(_ type: String, _ body: [UInt8], to out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        out += bigEndian(UInt32(body.count))
        out += typeBytes
        out += body
        out += bigEndian(crc32(typeBytes + body))
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 as PNG (and zlib's crc32) defines it.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// Adler-32: a = 1 + Σ bytes, b = Σ a, both mod 65521; result b·2^16 + a.
    public static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return (b << 16) | a
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
}
