import Foundation
import TestSupport
import XBMData
@testable import XBMEval
import XBMFormats
import XBMKernels
import XCTest

/// The retrieval picture on a dataset whose neighbours are known by construction: 9 items on
/// the unit circle at angles whose gaps all differ, so each item's neighbours are the others in
/// order of angular distance, and their similarity is the cosine of it. Items 3 and 6 are
/// nearest to an item of another class; item 8 is alone in its class (never a query).
final class RetrievalPictureTests: XCTestCase {
    static let degrees: [Double] = [0, 10, 25, 45, 70, 100, 135, 175, 290]
    static let labels: [Int32] = [0, 0, 0, 1, 1, 1, 2, 2, 9]
    /// Item i's grey sample is 4 × 4 pixels of 20 + 20 i; its colour sample (20 + 20 i, 230 − 20 i, 9 i).
    static func grey(_ item: Int) -> UInt8 { UInt8(20 + 20 * item) }
    static func colour(_ item: Int) -> RasterImage.RGB { RasterImage.RGB(UInt8(20 + 20 * item), UInt8(230 - 20 * item), UInt8(9 * item)) }

    var split: EmbeddedSplit {
        let embeddings = FlatBuffer<Float>(count: Self.degrees.count * 2)
        for (i, angle) in Self.degrees.enumerated() {
            embeddings[2 * i] = Float(cos(angle * .pi / 180))
            embeddings[2 * i + 1] = Float(sin(angle * .pi / 180))
        }
        let rows = Array(Self.degrees.indices)
        return EmbeddedSplit(queryIndices: rows, galleryIndices: rows, queryLabels: Self.labels, galleryLabels: Self.labels,
                             queries: embeddings, gallery: embeddings, dimension: 2, sameSet: true)
    }

    /// The 9 items as the test split (rows 0…8), and two training items a dataset needs (9, 10).
    func dataset(colour: Bool) throws -> Dataset {
        let directory = makeScratchDirectory("retrieval-picture")
        let items = Self.degrees.count + 2
        let images: [UInt8] = (0..<items).flatMap { item -> [UInt8] in
            guard colour else { return [UInt8](repeating: Self.grey(item), count: 16) }
            let c = Self.colour(item)
            return [c.red, c.green, c.blue].flatMap { [UInt8](repeating: $0, count: 16) }
        }
        try Dataset.write(directory: directory, images: images, imageShape: colour ? [3, 4, 4] : [4, 4], labels: Self.labels + [20, 21],
                          split: [UInt8](repeating: 1, count: Self.degrees.count) + [0, 0], meta: [:])
        return try Dataset.load(directory: directory)
    }

    /// The other items by angular distance (no ties: the gaps differ), the nearest first.
    func bruteForceNeighbours(_ query: Int) -> [Int] {
        func gap(_ j: Int) -> Double {
            let raw = abs(Self.degrees[query] - Self.degrees[j]).truncatingRemainder(dividingBy: 360)
            return min(raw, 360 - raw)
        }
        return Self.degrees.indices.filter { $0 != query }.sorted { gap($0) < gap($1) }
    }

    func testNeighboursAreRankedAsByAngleWithTheirCosines() {
        let all = Retrieval.examples(of: split, count: 100, neighbours: 3, seed: 5, failuresOnly: false)
        XCTAssertEqual(Set(all.map(\.row)), Set(0...7), "every query once; item 8 has no other item of its class")
        XCTAssertEqual(all.count, 8)
        for example in all {
            XCTAssertEqual(example.label, Self.labels[example.row])
            XCTAssertEqual(example.neighbours.map(\.row), Array(bruteForceNeighbours(example.row).prefix(3)), "query \(example.row)")
            for neighbour in example.neighbours {
                XCTAssertEqual(neighbour.label, Self.labels[neighbour.row])
                let cosine = cos((Self.degrees[example.row] - Self.degrees[neighbour.row]) * .pi / 180)
                XCTAssertEqual(Double(neighbour.similarity), cosine, accuracy: 1e-6, "Float products of unit vectors")
            }
        }
    }

