import CPNG
import XCTest
@testable import DatasetImport

/// Every colour type the datasets hold comes out as 8-bit RGB.
final class ImageDecodingTests: XCTestCase {
    let red: [UInt8] = [255, 0, 0], blue: [UInt8] = [0, 0, 255]

    func assertPixel(_ image: RGBImage, _ x: Int, _ y: Int, _ expected: [Int], tolerance: Int,
                     file: StaticString = #filePath, line: UInt = #line) {
        for c in 0..<3 {
            XCTAssertLessThanOrEqual(abs(Int(image[x, y, c]) - expected[c]), tolerance,
                                     "pixel (\(x), \(y)) channel \(c): \(image[x, y, c]), expected \(expected[c])", file: file, line: line)
        }
    }

    // JPEG is lossy; flat 8×8 blocks at quality 100 without subsampling come back within a
    // couple of levels (rounding in the DCT and colour conversion), so the checks use blocks
    // of one colour and a tolerance of 3.

    func testRGBJPEG() throws {
        let pixels = Fixtures.pixels(width: 16, height: 8) { x, _ in x < 8 ? self.red : self.blue }
        let image = try ImageDecoder.decode(Fixtures.jpeg(pixels, width: 16, height: 8, components: 3))
        XCTAssertEqual([image.width, image.height], [16, 8])
        assertPixel(image, 3, 4, [255, 0, 0], tolerance: 3)
        assertPixel(image, 12, 4, [0, 0, 255], tolerance: 3)
    }

    func testGreyJPEGBecomesRGB() throws {
        let pixels = Fixtures.pixels(width: 16, height: 8, components: 1) { x, _ in [x < 8 ? 40 : 200] }
        let image = try ImageDecoder.decode(Fixtures.jpeg(pixels, width: 16, height: 8, components: 1))
        assertPixel(image, 2, 2, [40, 40, 40], tolerance: 2)
        assertPixel(image, 13, 6, [200, 200, 200], tolerance: 2)
    }

    func testCMYKJPEGBecomesRGB() throws {
        // Adobe's inverted ink (255 = none): red is C 0, M 255, Y 255, K 0 stored as 255, 0, 0, 255;
        // R = C·K/255 = 255, G = M·K/255 = 0, B = 0. A grey of K ink 155 (stored 100) with no
        // colour ink: R = G = B = 255·100/255 = 100.
        let pixels = Fixtures.pixels(width: 16, height: 8, components: 4) { x, _ in x < 8 ? [255, 0, 0, 255] : [255, 255, 255, 100] }
        let image = try ImageDecoder.decode(Fixtures.jpeg(pixels, width: 16, height: 8, components: 4))
        assertPixel(image, 3, 3, [255, 0, 0], tolerance: 3)
        assertPixel(image, 12, 3, [100, 100, 100], tolerance: 3)
    }

    // PNG is lossless: exact values.

    func testPNGColourTypes() throws {
        let rgb = Fixtures.png([10, 20, 30, 200, 150, 100], width: 2, height: 1, format: PNGFormat.rgb)
        XCTAssertEqual(try ImageDecoder.decode(rgb).pixels, [10, 20, 30, 200, 150, 100])

        let grey = Fixtures.png([0, 77, 255], width: 3, height: 1, format: PNGFormat.grey)
        XCTAssertEqual(try ImageDecoder.decode(grey).pixels, [0, 0, 0, 77, 77, 77, 255, 255, 255])

        // A 2-colour palette, pixels 1, 0, 1.
        let palette = Fixtures.png([1, 0, 1], width: 3, height: 1, format: PNGFormat.paletteRGB,
                                   colormap: [0, 128, 0, 250, 5, 9])
        XCTAssertEqual(try ImageDecoder.decode(palette).pixels, [250, 5, 9, 0, 128, 0, 250, 5, 9])
    }

    func testPNGAlphaIsCompositedOntoWhite() throws {
        // Opaque keeps its colour; fully transparent becomes the white backdrop.
        let rgba = Fixtures.png([10, 20, 30, 255, 10, 20, 30, 0], width: 2, height: 1, format: PNGFormat.rgba)
        XCTAssertEqual(try ImageDecoder.decode(rgba).pixels, [10, 20, 30, 255, 255, 255])
        let greyAlpha = Fixtures.png([60, 255, 60, 0], width: 2, height: 1, format: PNGFormat.greyAlpha)
        XCTAssertEqual(try ImageDecoder.decode(greyAlpha).pixels, [60, 60, 60, 255, 255, 255])
    }

    func testSixteenBitPNGIsReducedToEightBits() throws {
        // v → v/257 rounded: 0x0000 → 0, 0x8080 → 128, 0x1234 = 4660 → 18.13 → 18, 0xFFFF → 255,
        // 0x3333 = 13107 → 51 (13107 = 51·257).
        let directory = try Fixtures.directory(self)
        let url = try Fixtures.png16([0, 0x8080, 0x1234, 0xFFFF, 0x3333, 0], width: 2, height: 1, in: directory, name: "deep.png")
        XCTAssertEqual(try ImageDecoder.decode(contentsOf: url).pixels, [0, 128, 18, 255, 51, 0])
    }

    func testCorruptFilesAreFailuresNotCrashes() throws {
        // A busy picture, so that most of the file is scan data and a cut lands inside it.
        let busy = Fixtures.pixels(width: 64, height: 64) { x, y in [UInt8((x * 37 + y * 91) % 256), UInt8((x * y) % 256), UInt8((x ^ y) * 4 % 256)] }
        let jpeg = Fixtures.jpeg(busy, width: 64, height: 64, components: 3)
        XCTAssertThrowsError(try ImageDecoder.decode(jpeg.prefix(jpeg.count * 3 / 4))) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        var garbled = jpeg
        for i in 3..<200 { garbled[i] = 0x5A }
        XCTAssertThrowsError(try ImageDecoder.decode(garbled)) { XCTAssertTrue("\($0)".hasPrefix("JPEG: "), "\($0)") }
        let png = Fixtures.png([1, 2, 3], width: 1, height: 1, format: PNGFormat.rgb)
        XCTAssertThrowsError(try ImageDecoder.decode(png.prefix(png.count - 20))) { XCTAssertTrue("\($0)".hasPrefix("PNG: "), "\($0)") }
        XCTAssertThrowsError(try ImageDecoder.decode(Data("GIF89a....".utf8))) {
            XCTAssertEqual("\($0)", "neither a JPEG nor a PNG file (first bytes 47 49 46 38)")
        }
        XCTAssertThrowsError(try ImageDecoder.decode(Data())) { XCTAssertEqual("\($0)", "the file is empty") }
    }
}
