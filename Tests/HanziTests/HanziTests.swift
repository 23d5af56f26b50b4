import Foundation
import Hanzi
import TestSupport
import XBMData
import XBMKernels
import XCTest

/// The hanzi pipeline on one small font (WenQuanYi Micro Hei, package fonts-wqy-microhei).
final class HanziTests: XCTestCase {
    let font = HanziFace.named("WenQuanYi Micro Hei")!

    func testGB2312LevelOneDecodesToTheKnownCharacters() throws {
        let characters = try GB2312.levelOneCharacters()
        XCTAssertEqual(characters.count, 3755)
        XCTAssertEqual(String(String.UnicodeScalarView(characters.prefix(5))), "啊阿埃挨哎")
        XCTAssertEqual(characters.last, "座")
        XCTAssertEqual(Set(characters).count, 3755, "all distinct")
    }

    func testLevelTwoIsASecondDisjointSet() throws {
        let one = try HanziCharset.level1.characters(), two = try HanziCharset.level2.characters()
        XCTAssertEqual(two.count, 3008)
        XCTAssertEqual(String(String.UnicodeScalarView(two.prefix(4))), "亍丌兀丐")
        XCTAssertEqual(two.last, "齄")
        XCTAssertEqual(Set(two).count, 3008, "all distinct")
        XCTAssertTrue(Set(one).isDisjoint(with: two))
        XCTAssertEqual(try HanziCharset.all.characters(), one + two)
        XCTAssertEqual(HanziCharset.level2.datasetName, "hanzi-level2")
    }

    func testTwentySevenFacesAreListedAndLocated() throws {
        XCTAssertEqual(HanziFace.all.count, 27)
        XCTAssertEqual(Set(HanziFace.all.map(\.name)).count, 27)
        for face in HanziFace.all { XCTAssertNotNil(HanziRenderer.locate(face), "\(face.name) [\(face.package)]") }
    }

    func testMissingFaceNamesItsPackage() {
        let bogus = HanziFace(name: "Nowhere Sans", package: "fonts-nowhere", file: "truetype/nowhere/nowhere.ttf", family: "Nowhere", style: "Regular")
        XCTAssertThrowsError(try HanziRenderer(faces: [bogus])) { error in
            XCTAssertTrue("\(error)".contains("fonts-nowhere"), "\(error)")
        }
        let wrongStyle = HanziFace(name: "Micro Hei Italic", package: "fonts-wqy-microhei", file: font.file, family: font.family, style: "Italic")
        XCTAssertThrowsError(try HanziRenderer(faces: [wrongStyle])) { error in
            guard case .faceNotInFile? = error as? HanziError else { return XCTFail("\(error)") }
        }
    }

    func testGlyphIsCroppedToInk() throws {
        let renderer = try HanziRenderer(faces: [font])
        for character: Unicode.Scalar in ["啊", "一", "座"] {
            let g = try renderer.glyph(character, faceIndex: 0)
            func row(_ y: Int) -> ArraySlice<UInt8> { g.pixels[(y * g.width)..<((y + 1) * g.width)] }
            XCTAssertTrue(row(0).contains { $0 > 0 } && row(g.height - 1).contains { $0 > 0 }, "\(character) top/bottom rows have ink")
            XCTAssertTrue((0..<g.height).contains { g.pixels[$0 * g.width] > 0 }, "\(character) left column has ink")
            XCTAssertTrue((0..<g.height).contains { g.pixels[$0 * g.width + g.width - 1] > 0 }, "\(character) right column has ink")
            XCTAssertLessThanOrEqual(max(g.width, g.height), 64)
        }
        let one = try renderer.glyph("一", faceIndex: 0)
        XCTAssertGreaterThan(one.width, 4 * one.height, "一 is a wide, flat stroke")
    }

