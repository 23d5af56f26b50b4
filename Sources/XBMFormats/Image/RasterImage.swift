import Foundation

/// An 8-bit image being drawn, grey or RGB, written as PNG: dataset samples scaled up by whole
/// factors, filled rectangles, frames and numbers (`DigitFont`). `xbm-dist data preview` and the
/// retrieval picture of `xbm-dist eval --show` draw with it.
public struct RasterImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let colour: PNG.Colour
    /// (height, width, colour.channels) row major.
    public private(set) var pixels: [UInt8]

    /// A paint colour; on a grey image it is drawn as the mean of its three components.
    public struct RGB: Sendable, Equatable {
        public var red: UInt8, green: UInt8, blue: UInt8
        public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) { self.red = red; self.green = green; self.blue = blue }
        public init(grey: UInt8) { self.init(grey, grey, grey) }

        public static let white = RGB(255, 255, 255)
        public static let black = RGB(0, 0, 0)
    }

    /// A width × height image filled with `background`.
    public init(width: Int, height: Int, colour: PNG.Colour, background: RGB) {
        precondition(width > 0 && height > 0, "an image needs a positive size, got \(width)×\(height)")
        self.width = width
        self.height = height
        self.colour = colour
        pixels = [UInt8](repeating: 0, count: width * height * colour.channels)
        fill(x: 0, y: 0, width: width, height: height, with: background)
    }

    /// The pixel at (x, y), as RGB (grey: three equal components).
    public subscript(x: Int, y: Int) -> RGB {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside a \(width)×\(height) image")
        let p = (y * width + x) * colour.channels
        return colour == .rgb ? RGB(pixels[p], pixels[p + 1], pixels[p + 2]) : RGB(grey: pixels[p])
    }

    private mutating func set(_ x: Int, _ y: Int, _ value: RGB) {
        let p = (y * width + x) * colour.channels
        if colour == .rgb {
            pixels[p] = value.red; pixels[p + 1] = value.green; pixels[p + 2] = value.blue
        } else {
            pixels[p] = UInt8((Int(value.red) + Int(value.green) + Int(value.blue)) / 3)
        }
    }

    /// Fills the rectangle with its top left corner at (x, y), clipped to the image.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, with value: RGB) {
        for row in max(0, y)..<min(height, y + h) {
            for column in max(0, x)..<min(width, x + w) { set(column, row, value) }
        }
    }

    /// A border `thickness` pixels wide just inside the rectangle (x, y, w, h).
    public mutating func frame(x: Int, y: Int, width w: Int, height h: Int, thickness t: Int, with value: RGB) {
        fill(x: x, y: y, width: w, height: t, with: value)
        fill(x: x, y: y + h - t, width: w, height: t, with: value)
        fill(x: x, y: y, width: t, height: h, with: value)
        fill(x: x + w - t, y: y, width: t, height: h, with: value)
    }

    /// Draws a sample of `channels` planes of h × w bytes (channel-first, as dataset images
    /// are stored) with its top left corner at (x, y), each pixel a `scale` × `scale` square.
    /// Three channels are red, green and blue; any other count is drawn in grey as their mean.
    public mutating func draw(sample: UnsafeRawBufferPointer, channels: Int, height h: Int, width w: Int,
                              x: Int, y: Int, scale: Int) {
        precondition(sample.count == channels * h * w, "a \(channels)×\(h)×\(w) sample has \(channels * h * w) bytes, got \(sample.count)")
        precondition(scale >= 1, "scale must be at least 1, got \(scale)")
        for row in 0..<h {
            for column in 0..<w {
                let source = row * w + column                      // channel c at source + c·h·w
                let value: RGB
                if channels == 3 {
                    value = RGB(sample[source], sample[source + h * w], sample[source + 2 * h * w])
                } else {
                    var sum = 0
                    for c in 0..<channels { sum += Int(sample[source + c * h * w]) }
                    value = RGB(grey: UInt8(sum / channels))
                }
                fill(x: x + column * scale, y: y + row * scale, width: scale, height: scale, with: value)
            }
        }
    }

    /// Writes `text` (the characters of `DigitFont`) with its top left corner at (x, y), each
    /// glyph pixel a `scale` × `scale` square; returns the width drawn.
    @discardableResult
    public mutating func draw(text: String, x: Int, y: Int, scale: Int, with value: RGB) -> Int {
        var left = x
        for character in text {
            let glyph = DigitFont.glyph(character)
            for row in 0..<DigitFont.height {
                for column in 0..<DigitFont.width where glyph[row * DigitFont.width + column] {
                    fill(x: left + column * scale, y: y + row * scale, width: scale, height: scale, with: value)
                }
            }
            left += DigitFont.advance * scale
        }
        return DigitFont.textWidth(text, scale: scale)
    }

    /// The PNG file's bytes.
    public var png: [UInt8] { PNG.encode(width: width, height: height, colour: colour, pixels: pixels) }

    public func write(to url: URL) throws { try Data(png).write(to: url) }
}

/// A 5 × 7 pixel font of the digits, "." and "-": enough for similarities and class labels
/// in pictures, without a font library. Glyphs are drawn 6 pixels apart (one blank column).
public enum DigitFont {
    public static let width = 5, height = 7, advance = 6

    /// Each glyph's rows, top first: "#" ink, "." blank.
    static let rows: [Character: [String]] = [
        "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
        "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
        "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
        "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
        "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
        "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
        "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
        "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
        "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
        "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
        ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
        "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
    ]

    /// The characters the font draws.
    public static var characters: Set<Character> { Set(rows.keys) }

    /// Ink of each of the glyph's 5 × 7 pixels, row major.
    public static func glyph(_ character: Character) -> [Bool] {
        guard let glyph = rows[character] else {
            preconditionFailure("DigitFont draws digits, \".\" and \"-\" only, not \(character.debugDescription)")
        }
        return glyph.flatMap { $0.map { $0 == "#" } }
    }

    /// Width in pixels of `text` at `scale` (no trailing blank column).
    public static func textWidth(_ text: String, scale: Int) -> Int {
        text.isEmpty ? 0 : (text.count * advance - 1) * scale
    }
}