    func testQueriesFollowTheSeed() {
        let all = Retrieval.examples(of: split, count: 100, neighbours: 2, seed: 5, failuresOnly: false)
        let three = Retrieval.examples(of: split, count: 3, neighbours: 2, seed: 5, failuresOnly: false)
        XCTAssertEqual(three, Array(all.prefix(3)), "the first three of the seed's order")
        XCTAssertEqual(Retrieval.examples(of: split, count: 3, neighbours: 2, seed: 5, failuresOnly: false, blockSize: 2), three,
                       "the same whatever the block size")
        let other = Retrieval.examples(of: split, count: 100, neighbours: 2, seed: 6, failuresOnly: false)
        XCTAssertNotEqual(other.map(\.row), all.map(\.row), "another seed, another order")
        XCTAssertEqual(Set(other.map(\.row)), Set(all.map(\.row)))
    }

    func testFailuresAreTheQueriesWhoseNearestIsOfAnotherClass() {
        let failures = Set((0...7).filter { Self.labels[bruteForceNeighbours($0)[0]] != Self.labels[$0] })
        XCTAssertEqual(failures, [3, 6], "the construction")
        let shown = Retrieval.examples(of: split, count: 100, neighbours: 4, seed: 1, failuresOnly: true)
        XCTAssertEqual(Set(shown.map(\.row)), failures)
        XCTAssertEqual(shown.count, 2)
        XCTAssertTrue(shown.allSatisfy { !$0.topOneIsRight })
    }

    /// Every cell of the picture, pixel by pixel: the frame's colour on all four sides, the
    /// sample of the right item inside, the caption under it, white between the cells.
    func assertPicture(colour: Bool) throws {
        let dataset = try dataset(colour: colour)
        let examples = Retrieval.examples(of: split, count: 4, neighbours: 3, seed: 2, failuresOnly: false)
        let picture = try RetrievalPicture(examples: examples, dataset: dataset)
        XCTAssertEqual(picture.scale, 16, "4-pixel samples drawn at least 64 pixels wide")
        let image = picture.render(dataset: dataset)
        XCTAssertEqual(image.colour, .rgb)
        XCTAssertEqual([image.width, image.height], [picture.width, picture.height])
        let side = 4 * 16, frame = RetrievalPicture.frameThickness
        var frames: [RasterImage.RGB] = []
        for (row, example) in examples.enumerated() {
            let items = [example.row] + bruteForceNeighbours(example.row).prefix(3)
            for (column, item) in items.enumerated() {
                let origin = picture.cellOrigin(row: row, column: column)
                let expectedFrame = column == 0 ? RetrievalPicture.queryColour
                    : Self.labels[item] == example.label ? RetrievalPicture.rightColour : RetrievalPicture.wrongColour
                frames.append(expectedFrame)
                let last = side + 2 * frame - 1
                for (dx, dy) in [(0, 0), (last, 0), (0, last), (last, last), (last / 2, frame - 1), (frame - 1, last / 2),
                                 (last - frame + 1, last / 2), (last / 2, last - frame + 1)] {
                    XCTAssertEqual(image[origin.x + dx, origin.y + dy], expectedFrame, "frame of row \(row), column \(column) at +\(dx),+\(dy)")
                }
                let sample = colour ? Self.colour(item) : RasterImage.RGB(grey: Self.grey(item))
                for (dx, dy) in [(0, 0), (side - 1, side - 1), (side / 2, side / 3)] {
                    XCTAssertEqual(image[origin.x + frame + dx, origin.y + frame + dy], sample, "item \(item) in row \(row), column \(column)")
                }
                let caption = column == 0 ? String(Self.labels[item])
                    : formatted(cos((Self.degrees[example.row] - Self.degrees[item]) * .pi / 180), decimals: 2)
                XCTAssertEqual(picture.caption(row: row, column: column), caption)
                assertCaption(caption, in: image, at: picture.captionOrigin(row: row, column: column), scale: picture.textScale,
                              cell: (origin.x, origin.y + side + 2 * frame, picture.cellWidth, picture.cellHeight - side - 2 * frame))
            }
            let gapX = picture.cellOrigin(row: row, column: 1).x - 2
            XCTAssertEqual(image[gapX, picture.cellOrigin(row: row, column: 1).y + 10], .white, "between the query and its neighbours")
        }
        XCTAssertTrue(frames.contains(RetrievalPicture.rightColour) && frames.contains(RetrievalPicture.wrongColour),
                      "the seed's queries show right and wrong neighbours")
    }

