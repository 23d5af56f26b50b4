import XCTest
@testable import DatasetImport

/// The resize-and-crop on pictures whose result is worked out by hand.
final class SquareResizeTests: XCTestCase {
    /// A w × h picture, left half red (columns < split) and the rest blue.
    func halves(width: Int, height: Int, split: Int) -> RGBImage {
        RGBImage(width: width, height: height,
                 pixels: Fixtures.pixels(width: width, height: height) { x, _ in x < split ? [255, 0, 0] : [0, 0, 255] })
    }

    /// Channel c of output pixel (x, y) in (3, S, S) planes.
    func value(_ planes: [UInt8], size: Int, _ c: Int, _ x: Int, _ y: Int) -> UInt8 { planes[c * size * size + y * size + x] }

    func testLandscapeShrinkAveragesTheCentreSquare() {
        // 12 × 6, red columns 0–5, blue 6–11, to S = 3: m = 6, the centre square is columns
        // 3–8, scaled by 1/2. Output column 0 covers source columns 3, 4 (red); column 1
        // covers 5 (red) and 6 (blue): (127.5, 0, 127.5) → 128; column 2 covers 7, 8 (blue).
        let planes = SquareResize.planes(halves(width: 12, height: 6, split: 6), size: 3)
        for y in 0..<3 {
            XCTAssertEqual((0..<3).map { value(planes, size: 3, $0, 0, y) }, [255, 0, 0])
            XCTAssertEqual((0..<3).map { value(planes, size: 3, $0, 1, y) }, [128, 0, 128])
            XCTAssertEqual((0..<3).map { value(planes, size: 3, $0, 2, y) }, [0, 0, 255])
        }
    }

    func testFractionalFootprints() {
        // 10 × 4, red columns 0–4, blue 5–9, to S = 3: m = 4, the square starts at column
        // o = (10 − 4)/2 = 3 and each output pixel covers 4/3 source columns:
        // column 0 covers [3, 4.333): column 3 (weight 1) and 4 (⅓), both red → 255 red;
        // column 1 covers [4.333, 5.667): column 4 (⅔ red) and 5 (⅔ blue), each weight ½
        //   → red 127.5 → 128, blue 127.5 → 128;
        // column 2 covers [5.667, 7): blue.
        let planes = SquareResize.planes(halves(width: 10, height: 4, split: 5), size: 3)
        XCTAssertEqual((0..<3).map { value(planes, size: 3, $0, 0, 1) }, [255, 0, 0])
        XCTAssertEqual((0..<3).map { value(planes, size: 3, $0, 1, 1) }, [128, 0, 128])
        XCTAssertEqual((0..<3).map { value(planes, size: 3, $0, 2, 1) }, [0, 0, 255])
        // The weights as exact fractions over 2m = 8: ¾ and ¼, then ½ and ½.
        let axis = SquareResize.axis(length: 10, square: 4, size: 3)
        XCTAssertEqual(axis.denominator, 8)
        XCTAssertEqual(axis.taps[0], [.init(index: 3, weight: 6), .init(index: 4, weight: 2)])
        XCTAssertEqual(axis.taps[1], [.init(index: 4, weight: 4), .init(index: 5, weight: 4)])
        XCTAssertEqual(axis.taps[2], [.init(index: 5, weight: 2), .init(index: 6, weight: 6)])
    }

    func testPortraitCropsRowsKeepingTheCentre() {
        // 4 wide × 8 high; rows 0–1 green, 2–5 grey 100, 6–7 green. S = 4: m = 4, the centre
        // square is rows 2–5, so the output is all grey 100 and no green survives.
        let image = RGBImage(width: 4, height: 8, pixels: Fixtures.pixels(width: 4, height: 8) { _, y in
            (2...5).contains(y) ? [100, 100, 100] : [0, 255, 0]
        })
        XCTAssertEqual(SquareResize.planes(image, size: 4), [UInt8](repeating: 100, count: 48))
    }

    func testEnlargingIsBilinear() {
        // 2 × 2 of grey 0 (left column) and 200 (right) to S = 4: u = (i + ½)/2 − ½ →
        // −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1) → 0, 50, 150, 200.
        let image = RGBImage(width: 2, height: 2, pixels: Fixtures.pixels(width: 2, height: 2) { x, _ in
            x == 0 ? [0, 0, 0] : [200, 200, 200]
        })
        let planes = SquareResize.planes(image, size: 4)
        for c in 0..<3 {
            for y in 0..<4 { XCTAssertEqual((0..<4).map { value(planes, size: 4, c, $0, y) }, [0, 50, 150, 200]) }
        }
    }

    func testSameSizeIsTheIdentity() {
        let image = RGBImage(width: 3, height: 3, pixels: (0..<27).map { UInt8($0 * 9) })
        let planes = SquareResize.planes(image, size: 3)
        for y in 0..<3 { for x in 0..<3 { for c in 0..<3 {
            XCTAssertEqual(value(planes, size: 3, c, x, y), image[x, y, c])
        } } }
    }

    func testWeightsSumToTheDenominatorInsideTheSquare() {
        for (n, m, s) in [(500, 375, 224), (97, 97, 13), (1000, 640, 64), (7, 5, 5), (6, 3, 8), (375, 375, 500)] {
            let axis = SquareResize.axis(length: n, square: m, size: s)
            XCTAssertEqual(axis.taps.count, s)
            for taps in axis.taps {
                XCTAssertEqual(taps.reduce(0) { $0 + $1.weight }, axis.denominator, "\(n), \(m), \(s)")
                XCTAssertTrue(taps.allSatisfy { $0.weight > 0 && $0.index >= (n - m) / 2 && $0.index < n - (n - m) / 2 }, "\(n), \(m), \(s)")
            }
        }
    }
}