    /// Ink bounding box (x0, y0, x1, y1) of a 32×32 image, inclusive.
    func inkBox(_ image: [UInt8], threshold: UInt8 = 64) -> (Int, Int, Int, Int) {
        var box = (32, 32, -1, -1)
        for y in 0..<32 { for x in 0..<32 where image[y * 32 + x] >= threshold {
            box = (min(box.0, x), min(box.1, y), max(box.2, x), max(box.3, y))
        } }
        return box
    }

    func compose(_ glyph: GlyphBitmap, _ d: GlyphDistortion) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32 * 32)
        out.withUnsafeMutableBufferPointer { composeGlyph(glyph, distortion: d, workspace: GlyphWorkspace(), output: $0.baseAddress!) }
        return out
    }

    func testUndistortedGlyphIsCentredAtBaseScale() throws {
        let renderer = try HanziRenderer(faces: [font])
        for character: Unicode.Scalar in ["啊", "一", "座", "亅"] {
            let g = try renderer.glyph(character, faceIndex: 0)
            let image = compose(g, .identity)
            XCTAssertEqual(image.count, 32 * 32)
            let (x0, y0, x1, y1) = inkBox(image)
            // Box centre at the image centre (15.5) within one output pixel (threshold effects).
            XCTAssertEqual(Double(x0 + x1) / 2, 15.5, accuracy: 1, "\(character) horizontal centre")
            XCTAssertEqual(Double(y0 + y1) / 2, 15.5, accuracy: 1, "\(character) vertical centre")
            // Size: ink extent × 0.8 (base scale) / 2 (downsampling), ±1.5 px for anti-aliased edges.
            XCTAssertEqual(Double(x1 - x0 + 1), Double(g.width) * 0.4, accuracy: 1.5, "\(character) width")
            XCTAssertEqual(Double(y1 - y0 + 1), Double(g.height) * 0.4, accuracy: 1.5, "\(character) height")
        }
    }

    func testAffineShiftRotationAndScaleActAsDocumented() throws {
        let renderer = try HanziRenderer(faces: [font])
        let one = try renderer.glyph("一", faceIndex: 0)
        let plain = inkBox(compose(one, .identity))
        var shifted = GlyphDistortion.identity
        shifted.shiftX = 8; shifted.shiftY = -6  // canvas px: +4 and −3 output px
        let moved = inkBox(compose(one, shifted))
        XCTAssertEqual(moved.0 - plain.0, 4); XCTAssertEqual(moved.2 - plain.2, 4)
        XCTAssertEqual(moved.1 - plain.1, -3); XCTAssertEqual(moved.3 - plain.3, -3)

        // +12° turns the bar clockwise on screen (y down): its right end sits lower.
        var rotated = GlyphDistortion.identity
        rotated.rotationDegrees = 12
        let image = compose(one, rotated)
        func meanRow(_ columns: Range<Int>) -> Double {
            var sum = 0.0, weight = 0.0
            for y in 0..<32 { for x in columns { sum += Double(y) * Double(image[y * 32 + x]); weight += Double(image[y * 32 + x]) } }
            return sum / weight
        }
        let box = inkBox(image)
        let rise = meanRow((box.2 - 3)..<(box.2 + 1)) - meanRow(box.0..<(box.0 + 4))
        let span = Double(box.2 - box.0 - 3)
        XCTAssertEqual(rise / span, tan(12 * Double.pi / 180), accuracy: 0.06)

        var narrow = GlyphDistortion.identity, wide = GlyphDistortion.identity
        narrow.scaleX = 0.75; wide.scaleX = 1.1
        let n = inkBox(compose(one, narrow)), w = inkBox(compose(one, wide))
        XCTAssertEqual(Double(n.2 - n.0 + 1) / Double(w.2 - w.0 + 1), 0.75 / 1.1, accuracy: 0.06)
    }

    func testStrokeThickeningAddsInkAndThinningRemovesIt() throws {
        let glyph = try HanziRenderer(faces: [font]).glyph("啊", faceIndex: 0)
        var thick = GlyphDistortion.identity, thin = GlyphDistortion.identity
        thick.stroke = 1; thin.stroke = -1
        func ink(_ d: GlyphDistortion) -> Int { compose(glyph, d).reduce(0) { $0 + Int($1) } }
        XCTAssertGreaterThan(ink(thick), ink(.identity) * 12 / 10)
        XCTAssertLessThan(ink(thin), ink(.identity) * 9 / 10)
    }

    func testRandomDistortionsStayInTheirRangesAndKeepInkInside() throws {
        let glyph = try HanziRenderer(faces: [font]).glyph("座", faceIndex: 0)
        var random = RandomSource(seed: 11)
        var sawLarge = (rotation: false, elastic: false)
        for _ in 0..<40 {
            let d = GlyphDistortion.random(using: &random)
            XCTAssertTrue(GlyphDistortion.rotationRange.contains(d.rotationDegrees))
            XCTAssertTrue(GlyphDistortion.shearRange.contains(d.shear))
            XCTAssertTrue(GlyphDistortion.scaleRange.contains(d.scaleX) && GlyphDistortion.scaleRange.contains(d.scaleY))
            XCTAssertTrue(abs(d.shiftX) <= 8 && abs(d.shiftY) <= 8)
            XCTAssertTrue(d.elastic.allSatisfy { abs($0) <= GlyphDistortion.elasticAmplitude })
            XCTAssertTrue(GlyphDistortion.strokeRange.contains(d.stroke))
            sawLarge.rotation = sawLarge.rotation || abs(d.rotationDegrees) > 9
            sawLarge.elastic = sawLarge.elastic || d.elastic.contains { abs($0) > 2.5 }
            let image = compose(glyph, d)
            let (x0, y0, x1, y1) = inkBox(image)
            XCTAssertGreaterThan(x1, x0, "ink survives")
            // Shift ≤ 4 px plus elastic ≤ 1.5 px from the centred box: its centre stays within 6 px.
            XCTAssertEqual(Double(x0 + x1) / 2, 15.5, accuracy: 6.5)
            XCTAssertEqual(Double(y0 + y1) / 2, 15.5, accuracy: 6.5)
        }
        XCTAssertTrue(sawLarge.rotation && sawLarge.elastic, "the ranges are actually used")
    }

    func testBuildIsDeterministicForASeedAndThreadCount() throws {
        func build(_ seed: UInt64, threads: Int) throws -> (HanziSummary, Data) {
            let dir = makeScratchDirectory("hanzi")
            let summary = try HanziBenchmark.build(outputDirectory: dir, seed: seed, threads: threads, faces: [font], characterLimit: 6)
            return (summary, try Data(contentsOf: dir.appendingPathComponent("x.npy")))
        }
        let (a, xa) = try build(5, threads: 1)
        let (b, xb) = try build(5, threads: 2)
        let (c, xc) = try build(6, threads: 2)
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(a.checksum, b.checksum)
        XCTAssertEqual(xa, xb)
        XCTAssertNotEqual(a.checksum, c.checksum)
        XCTAssertNotEqual(xa, xc)
        let dataset = try Dataset.load(directory: a.directory)
        XCTAssertEqual(dataset.kind, .images(channels: 1, height: 32, width: 32))
        XCTAssertEqual(dataset.labels, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(dataset.indices(.train).count, 6)

        // The checksum is FNV-1a 64 of x's payload then y's payload.
        var hash = FNV1a64()
        hash.update(dataset.rawSamples)
        dataset.labels.withUnsafeBytes { hash.update($0) }
        XCTAssertEqual(hash.value, a.checksum)
    }

    /// `--faces-per-class`: each character keeps N of the faces, and each kept image is the
    /// full set's image of that character and face (the subset is drawn, not re-rendered).
    func testFacesPerClassKeepsASeededSubsetOfTheFullSetsImages() throws {
        let faces = Array(HanziFace.all.filter { $0.isInstalled() }.prefix(5))
        try XCTSkipIf(faces.count < 5, "needs 5 installed faces of the benchmark (Launch/setup installs them)")
        let fullDirectory = makeScratchDirectory("hanzi-full"), subsetDirectory = makeScratchDirectory("hanzi-subset")
        _ = try HanziBenchmark.build(outputDirectory: fullDirectory, seed: 4, threads: 2, faces: faces, characterLimit: 6)
        let summary = try HanziBenchmark.build(outputDirectory: subsetDirectory, seed: 4, threads: 2, faces: faces,
                                               characterLimit: 6, facesPerClass: 2)
        let full = try Dataset.load(directory: fullDirectory), subset = try Dataset.load(directory: subsetDirectory)
        XCTAssertEqual(summary.count, 12)
        XCTAssertEqual(subset.labels, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
        let pixels = 32 * 32
        func image(_ dataset: Dataset, _ i: Int) -> [UInt8] {
            Array(UnsafeRawBufferPointer(rebasing: dataset.rawSamples[(i * pixels)..<((i + 1) * pixels)]))
        }
        var keptFaces: [[Int]] = []
        for character in 0..<6 {
            // Which of the full set's five images of this character each kept image is.
            let matches = (0..<2).map { k in
                (0..<5).filter { image(full, character * 5 + $0) == image(subset, character * 2 + k) }
            }
            XCTAssertEqual(matches.map(\.count), [1, 1], "character \(character): each kept image is exactly one full-set image")
            let kept = matches.compactMap(\.first)
            XCTAssertEqual(kept, kept.sorted(), "faces kept in face order")
            XCTAssertEqual(Set(kept).count, 2, "two different faces")
            keptFaces.append(kept)
        }
        XCTAssertGreaterThan(Set(keptFaces.map { $0.description }).count, 1, "the faces kept differ between characters")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: subsetDirectory.appendingPathComponent("meta.json"))) as! [String: Any]
        XCTAssertEqual(meta["faces_per_class"] as? Int, 2)
        XCTAssertThrowsError(try HanziBenchmark.build(outputDirectory: makeScratchDirectory("hanzi-bad"), seed: 4, threads: 1,
                                                      faces: faces, characterLimit: 2, facesPerClass: 6)) {
            XCTAssertTrue("\($0)".contains("--faces-per-class 6"), "\($0)")
        }
    }

    func testFNV1a64MatchesPublishedVectors() {
        func fnv(_ s: String) -> UInt64 { var h = FNV1a64(); Array(s.utf8).withUnsafeBytes { h.update($0) }; return h.value }
        XCTAssertEqual(fnv(""), 0xCBF2_9CE4_8422_2325)
        XCTAssertEqual(fnv("a"), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(fnv("foobar"), 0x8594_4171_F739_67E8)
    }
}

extension HanziTests {
    func testOutputAppearsWholeAndForeignDirectoriesAreNotReplaced() throws {
        let dir = makeScratchDirectory("hanzi").appendingPathComponent("out")
        _ = try HanziBenchmark.build(outputDirectory: dir, seed: 1, threads: 1, faces: [font], characterLimit: 2)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)), ["meta.json", "x.npy", "y.npy", "split.npy"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.deletingLastPathComponent().path), ["out"], "no staging left")
        // Rebuilding over a dataset directory replaces it.
        let again = try HanziBenchmark.build(outputDirectory: dir, seed: 2, threads: 1, faces: [font], characterLimit: 3)
        XCTAssertEqual(try Dataset.load(directory: dir).count, again.count)
        // A directory with other files is left alone.
        try Data("keep".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try HanziBenchmark.build(outputDirectory: dir, seed: 3, threads: 1, faces: [font], characterLimit: 2)) {
            XCTAssertTrue("\($0)".contains("notes.txt"), "\($0)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("notes.txt").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.deletingLastPathComponent().path), ["out"], "no staging left")
    }
}
