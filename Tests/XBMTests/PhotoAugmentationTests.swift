import Foundation
import TestSupport
@testable import XBMData
@testable import XBMKernels
import XCTest

/// The photo augmentation (Docs/data.md): a crop resized back bilinearly, a flip, and crops
/// that depend on (seed, iteration, global row) only.
final class PhotoAugmentationTests: XCTestCase {
    /// Two 3-channel 4×4 images. Image 0 is affine: 10·y + x + 60·c. Image 1 is zero except
    /// for the 2×2 block at rows 1–2, columns 1–2 of channel 0: [[0, 16], [32, 64]] (not affine).
    func makeDataset() throws -> Dataset {
        var pixels = [UInt8](repeating: 0, count: 2 * 3 * 16)
        for c in 0..<3 { for y in 0..<4 { for x in 0..<4 { pixels[(c * 4 + y) * 4 + x] = UInt8(10 * y + x + 60 * c) } } }
        for (y, x, value) in [(1, 1, 0), (1, 2, 16), (2, 1, 32), (2, 2, 64)] { pixels[48 + y * 4 + x] = UInt8(value) }
        let dir = makeScratchDirectory()
        try Dataset.write(directory: dir, images: pixels, imageShape: [3, 4, 4], labels: [0, 1], split: [0, 0], meta: [:])
        return try Dataset.load(directory: dir)
    }

    func fill(_ dataset: Dataset, _ indices: [Int32], _ crops: [PhotoCrop]) -> [Float] {
        var out = [Float](repeating: .nan, count: indices.count * dataset.sampleSize)
        indices.withUnsafeBufferPointer { i in
            crops.withUnsafeBufferPointer { c in out.withUnsafeMutableBufferPointer { dataset.fill(indices: i, crops: c, into: $0.baseAddress!) } }
        }
        return out
    }

    func testCropOfTheAffineImageIsResizedBilinearly() throws {
        // The 2×2 crop at row 1, column 0, resized to 4×4: each output row y samples crop row
        // max((y + ½)·2/4 − ½, 0) = 0, ¼, ¾, 1¼ → clamped to the last row: 0, ¼, ¾, 1; columns
        // likewise. Bilinear interpolation of an affine image is the affine function there:
        // 10·(1 + row) + column + 60·c.
        let dataset = try makeDataset()
        let out = fill(dataset, [0], [PhotoCrop(top: 1, left: 0, height: 2, width: 2, flip: false)])
        let channel0: [Float] = [10, 10.25, 10.75, 11,
                                 12.5, 12.75, 13.25, 13.5,
                                 17.5, 17.75, 18.25, 18.5,
                                 20, 20.25, 20.75, 21]
        for c in 0..<3 {
            for i in 0..<16 {
                XCTAssertEqual(out[c * 16 + i], (channel0[i] + Float(60 * c)) / 255, accuracy: 1e-6, "c \(c) pixel \(i)")
            }
        }
        // Flipped: every row mirrored, nothing else.
        let flipped = fill(dataset, [0], [PhotoCrop(top: 1, left: 0, height: 2, width: 2, flip: true)])
        for row in 0..<12 {
            XCTAssertEqual(Array(flipped[(row * 4)..<(row * 4 + 4)]), Array(out[(row * 4)..<(row * 4 + 4)].reversed()), "row \(row)")
        }
    }

    func testBilinearWeightsOnANonAffineBlock() throws {
        // Crop rows 1–2, columns 1–2 of image 1 to 4×4. Output (1, 1) lies at crop (¼, ¼):
        // ¾·¾·0 + ¾·¼·16 + ¼·¾·32 + ¼·¼·64 = 3 + 6 + 4 = 13. Output (0, 0) is the corner 0,
        // (3, 3) the corner 64, (0, 3) the corner 16, and (2, 1) lies at (¾, ¼):
        // ¼·¾·0 + ¼·¼·16 + ¾·¾·32 + ¾·¼·64 = 1 + 18 + 12 = 31.
        let dataset = try makeDataset()
        let crop = PhotoCrop(top: 1, left: 1, height: 2, width: 2, flip: false)
        let out = fill(dataset, [1], [crop])
        for (y, x, value) in [(1, 1, 13), (0, 0, 0), (3, 3, 64), (0, 3, 16), (2, 1, 31)] as [(Int, Int, Float)] {
            XCTAssertEqual(out[y * 4 + x], value / 255, accuracy: 1e-6, "(\(y), \(x))")
        }
        XCTAssertTrue(out[16...].allSatisfy { $0 == 0 }, "channels 1 and 2 are zero")
        var mirrored = crop
        mirrored.flip = true
        XCTAssertEqual(fill(dataset, [1], [mirrored])[1 * 4 + 2], 13 / 255, accuracy: 1e-6, "(1, 1) moves to (1, 2)")
    }

