import Foundation
import TestSupport
import XBMData
import XBMFormats
import XCTest
import ZIPFoundation

/// `.npz` datasets (Docs/data.md): archives built here as `np.savez` (stored) and
/// `np.savez_compressed` (deflated) build them, a zip of "name.npy" members, from the bytes of
/// the package's own `.npy` writer.
final class NpzTests: XCTestCase {
    /// One `.npy` file's bytes: header and little-endian payload.
    func npy<T: NpyElement>(_ values: [T], shape: [Int]) -> Data {
        Data(Npy.header(dtype: T.npyDType, shape: shape)) + values.withUnsafeBytes { Data($0) }
    }

    func writeArchive(_ url: URL, members: [String: Data], compression: CompressionMethod) throws {
        let archive = try Archive(url: url, accessMode: .create)
        for (name, bytes) in members.sorted(by: { $0.key < $1.key }) {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(bytes.count), compressionMethod: compression) { position, size in
                bytes.subdata(in: Int(position)..<(Int(position) + size))
            }
        }
    }

    // Six 2-d features of three classes; the last class is test.
    let features: [Float] = [0.5, -1, 2, 0.25, 3, 4, -5, 6, 7.5, 8, 9, -10]
    let labels: [Int32] = [0, 0, 1, 1, 2, 2]
    let split: [UInt8] = [0, 0, 0, 0, 1, 1]

    var featureMembers: [String: Data] {
        ["x.npy": npy(features, shape: [6, 2]), "y.npy": npy(labels, shape: [6]), "split.npy": npy(split, shape: [6])]
    }

    func testStoredAndDeflatedArchivesLoadAsTheirArrays() throws {
        for compression in [CompressionMethod.none, .deflate] {
            let file = makeScratchDirectory().appendingPathComponent("embeddings.npz")
            try writeArchive(file, members: featureMembers, compression: compression)
            let dataset = try Dataset.load(directory: file)
            XCTAssertEqual(dataset.kind, .features(dimension: 2), "\(compression)")
            XCTAssertEqual(dataset.name, "embeddings")
            XCTAssertEqual(dataset.labels, labels)
            XCTAssertEqual(dataset.split, split)
            XCTAssertEqual(Array(dataset.rawSamples.bindMemory(to: Float.self)), features)
        }
    }

    func testADirectoryOfDataNpzAndMetaJSONIsADataset() throws {
        // Two 3-channel 2×2 colour images, deflated, with int64 labels as NumPy writes by default.
        let dir = makeScratchDirectory()
        let pixels = (0..<24).map { UInt8($0 * 10) }
        try writeArchive(dir.appendingPathComponent("data.npz"), members: [
            "x.npy": npy(pixels, shape: [2, 3, 2, 2]), "y.npy": npy([Int64(4), 7], shape: [2]), "split.npy": npy([UInt8(0), 0], shape: [2]),
        ], compression: .deflate)
        try Data(#"{"name": "colour"}"#.utf8).write(to: dir.appendingPathComponent("meta.json"))
        let dataset = try Dataset.load(directory: dir)
        XCTAssertEqual(dataset.name, "colour")
        XCTAssertEqual(dataset.kind, .images(channels: 3, height: 2, width: 2))
        XCTAssertEqual(dataset.labels, [4, 7])
        XCTAssertEqual(Array(dataset.rawSamples), pixels)
    }

    func testAMissingMemberIsNamedWithWhatTheArchiveHolds() throws {
        let file = makeScratchDirectory().appendingPathComponent("partial.npz")
        var members = featureMembers
        members["split.npy"] = nil
        try writeArchive(file, members: members, compression: .none)
        XCTAssertThrowsError(try Dataset.load(directory: file)) { error in
            XCTAssertEqual(error as? NpzError, .missingMember(path: file.path, member: "split.npy", members: ["x.npy", "y.npy"]))
            XCTAssertTrue("\(error)".contains("np.savez(path, x=x, y=y, split=split)"), "\(error)")
        }
    }

    func testMembersAreCheckedAsFilesAre() throws {
        // A member that is not a .npy file is refused by the .npy reader, naming the member;
        // one whose count disagrees with x by the dataset's checks.
        let dir = makeScratchDirectory()
        var members = featureMembers
        members["y.npy"] = Data("not numpy".utf8)
        let badMagic = dir.appendingPathComponent("bad-magic.npz")
        try writeArchive(badMagic, members: members, compression: .deflate)
        XCTAssertThrowsError(try Dataset.load(directory: badMagic)) {
            XCTAssertEqual($0 as? NpyError, .badMagic(file: badMagic.path + "/y.npy"))
        }
        members["y.npy"] = npy(Array(labels.prefix(5)), shape: [5])
        let short = dir.appendingPathComponent("short.npz")
        try writeArchive(short, members: members, compression: .none)
        XCTAssertThrowsError(try Dataset.load(directory: short)) {
            guard case .countMismatch(let path, 5, 6, _)? = $0 as? DatasetError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, short.path + "/y.npy")
        }
    }

    func testAFileThatIsNotAZipIsRefused() throws {
        let file = makeScratchDirectory().appendingPathComponent("plain.npz")
        try npy(features, shape: [6, 2]).write(to: file)  // a .npy renamed, not an archive
        XCTAssertThrowsError(try Dataset.load(directory: file)) {
            guard case .badArchive(let path, _)? = $0 as? NpzError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, file.path)
        }
    }
}