    /// The strip under a cell holds exactly the caption's glyphs (drawn here from the glyph
    /// table) at `origin`, black on white.
    func assertCaption(_ text: String, in image: RasterImage, at origin: (x: Int, y: Int), scale: Int,
                       cell: (x: Int, y: Int, width: Int, height: Int), file: StaticString = #filePath, line: UInt = #line) {
        var mismatches = 0
        for y in cell.y..<(cell.y + cell.height) {
            for x in cell.x..<(cell.x + cell.width) {
                var ink = false
                let gx = x - origin.x, gy = y - origin.y
                if gx >= 0, gy >= 0, gy < DigitFont.height * scale, gx / scale / DigitFont.advance < text.count {
                    let character = text[text.index(text.startIndex, offsetBy: gx / scale / DigitFont.advance)]
                    let column = (gx / scale) % DigitFont.advance
                    ink = column < DigitFont.width && DigitFont.glyph(character)[(gy / scale) * DigitFont.width + column]
                }
                if image[x, y] != (ink ? .black : .white) { mismatches += 1 }
            }
        }
        XCTAssertEqual(mismatches, 0, "caption \(text)", file: file, line: line)
    }

    func testGreyPicturePixelByPixel() throws { try assertPicture(colour: false) }

    func testColourPicturePixelByPixel() throws { try assertPicture(colour: true) }

    func testFeatureDatasetsHaveNoPicture() throws {
        let directory = makeScratchDirectory("retrieval-picture-features")
        try Dataset.write(directory: directory, features: [1, 0, 0, 1, 1, 1, 0, 0], dimension: 2, labels: [0, 0, 1, 2],
                          split: [1, 1, 0, 0], meta: [:])
        let examples = Retrieval.examples(of: split, count: 1, neighbours: 1, seed: 0, failuresOnly: false)
        XCTAssertThrowsError(try RetrievalPicture(examples: examples, dataset: try Dataset.load(directory: directory))) { error in
            XCTAssertEqual(error as? EvaluationError, .noImagesToShow(directory.path))
            XCTAssertTrue("\(error)".contains("feature vectors") && "\(error)".contains("--show"), "\(error)")
        }
    }

    /// The glyphs are 5 × 7 and all different; "1" is a stem in the middle column with a foot.
    func testDigitFont() {
        XCTAssertEqual(DigitFont.characters, Set("0123456789.-"))
        let glyphs = DigitFont.characters.map { DigitFont.glyph($0) }
        XCTAssertTrue(glyphs.allSatisfy { $0.count == 35 && $0.contains(true) })
        XCTAssertEqual(Set(glyphs.map { $0.map { $0 ? "#" : "." }.joined() }).count, 12)
        let one = DigitFont.glyph("1")
        XCTAssertTrue((0..<7).allSatisfy { one[$0 * 5 + 2] }, "the stem")
        XCTAssertEqual(one[30..<35].filter { $0 }.count, 3, "the foot")
        XCTAssertEqual(DigitFont.textWidth("-0.25", scale: 2), 58)
    }
}
