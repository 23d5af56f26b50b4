import Foundation
import TestSupport
import XBMData
import XBMFormats
import XCTest

/// The PNG writer, checked by an independent decoder of what it promises (stored deflate
/// blocks, filter 0), and the preview grid drawn with it.
final class DatasetPreviewTests: XCTestCase {
    /// Bitwise CRC-32 (no table), independent of the writer's.
    func referenceCRC(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc >> 1) ^ ((crc & 1) * 0xEDB8_8320) }
        }
        return ~crc
    }

    func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    /// Decodes an 8-bit PNG of colour type `colour` (0 grey, 2 RGB) made of stored blocks;
    /// fails the test on any inconsistency.
    func decode(_ png: [UInt8], colour: UInt8 = 0, file: StaticString = #filePath, line: UInt = #line) -> (Int, Int, [UInt8])? {
        let bytesPerPixel = colour == 2 ? 3 : 1
        XCTAssertEqual(Array(png.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10], "signature", file: file, line: line)
        var i = 8, width = 0, height = 0, idat: [UInt8] = [], types: [String] = []
        while i < png.count {
            let length = Int(be32(png, i))
            let type = Array(png[(i + 4)..<(i + 8)]), body = Array(png[(i + 8)..<(i + 8 + length)])
            XCTAssertEqual(be32(png, i + 8 + length), referenceCRC(type + body), "CRC of \(String(decoding: type, as: UTF8.self))", file: file, line: line)
            types.append(String(decoding: type, as: UTF8.self))
            if types.last == "IHDR" {
                width = Int(be32(body, 0)); height = Int(be32(body, 4))
                XCTAssertEqual(Array(body[8...]), [8, colour, 0, 0, 0], "8 bits, colour type \(colour)", file: file, line: line)
            }
            if types.last == "IDAT" { idat += body }
            i += 12 + length
        }
        XCTAssertEqual(types, ["IHDR", "IDAT", "IEND"], file: file, line: line)
        XCTAssertEqual((UInt16(idat[0]) << 8 | UInt16(idat[1])) % 31, 0, "zlib header check", file: file, line: line)
        var raw: [UInt8] = [], p = 2, final = false
        while !final {
            final = idat[p] & 1 == 1
            XCTAssertEqual(idat[p] >> 1 & 3, 0, "stored block", file: file, line: line)
            let len = Int(idat[p + 1]) | Int(idat[p + 2]) << 8, nlen = Int(idat[p + 3]) | Int(idat[p + 4]) << 8
            XCTAssertEqual(len ^ nlen, 0xFFFF, "LEN/NLEN", file: file, line: line)
            raw += idat[(p + 5)..<(p + 5 + len)]
            p += 5 + len
        }
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        XCTAssertEqual(be32(idat, p), b << 16 | a, "Adler-32", file: file, line: line)
        XCTAssertEqual(p + 4, idat.count, file: file, line: line)
        let rowBytes = width * bytesPerPixel
        guard raw.count == (rowBytes + 1) * height else { XCTFail("scanline bytes", file: file, line: line); return nil }
        var pixels: [UInt8] = []
        for y in 0..<height {
            XCTAssertEqual(raw[y * (rowBytes + 1)], 0, "filter none", file: file, line: line)
            pixels += raw[(y * (rowBytes + 1) + 1)..<((y + 1) * (rowBytes + 1))]
        }
        return (width, height, pixels)
    }

    func testChecksumsMatchPublishedValues() {
        XCTAssertEqual(PNG.crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(PNG.crc32(Array("IEND".utf8)), 0xAE42_6082)
        XCTAssertEqual(PNG.adler32(Array("Wikipedia".utf8)), 0x11E6_0398)
    }

    func testSmallAndMultiBlockImagesDecodeToTheSamePixels() throws {
        for (w, h) in [(1, 1), (37, 5), (300, 300)] {  // 300×300 needs two stored blocks
            let pixels = (0..<(w * h)).map { UInt8(truncatingIfNeeded: $0 * 31 + $0 / w) }
            let decoded = try XCTUnwrap(decode(PNG.grayscale(width: w, height: h, pixels: pixels)))
            XCTAssertEqual(decoded.0, w); XCTAssertEqual(decoded.1, h)
            XCTAssertEqual(decoded.2, pixels)
        }
    }

    func testPreviewGridHasARowPerClassHoldingItsSamples() throws {
        // 3 classes × 3 samples of 2×2 images; sample i is filled with value 10·(i+1).
        let dir = makeScratchDirectory()
        let labels: [Int32] = [0, 1, 2, 0, 1, 2, 0, 1, 2]
        let images = (0..<9).flatMap { [UInt8](repeating: UInt8(10 * ($0 + 1)), count: 4) }
        try Dataset.write(directory: dir, images: images, imageShape: [2, 2], labels: labels, split: [UInt8](repeating: 0, count: 9), meta: [:])
        let grid = try DatasetPreview.grid(try Dataset.load(directory: dir), classes: 3, perClass: 2, scale: 2)
        // Cells 4×4 with 2-pixel gaps: width 2·4 + 3·2, height 3·4 + 4·2.
        XCTAssertEqual(grid.width, 14); XCTAssertEqual(grid.height, 20)
        for row in 0..<3 {
            for column in 0..<2 {
                let sample = row + 3 * column  // the class's first samples, in dataset order
                let y = 2 + row * 6 + 1, x = 2 + column * 6 + 3
                XCTAssertEqual(grid.pixels[y * grid.width + x], UInt8(10 * (sample + 1)), "row \(row) column \(column)")
            }
        }
        XCTAssertEqual(grid.pixels[0], 96, "gap")
        let decoded = try XCTUnwrap(decode(PNG.grayscale(width: grid.width, height: grid.height, pixels: grid.pixels)))
        XCTAssertEqual(decoded.2, grid.pixels)
    }

    func testRGBImageDecodesToTheSamePixels() throws {
        // 2×2: red, green / blue, white.
        let pixels: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]
        let decoded = try XCTUnwrap(decode(PNG.rgb(width: 2, height: 2, pixels: pixels), colour: 2))
        XCTAssertEqual(decoded.0, 2); XCTAssertEqual(decoded.1, 2)
        XCTAssertEqual(decoded.2, pixels)
    }

    func testPreviewOfColourImagesIsInColour() throws {
        // 2 classes × 1 sample of 3×1×1 images: sample 0 is (10, 20, 30), sample 1 (200, 100, 0).
        let dir = makeScratchDirectory()
        try Dataset.write(directory: dir, images: [10, 20, 30, 200, 100, 0], imageShape: [3, 1, 1], labels: [0, 1],
                          split: [0, 0], meta: [:])
        let grid = try DatasetPreview.grid(try Dataset.load(directory: dir), classes: 2, perClass: 1, scale: 1)
        XCTAssertEqual(grid.colour, .rgb)
        // One 1×1 cell per row, 2-pixel gaps: 5 wide, 2 + 1 + 2 + 1 + 2 = 8 high.
        XCTAssertEqual(grid.width, 5); XCTAssertEqual(grid.height, 8)
        XCTAssertEqual(Array(grid.pixels[((2 * 5) + 2) * 3..<((2 * 5) + 3) * 3]), [10, 20, 30])
        XCTAssertEqual(Array(grid.pixels[((5 * 5) + 2) * 3..<((5 * 5) + 3) * 3]), [200, 100, 0])
        XCTAssertEqual(Array(grid.pixels[0..<3]), [96, 96, 96], "gap")
        let decoded = try XCTUnwrap(decode(PNG.encode(width: grid.width, height: grid.height, colour: grid.colour, pixels: grid.pixels), colour: 2))
        XCTAssertEqual(decoded.2, grid.pixels)
    }

    func testPreviewOfFeaturesIsAnError() throws {
        let dir = makeScratchDirectory()
        try Dataset.write(directory: dir, features: [1, 2, 3, 4], dimension: 1, labels: [0, 1, 0, 1], split: [0, 0, 0, 0], meta: [:])
        XCTAssertThrowsError(try DatasetPreview.grid(try Dataset.load(directory: dir), classes: 2, perClass: 2)) {
            guard case .notImages? = $0 as? DatasetError else { return XCTFail("\($0)") }
        }
    }
}
