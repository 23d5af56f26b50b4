import Foundation
import TestSupport
import XBMData
import XBMFormats
import XCTest

final class DatasetTests: XCTestCase {
    // Six 2×3 images: labels 0 0 1 1 2 2, split train train train test query gallery.
    let pixels = (0..<36).map { UInt8($0 * 7) }
    let labels: [Int32] = [0, 0, 1, 1, 2, 2]
    let split: [UInt8] = [0, 0, 0, 1, 2, 3]

    func goodParts() -> (x: [UInt8], y: [UInt8], split: [UInt8]) {
        (handMadeNpy(header: npyHeader("|u1", [6, 2, 3]), payload: pixels),
         handMadeNpy(header: npyHeader("<i4", [6]), payload: littleEndianBytes(labels)),
         handMadeNpy(header: npyHeader("|u1", [6]), payload: split))
    }

    func testLoadsImagesWithRolesAndFillsScaledValues() throws {
        let dir = makeScratchDirectory()
        let parts = goodParts()
        try writeDatasetFiles(dir, x: parts.x, y: parts.y, split: parts.split)
        let dataset = try Dataset.load(directory: dir)
        XCTAssertEqual(dataset.name, "tiny")
        XCTAssertEqual(dataset.kind, .images(channels: 1, height: 2, width: 3))
        XCTAssertEqual(dataset.sampleShape, [1, 2, 3])
        XCTAssertEqual(dataset.sampleSize, 6)
        XCTAssertEqual(dataset.count, 6)
        XCTAssertEqual(dataset.labels, labels)
        XCTAssertEqual(dataset.indices(.train), [0, 1, 2])
        XCTAssertEqual(dataset.indices(.test), [3])
        XCTAssertEqual(dataset.indices(.query), [3, 4])
        XCTAssertEqual(dataset.indices(.gallery), [3, 5])

        let picks: [Int32] = [4, 1]
        var out = [Float](repeating: -1, count: 12)
        picks.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { dataset.fill(indices: p, shifts: nil, into: $0.baseAddress!) } }
        let expected = (0..<6).map { Float(pixels[24 + $0]) / 255 } + (0..<6).map { Float(pixels[6 + $0]) / 255 }
        XCTAssertEqual(out, expected)
    }

    func testRoundTripsThroughWriteForImagesChannelsAndFeatures() throws {
        let dir = makeScratchDirectory()
        try Dataset.write(directory: dir, images: (0..<48).map { UInt8($0) }, imageShape: [2, 2, 2],
                          labels: [3, 3, 5, 5, 7, 7], split: [0, 0, 0, 0, 1, 1], meta: ["name": "rgbish"])
        let images = try Dataset.load(directory: dir)
        XCTAssertEqual(images.kind, .images(channels: 2, height: 2, width: 2))
        XCTAssertEqual(images.name, "rgbish")

        let features: [Float] = [0.5, -1, 2, 3, 4, 5, -6, 7]
        let fdir = makeScratchDirectory()
        try Dataset.write(directory: fdir, features: features, dimension: 2, labels: [0, 1, 0, 1], split: [0, 0, 1, 1], meta: [:])
        let dataset = try Dataset.load(directory: fdir)
        XCTAssertEqual(dataset.kind, .features(dimension: 2))
        XCTAssertEqual(dataset.name, fdir.lastPathComponent)
        var out = [Float](repeating: 0, count: 4)
        let picks: [Int32] = [3, 0]
        picks.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { dataset.fill(indices: p, shifts: nil, into: $0.baseAddress!) } }
        XCTAssertEqual(out, [-6, 7, 0.5, -1])
    }

    func testInt64LabelsAreAccepted() throws {
        let dir = makeScratchDirectory()
        let parts = goodParts()
        try writeDatasetFiles(dir, x: parts.x, y: handMadeNpy(header: npyHeader("<i8", [6]), payload: littleEndianBytes(labels.map(Int64.init))), split: parts.split)
        XCTAssertEqual(try Dataset.load(directory: dir).labels, labels)
    }

    func assertRejected(x: [UInt8]? = nil, y: [UInt8]? = nil, split: [UInt8]? = nil, meta: String? = nil, remove: String? = nil,
                        _ matches: (DatasetError) -> Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = makeScratchDirectory()
        let parts = goodParts()
        try writeDatasetFiles(dir, x: x ?? parts.x, y: y ?? parts.y, split: split ?? parts.split, meta: meta)
        if let remove { try FileManager.default.removeItem(at: dir.appendingPathComponent(remove)) }
        XCTAssertThrowsError(try Dataset.load(directory: dir), file: file, line: line) { error in
            guard let e = error as? DatasetError else { return XCTFail("not a DatasetError: \(error)", file: file, line: line) }
            XCTAssertTrue(matches(e), "unexpected error: \(e)", file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix(dir.path), "names the file: \(e)", file: file, line: line)
        }
    }

    func testEachInvalidDirectoryGivesItsOwnError() throws {
        for name in ["meta.json", "x.npy", "y.npy", "split.npy"] {
            try assertRejected(remove: name) { if case .missingFile(let p) = $0 { p.hasSuffix(name) } else { false } }
        }
        try assertRejected(meta: "{not json") { if case .badMeta = $0 { true } else { false } }
        try assertRejected(meta: "[1, 2]") { if case .badMeta = $0 { true } else { false } }
        try assertRejected(y: handMadeNpy(header: npyHeader("<i4", [5]), payload: littleEndianBytes(Array(labels.prefix(5))))) {
            if case .countMismatch(_, 5, 6, _) = $0 { true } else { false }
        }
        try assertRejected(split: handMadeNpy(header: npyHeader("|u1", [7]), payload: split + [0])) {
            if case .countMismatch(_, 7, 6, _) = $0 { true } else { false }
        }
        try assertRejected(y: handMadeNpy(header: npyHeader("<i4", [6]), payload: littleEndianBytes([Int32(0), 0, 1, -4, 2, 2]))) {
            if case .negativeLabel(_, 3, -4) = $0 { true } else { false }
        }
        try assertRejected(y: handMadeNpy(header: npyHeader("<i8", [6]), payload: littleEndianBytes([Int64(0), 0, 1, 1, 1 << 31, 2]))) {
            if case .labelOutOfRange(_, 4, 2_147_483_648) = $0 { true } else { false }
        }
        try assertRejected(y: handMadeNpy(header: npyHeader("<f4", [6]), payload: [UInt8](repeating: 0, count: 24))) {
            if case .badDType(_, "<f4", _) = $0 { true } else { false }
        }
        try assertRejected(split: handMadeNpy(header: npyHeader("|u1", [6]), payload: [0, 0, 0, 1, 4, 3])) {
            if case .badSplitValue(_, 4, 4) = $0 { true } else { false }
        }
        // Only class 0 in the training split.
        try assertRejected(split: handMadeNpy(header: npyHeader("|u1", [6]), payload: [0, 0, 1, 1, 1, 1])) {
            if case .tooFewTrainingClasses(_, 1) = $0 { true } else { false }
        }
        try assertRejected(x: handMadeNpy(header: npyHeader("<i4", [6, 2]), payload: [UInt8](repeating: 0, count: 48))) {
            if case .badDType(_, "<i4", _) = $0 { true } else { false }
        }
        try assertRejected(x: handMadeNpy(header: npyHeader("|u1", [6, 6]), payload: pixels)) {
            if case .badShape(_, [6, 6], _) = $0 { true } else { false }
        }
        var features = [Float](repeating: 1, count: 12)
        features[7] = .nan
        try assertRejected(x: handMadeNpy(header: npyHeader("<f4", [6, 2]), payload: littleEndianBytes(features.map(\.bitPattern)))) {
            if case .nonFiniteFeature(_, 3, 1) = $0 { true } else { false }
        }
        features[7] = -.infinity
        try assertRejected(x: handMadeNpy(header: npyHeader("<f4", [6, 2]), payload: littleEndianBytes(features.map(\.bitPattern)))) {
            if case .nonFiniteFeature(_, 3, 1) = $0 { true } else { false }
        }
    }

    func testMalformedNpyInsideADatasetSurfacesTheNpyError() throws {
        let dir = makeScratchDirectory()
        let parts = goodParts()
        try writeDatasetFiles(dir, x: parts.x, y: Array(parts.y.dropLast(2)), split: parts.split)
        XCTAssertThrowsError(try Dataset.load(directory: dir)) { error in
            guard case .truncated(let file, _)? = error as? NpyError else { return XCTFail("\(error)") }
            XCTAssertTrue(file.hasSuffix("y.npy"))
        }
    }

    func testSummaryCountsSplitsClassesAndValues() throws {
        let dir = makeScratchDirectory()
        let parts = goodParts()
        try writeDatasetFiles(dir, x: parts.x, y: parts.y, split: parts.split)
        let summary = DatasetSummary(try Dataset.load(directory: dir))
        XCTAssertEqual(summary.count, 6)
        XCTAssertEqual(summary.classes, 3)
        XCTAssertEqual(summary.labelRange, 0...2)
        XCTAssertEqual(summary.splits.map(\.samples), [3, 1, 1, 1])
        XCTAssertEqual(summary.splits.map(\.classes), [2, 1, 1, 1])
        XCTAssertEqual(summary.splits[0].smallestClass, 1)
        XCTAssertEqual(summary.splits[0].largestClass, 2)
        XCTAssertEqual(summary.valueRange, 0...245)
        XCTAssertEqual(summary.valueMean, 7 * 17.5, accuracy: 1e-9)  // mean of 7·(0…35)
    }
}
