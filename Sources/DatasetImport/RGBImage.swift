/// A decoded picture: 8-bit RGB, rows top to bottom, pixels left to right, 3 bytes each.
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// width · height · 3 bytes: pixel (x, y) channel c at (y · width + x) · 3 + c.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "RGBImage of \(width)×\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Channel c (0 red, 1 green, 2 blue) of pixel (x, y).
    public subscript(x: Int, y: Int, c: Int) -> UInt8 { pixels[(y * width + x) * 3 + c] }
}
