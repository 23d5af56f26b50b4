import CPNG
@testable import DatasetImport
import XBMData
import XBMFormats
import XCTest

/// Tiny trees in each published layout, imported end to end and read back as datasets.
final class ImporterTests: XCTestCase {
    var root: URL!
    var output: URL { root.appendingPathComponent("out") }
    var source: URL { root.appendingPathComponent("src") }

    override func setUpWithError() throws { root = try Fixtures.directory(self) }

    /// A solid picture of `colour` as a JPEG of `components` (1, 3 or 4) or as a PNG.
    func jpeg(_ colour: [UInt8], width: Int = 12, height: Int = 8) -> Data {
        Fixtures.jpeg(Fixtures.pixels(width: width, height: height, components: colour.count) { _, _ in colour },
                      width: width, height: height, components: colour.count)
    }

    func png(_ colour: [UInt8], format: UInt32 = PNGFormat.rgb, width: Int = 9, height: Int = 12) -> Data {
        Fixtures.png(Fixtures.pixels(width: width, height: height, components: colour.count) { _, _ in colour },
                     width: width, height: height, format: format)
    }

    func importing(_ format: ImportFormat, size: Int = 4, vehicleIDTest: Int = 800, skip: Bool = false) throws -> (ImportSummary, Dataset) {
        let plan = try ImportPlan.read(format: format, source: source, vehicleIDTest: vehicleIDTest)
        let summary = try DatasetImporter.run(plan: plan, output: output, size: size, skipUnreadable: skip)
        return (summary, try Dataset.load(directory: output))
    }

