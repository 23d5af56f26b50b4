import Foundation
import XBMFormats

/// An image the import left out under `--skip-unreadable`, and why.
public struct SkippedImage: Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var location: ListLocation
    public var description: String { "\(path) (\(location)): \(reason)" }
}

/// What an import wrote.
public struct ImportSummary: Sendable {
    public var directory: URL
    public var count: Int
    public var classes: Int
    /// Images per split code (0 train, 1 test, 2 query, 3 gallery), codes present only.
    public var splitCounts: [UInt8: Int]
    public var skipped: [SkippedImage]
    public var seconds: Double
}

/// Turns an `ImportPlan` into a dataset directory (Docs/data.md, Docs/datasets.md):
///
///     meta.json          format, source, size, resize, split rule, label rule, protocol, recall_k, counts
///     x.npy              uint8 (N, 3, S, S): each picture resized and centre-cropped (SquareResize)
///     y.npy              int32 (N): labels 0 ..< classes (ImportLabels)
///     split.npy          uint8 (N): the layout's split codes
///     super_labels.npy   int32 (N), SOP only: super_class_id as 0 ..< 12, in the same way
///
/// Images are decoded, resized and appended to x.npy one at a time, in list order.
public enum DatasetImporter {
    public static func run(plan: ImportPlan, output: URL, size: Int, skipUnreadable: Bool,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> ImportSummary {
        precondition(size >= 1, "image size must be positive, got \(size)")
        let start = Date()
        try OutputDirectory.checkReplaceable(output)  // before the existence pass, so a wrong --out fails first
        var skipped: [SkippedImage] = []

        // Missing files first (a wrong SRC shows at once, not after an hour of decoding).
        var present: [ListedImage] = []
        present.reserveCapacity(plan.images.count)
        for image in plan.images {
            if FileManager.default.fileExists(atPath: plan.url(of: image).path) { present.append(image) } else {
                skipped.append(SkippedImage(path: plan.url(of: image).path, reason: "missing", location: image.location))
            }
        }
        if let first = skipped.first, !skipUnreadable {
            throw ImportError.missingImage(path: first.path, listedAt: first.location, alsoMissing: skipped.count - 1)
        }

        let imported = try OutputDirectory.publish(output) { staging in
            let x = try NpyStreamWriter(url: staging.appendingPathComponent("x.npy"), count: present.count, sampleShape: [3, size, size])
            var planes = [UInt8](repeating: 0, count: 3 * size * size)
            var imported: [ListedImage] = []
            imported.reserveCapacity(present.count)
            for (done, image) in present.enumerated() {
                let url = plan.url(of: image)
                do {
                    let picture = try ImageDecoder.decode(contentsOf: url)
                    planes.withUnsafeMutableBufferPointer { SquareResize.planes(picture, size: size, into: $0) }
                    try planes.withUnsafeBufferPointer { try x.append($0) }
                    imported.append(image)
                } catch let failure as ImageDecoder.Failure {
                    guard skipUnreadable else {
                        throw ImportError.unreadableImage(path: url.path, reason: failure.reason, listedAt: image.location)
                    }
                    skipped.append(SkippedImage(path: url.path, reason: failure.reason, location: image.location))
                }
                progress(done + 1, present.count)
            }
            try x.finish()
            guard !imported.isEmpty else {
                throw ImportError.nothingImported(source: plan.source.path,
                                                  detail: "all \(plan.images.count) listed images were skipped (first: \(skipped[0]))")
            }
            try writeLabels(imported, format: plan.format, into: staging)
            try writeMeta(plan: plan, imported: imported, skipped: skipped.count, size: size, into: staging)
            return imported
        }
        var splitCounts: [UInt8: Int] = [:]
        for image in imported { splitCounts[image.split, default: 0] += 1 }
        return ImportSummary(directory: output, count: imported.count, classes: Set(imported.map(\.classID)).count,
                             splitCounts: splitCounts, skipped: skipped, seconds: Date().timeIntervalSince(start))
    }

    static func writeLabels(_ imported: [ListedImage], format: ImportFormat, into directory: URL) throws {
        try write(directory.appendingPathComponent("y.npy")) { url in
            try Npy.write(ImportLabels.ranks(imported.map(\.classID)), shape: [imported.count], to: url)
        }
        try write(directory.appendingPathComponent("split.npy")) { url in
            try Npy.write(imported.map(\.split), shape: [imported.count], to: url)
        }
        if format == .sop {
            try write(directory.appendingPathComponent("super_labels.npy")) { url in
                try Npy.write(ImportLabels.ranks(imported.map { $0.superClassID ?? 0 }), shape: [imported.count], to: url)
            }
        }
    }

    /// meta.json: what the import read, how it changed the pictures and how to evaluate.
    static func meta(plan: ImportPlan, imported: [ListedImage], skipped: Int, size: Int) -> [String: Any] {
        let names: [UInt8: String] = [0: "train", 1: "test", 2: "query", 3: "gallery"]
        var counts: [String: Int] = [:]
        for image in imported { counts[names[image.split]!, default: 0] += 1 }
        var meta: [String: Any] = [
            "name": plan.format.rawValue,
            "format": plan.format.rawValue,
            "dataset": plan.format.title,
            "source": plan.source.standardizedFileURL.path,
            "size": size,
            "resize": "shorter side to \(size) (area average when shrinking, bilinear when enlarging), then the centre \(size)x\(size) crop",
            "split_rule": plan.splitRule,
            "labels": "the rank of the layout's class id among the imported ids, ascending (0 ..< \(Set(imported.map(\.classID)).count))",
            "protocol": plan.format.evaluationProtocol,
            "recall_k": plan.format.recallK,
            "counts": counts,
            "skipped": skipped,
        ]
        if plan.format == .sop {
            meta["super_labels"] = "super_labels.npy: super_class_id as the rank among the imported ids, ascending"
        }
        return meta
    }

    static func writeMeta(plan: ImportPlan, imported: [ListedImage], skipped: Int, size: Int, into directory: URL) throws {
        try write(directory.appendingPathComponent("meta.json")) { url in
            let object = meta(plan: plan, imported: imported, skipped: skipped, size: size)
            try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]).write(to: url)
        }
    }

    /// Runs `body` on `url`, reporting any failure as `ImportError.writeFailed`.
    private static func write(_ url: URL, _ body: (URL) throws -> Void) throws {
        do { try body(url) } catch let error as ImportError { throw error } catch {
            throw ImportError.writeFailed(path: url.path, reason: "\(error)")
        }
    }
}