    func testTheWholeImageUnflippedIsThePlainFill() throws {
        let dataset = try makeDataset()
        var plain = [Float](repeating: .nan, count: 2 * 48)
        [Int32(0), 1].withUnsafeBufferPointer { i in plain.withUnsafeMutableBufferPointer { dataset.fill(indices: i, shifts: nil, into: $0.baseAddress!) } }
        XCTAssertEqual(fill(dataset, [0, 1], Array(repeating: .whole(height: 4, width: 4), count: 2)), plain)
    }

    func testCentralCropFallbackKeepsTheAspectInRange() {
        // Aspect 4/10 < 3/4: full width, h = round(4 / 0.75) = 5, centred: top (10 − 5)/2 = 2.
        XCTAssertEqual(PhotoAugmentation.centralCrop(height: 10, width: 4), PhotoCrop(top: 2, left: 0, height: 5, width: 4, flip: false))
        // Aspect 8 > 4/3: full height 1, w = round(4/3) = 1, left (8 − 1)/2 = 3.
        XCTAssertEqual(PhotoAugmentation.centralCrop(height: 1, width: 8), PhotoCrop(top: 0, left: 3, height: 1, width: 1, flip: false))
        XCTAssertEqual(PhotoAugmentation.centralCrop(height: 6, width: 7), .whole(height: 6, width: 7))
    }

    func testDrawnCropsStayInsideAndFollowTheRanges() {
        var random = RandomSource(seed: 11)
        var flips = 0, fallbacks = 0
        for _ in 0..<2000 {
            let crop = PhotoAugmentation.drawCrop(height: 64, width: 48, random: &random)
            XCTAssertTrue(crop.top >= 0 && crop.left >= 0 && crop.top + crop.height <= 64 && crop.left + crop.width <= 48, "\(crop)")
            if crop.flip { flips += 1 }
            if crop.height == PhotoAugmentation.centralCrop(height: 64, width: 48).height && crop.width == 48 { fallbacks += 1; continue }
            // Rounding w and h moves the area share and the aspect by at most ~1/side.
            let share = Double(crop.height * crop.width) / Double(64 * 48)
            XCTAssertTrue(share >= 0.08 - 0.02 && share <= 1 + 1e-9, "area share \(share)")
            let aspect = Double(crop.width) / Double(crop.height)
            XCTAssertTrue(aspect >= 0.75 * (1 - 2.0 / Double(crop.width)) && aspect <= 4.0 / 3 * (1 + 2.0 / Double(crop.height)), "aspect \(aspect)")
        }
        // Binomial(2000, ½): 5 standard deviations are ±112.
        XCTAssertEqual(Double(flips), 1000, accuracy: 112)
        XCTAssertLessThan(fallbacks, 200)
    }

    func testCropsDependOnSeedIterationAndGlobalRowOnly() throws {
        // The rows every rank draws for itself, put together, are the rows one rank draws, for
        // any rank count; another iteration or seed draws others.
        func globalCrops(ranks: Int, iteration: Int, seed: UInt64) -> [PhotoCrop] {
            (0..<ranks).flatMap { rank -> [PhotoCrop] in
                let rows = GlobalBatch.localRows(rank: rank, ranks: ranks, batchSize: 8)
                var local = [PhotoCrop](repeating: .whole(height: 1, width: 1), count: rows.count)
                local.withUnsafeMutableBufferPointer {
                    PhotoAugmentation.drawCrops(into: $0, seed: seed, iteration: iteration, batchSize: 8, rows: rows, height: 32, width: 32)
                }
                return local
            }
        }
        let one = globalCrops(ranks: 1, iteration: 5, seed: 3)
        XCTAssertEqual(globalCrops(ranks: 2, iteration: 5, seed: 3), one)
        XCTAssertEqual(globalCrops(ranks: 4, iteration: 5, seed: 3), one)
        XCTAssertEqual(globalCrops(ranks: 8, iteration: 5, seed: 3), one)
        XCTAssertGreaterThan(Set(one.map { "\($0)" }).count, 6, "rows get different crops")
        XCTAssertNotEqual(globalCrops(ranks: 1, iteration: 6, seed: 3), one)
        XCTAssertNotEqual(globalCrops(ranks: 1, iteration: 5, seed: 4), one)

        // And the images: the same sample index and seed give the same pixels on 1 and 2 ranks.
        let dataset = try makeDataset()
        let indices: [Int32] = [0, 1, 1, 0, 0, 1, 1, 0]
        var crops = [PhotoCrop](repeating: .whole(height: 1, width: 1), count: 8)
        func images(ranks: Int) -> [Float] {
            (0..<ranks).flatMap { rank -> [Float] in
                let rows = GlobalBatch.localRows(rank: rank, ranks: ranks, batchSize: 8)
                crops.withUnsafeMutableBufferPointer {
                    PhotoAugmentation.drawCrops(into: $0, seed: 9, iteration: 2, batchSize: 8, rows: rows, height: 4, width: 4)
                }
                return fill(dataset, Array(indices[rows]), Array(crops.prefix(rows.count)))
            }
        }
        XCTAssertEqual(images(ranks: 2), images(ranks: 1))
        XCTAssertEqual(images(ranks: 4), images(ranks: 1))
    }
}