    func meta() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("meta.json"))) as! [String: Any]
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    /// Eight SOP images in 4 classes of 2 super classes, in every colour type, some PNGs named .JPG.
    func writeSOP() throws {
        try Fixtures.write("""
            image_id class_id super_class_id path
            1 1 1 bicycle_final/a_0.JPG
            2 1 1 bicycle_final/a_1.JPG
            3 5 1 bicycle_final/b_0.JPG
            4 5 1 bicycle_final/b_1.JPG

            """, to: "Ebay_train.txt", in: source)
        try Fixtures.write("""
            image_id class_id super_class_id path
            5 9 3 chair_final/c_0.JPG
            6 9 3 chair_final/c_1.JPG
            7 12 3 chair_final/d_0.JPG
            8 12 3 chair_final/d_1.JPG

            """, to: "Ebay_test.txt", in: source)
        try Fixtures.write(jpeg([200, 30, 30]), to: "bicycle_final/a_0.JPG", in: source)
        try Fixtures.write(jpeg([90]), to: "bicycle_final/a_1.JPG", in: source)
        try Fixtures.write(jpeg([255, 255, 255, 100]), to: "bicycle_final/b_0.JPG", in: source)
        try Fixtures.write(png([10, 250, 10]), to: "bicycle_final/b_1.JPG", in: source)
        try Fixtures.write(png([40, 50, 60, 255], format: PNGFormat.rgba), to: "chair_final/c_0.JPG", in: source)
        try Fixtures.write(png([77], format: PNGFormat.grey), to: "chair_final/c_1.JPG", in: source)
        try Fixtures.write(jpeg([0, 0, 250]), to: "chair_final/d_0.JPG", in: source)
        try Fixtures.write(jpeg([250, 250, 0], width: 30, height: 7), to: "chair_final/d_1.JPG", in: source)
    }

    func testSOP() throws {
        try writeSOP()
        let (summary, dataset) = try importing(.sop)
        XCTAssertEqual(dataset.kind, .images(channels: 3, height: 4, width: 4))
        XCTAssertEqual(dataset.labels, [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(dataset.split, [0, 0, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(dataset.indices(.query), dataset.indices(.gallery))
        XCTAssertEqual(summary.splitCounts, [0: 4, 1: 4])
        XCTAssertEqual(summary.classes, 4)
        XCTAssertEqual(try NpyArray.read(contentsOf: output.appendingPathComponent("super_labels.npy")).values(as: Int32.self),
                       [0, 0, 0, 0, 1, 1, 1, 1])
        let meta = try meta()
        XCTAssertEqual(meta["recall_k"] as? [Int], [1, 10, 100, 1000])
        XCTAssertEqual(meta["size"] as? Int, 4)
        XCTAssertEqual(meta["name"] as? String, "sop")
        XCTAssertEqual(meta["counts"] as? [String: Int], ["train": 4, "test": 4])
        // Flat pictures stay flat: the grey JPEG (90 ± 2) in every channel, the palette-free
        // green PNG exactly, the RGBA PNG (opaque) exactly.
        let x = dataset.rawSamples, sample = 48
        XCTAssertTrue((0..<48).allSatisfy { abs(Int(x[1 * sample + $0]) - 90) <= 2 })
        XCTAssertEqual((0..<3).map { x[3 * sample + $0 * 16 + 5] }, [10, 250, 10])
        XCTAssertEqual((0..<3).map { x[4 * sample + $0 * 16 + 5] }, [40, 50, 60])
        XCTAssertEqual((0..<3).map { x[5 * sample + $0 * 16 + 5] }, [77, 77, 77])
    }

    func testInShopQueryAndGalleryFromImgUnderImg() throws {
        // The download's Img/img.zip unpacked in Img/: pictures under Img/img/..., list in Eval/.
        let lines = [("img/WOMEN/Dresses/id_00000002/01.jpg", "id_00000002", "train"),
                     ("img/WOMEN/Dresses/id_00000002/02.jpg", "id_00000002", "train"),
                     ("img/WOMEN/Skirts/id_00000007/01.jpg", "id_00000007", "train"),
                     ("img/MEN/Denim/id_00000080/01.jpg", "id_00000080", "query"),
                     ("img/MEN/Denim/id_00000080/02.jpg", "id_00000080", "gallery"),
                     ("img/MEN/Denim/id_00000081/01.jpg", "id_00000081", "gallery"),
                     ("img/MEN/Denim/id_00000081/02.jpg", "id_00000081", "query")]
        try Fixtures.write("\(lines.count)\nimage_name item_id evaluation_status\n"
                           + lines.map { "\($0.0) \($0.1) \($0.2)\n" }.joined(), to: "Eval/list_eval_partition.txt", in: source)
        for (i, line) in lines.enumerated() { try Fixtures.write(jpeg([UInt8(i * 30), 100, 100]), to: "Img/" + line.0, in: source) }
        let (_, dataset) = try importing(.inshop)
        XCTAssertEqual(dataset.labels, [0, 0, 1, 2, 2, 3, 3])
        XCTAssertEqual(dataset.split, [0, 0, 0, 2, 3, 3, 2])
        XCTAssertEqual(dataset.indices(.query), [3, 6])
        XCTAssertEqual(dataset.indices(.gallery), [4, 5])
        XCTAssertEqual(try meta()["recall_k"] as? [Int], [1, 10, 20, 30, 40, 50])
    }

    func testVehicleIDTakesTheChosenTestList() throws {
        try Fixtures.write("0000001 3\n0000002 3\n0000003 8\n0000004 8\n", to: "train_test_split/train_list.txt", in: source)
        try Fixtures.write("0000005 20\n0000006 20\n", to: "train_test_split/test_list_800.txt", in: source)
        try Fixtures.write("0000005 20\n0000006 20\n0000007 21\n", to: "train_test_split/test_list_1600.txt", in: source)
        for i in 1...7 { try Fixtures.write(jpeg([UInt8(i * 20), 0, 0]), to: "image/000000\(i).jpg", in: source) }
        let (_, dataset) = try importing(.vehicleid, vehicleIDTest: 1600)
        XCTAssertEqual(dataset.labels, [0, 0, 1, 1, 2, 2, 3])
        XCTAssertEqual(dataset.split, [0, 0, 0, 0, 1, 1, 1])
        let meta = try meta()
        XCTAssertEqual(meta["recall_k"] as? [Int], [1, 5])
        XCTAssertTrue((meta["split_rule"] as? String ?? "").contains("test_list_1600.txt"))
    }

    func testCUBSplitsByClassAndResizesAKnownPicture() throws {
        try Fixtures.write("1 001.A/a.jpg\n2 001.A/b.png\n3 002.B/c.jpg\n4 101.C/d.jpg\n5 200.D/e.jpg\n", to: "images.txt", in: source)
        try Fixtures.write("1 1\n2 1\n3 2\n4 101\n5 200\n", to: "image_class_labels.txt", in: source)
        try Fixtures.write("1 1\n2 1\n3 0\n4 0\n5 1\n", to: "train_test_split.txt", in: source)  // not used
        for (path, colour) in [("001.A/a.jpg", [1, 2, 3]), ("002.B/c.jpg", [4, 5, 6]), ("101.C/d.jpg", [7, 8, 9]), ("200.D/e.jpg", [9, 9, 9])] {
            try Fixtures.write(jpeg(colour.map(UInt8.init)), to: "images/" + path, in: source)
        }
        // 12 × 6, red columns 0–5, blue 6–11, at S = 3: the centre square is columns 3–8
        // halved, so the columns are red, (127.5 → 128, 0, 128), blue (SquareResizeTests).
        let halves = Fixtures.pixels(width: 12, height: 6) { x, _ in x < 6 ? [255, 0, 0] : [0, 0, 255] }
        try Fixtures.write(Fixtures.png(halves, width: 12, height: 6, format: PNGFormat.rgb), to: "images/001.A/b.png", in: source)
        let (_, dataset) = try importing(.cub, size: 3)
        XCTAssertEqual(dataset.labels, [0, 0, 1, 2, 3])
        XCTAssertEqual(dataset.split, [0, 0, 0, 1, 1])
        let x = dataset.rawSamples, image = 27  // sample 1, (3, 3, 3)
        for y in 0..<3 {
            XCTAssertEqual((0..<3).map { x[image + 0 * 9 + y * 3 + $0] }, [255, 128, 0], "red, row \(y)")
            XCTAssertEqual((0..<3).map { x[image + 1 * 9 + y * 3 + $0] }, [0, 0, 0], "green, row \(y)")
            XCTAssertEqual((0..<3).map { x[image + 2 * 9 + y * 3 + $0] }, [0, 128, 255], "blue, row \(y)")
        }
        XCTAssertEqual(try meta()["recall_k"] as? [Int], [1, 2, 4, 8])
    }

    func testCarsFromAMatFileIgnoringTheTestFlag() throws {
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        Fixtures.carsAnnotations([("car_ims/000001.jpg", 1, 1), ("car_ims/000002.jpg", 98, 0), ("car_ims/000003.jpg", 99, 0),
                                  ("car_ims/000004.jpg", 196, 1), ("car_ims/000005.jpg", 1, 0)],
                                 to: source.appendingPathComponent("cars_annos.mat"))
        for i in 1...5 { try Fixtures.write(jpeg([0, UInt8(i * 40), 0]), to: "car_ims/00000\(i).jpg", in: source) }
        let (_, dataset) = try importing(.cars)
        XCTAssertEqual(dataset.labels, [0, 1, 2, 3, 0])
        XCTAssertEqual(dataset.split, [0, 0, 1, 1, 0])
        XCTAssertEqual(try meta()["recall_k"] as? [Int], [1, 2, 4, 8])
    }

    // Errors: every one names the file and the list line that named it.

    func testMissingImage() throws {
        try writeSOP()
        try FileManager.default.removeItem(at: source.appendingPathComponent("bicycle_final/a_1.JPG"))
        try FileManager.default.removeItem(at: source.appendingPathComponent("chair_final/d_0.JPG"))
        XCTAssertEqual(message { try self.importing(.sop) },
                       "\(source.path)/bicycle_final/a_1.JPG: missing (named at \(source.path)/Ebay_train.txt:3), and 1 more listed image(s) are missing; check that SRC is the dataset's root, or pass --skip-unreadable to import the rest")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }

    func testCorruptImage() throws {
        try writeSOP()
        try Fixtures.write("not a picture", to: "chair_final/c_1.JPG", in: source)
        XCTAssertEqual(message { try self.importing(.sop) },
                       "\(source.path)/chair_final/c_1.JPG: cannot decode (neither a JPEG nor a PNG file (first bytes 6e 6f 74 20)) (named at \(source.path)/Ebay_test.txt:3); replace the file, or pass --skip-unreadable to import the rest")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "a failed import leaves no output")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasPrefix(".out.partial") }
        XCTAssertEqual(leftovers, [], "nor its staging directory")
    }

    func testSkipUnreadableImportsTheRestAndCountsWhatItLeftOut() throws {
        try writeSOP()
        try FileManager.default.removeItem(at: source.appendingPathComponent("bicycle_final/a_1.JPG"))
        let truncated = jpeg([9, 9, 9], width: 64, height: 64)
        try Fixtures.write(truncated.prefix(100), to: "chair_final/c_1.JPG", in: source)
        let (summary, dataset) = try importing(.sop, skip: true)
        XCTAssertEqual(summary.skipped.map(\.location.line), [3, 3])
        XCTAssertEqual(summary.skipped.map(\.location.file), ["Ebay_train.txt", "Ebay_test.txt"].map { source.path + "/" + $0 })
        XCTAssertEqual(summary.skipped[0].reason, "missing")
        XCTAssertEqual(summary.count, 6)
        // x.npy's header now says 6 (Dataset.load checks the payload against it).
        XCTAssertEqual(dataset.count, 6)
        XCTAssertEqual(try NpyArray.read(contentsOf: output.appendingPathComponent("x.npy")).shape, [6, 3, 4, 4])
        XCTAssertEqual(dataset.labels, [0, 1, 1, 2, 3, 3])
        XCTAssertEqual(try meta()["skipped"] as? Int, 2)
    }

    func testBrokenListLineAndMissingList() throws {
        try writeSOP()
        try Fixtures.write("image_id class_id super_class_id path\n1 1 1 bicycle_final/a_0.JPG\n2 1 bicycle_final/a_1.JPG\n",
                           to: "Ebay_train.txt", in: source)
        XCTAssertEqual(message { try self.importing(.sop) },
                       "\(source.path)/Ebay_train.txt:3: 3 field(s) in '2 1 bicycle_final/a_1.JPG'; expected `image_id class_id super_class_id path` (three integers and a relative path) — fix or delete the line")
        XCTAssertEqual(message { try self.importing(.cub) },
                       "\(source.path)/images.txt: missing; the CUB-200-2011 layout keeps it there — is SRC the directory the dataset unpacked to? (Docs/datasets.md)")
    }

    func testOutputHoldingOtherFilesIsNotReplaced() throws {
        try writeSOP()
        try Fixtures.write("mine", to: "notes.txt", in: output)
        XCTAssertEqual(message { try self.importing(.sop) },
                       "\(output.path): holds notes.txt, which an import did not write; choose an empty or new --out directory")
        // A previous import's directory is replaced.
        try FileManager.default.removeItem(at: output.appendingPathComponent("notes.txt"))
        _ = try importing(.sop)
        XCTAssertEqual(try importing(.sop, size: 2).1.sampleShape, [3, 2, 2])
    }
}
