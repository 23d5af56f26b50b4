import Foundation
import XBMData
import XBMKernels

/// What `HanziBenchmark.build` made.
public struct HanziSummary: Sendable {
    public var directory: URL
    public var seed: UInt64
    public var count: Int
    public var classes: Int
    public var trainCount: Int
    public var testCount: Int
    /// FNV-1a 64 of x.npy's payload followed by y.npy's payload (int32 little endian).
    public var checksum: UInt64
    public var seconds: Double
}

/// The built-in benchmark (Docs/data.md): 3,755 GB2312 level-1 characters × 27 faces, distorted,
/// 32×32 uint8 (`charset` selects level 2 or both levels instead). Sample i = character · 27 +
/// face; label = character index; the first ⌈n/2⌉ classes are train (split 0), the others
/// test (split 1): 1,878 / 1,877 for level 1. Each image's distortion comes
/// from `RandomSource.derived(seed:stream: character · 27 + face)`, so the result does not
/// depend on `threads`.
///
/// `facesPerClass` N keeps a seeded random N of the faces for each character (drawn from
/// `RandomSource.derived(seed:stream: 2⁴⁰ + character)`), in face order: few images over many
/// classes, as SOP's ~5 per class over 11k classes. Each kept image is the full set's image of
/// the same character and face.
public enum HanziBenchmark {
    /// Training classes of the default set (level 1): the first ⌈3,755 / 2⌉.
    public static let trainClasses = 1878
    public static let side = GlyphDistortion.output

    public static func build(outputDirectory: URL, seed: UInt64, threads: Int,
                             charset: HanziCharset = .level1,
                             faces: [HanziFace] = HanziFace.all,
                             characterLimit: Int? = nil,
                             facesPerClass: Int? = nil,
                             fontDirectory: URL = HanziFace.defaultFontDirectory,
                             progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> HanziSummary {
        precondition(threads >= 1, "threads must be at least 1, got \(threads)")
        let start = Date()
        var characters = try charset.characters()
        let trainClasses = (characters.count + 1) / 2
        if let characterLimit { characters = Array(characters.prefix(characterLimit)) }
        // Fail early, on this thread, with the missing face or the occupied directory named.
        try checkReplaceable(outputDirectory)
        _ = try HanziRenderer(faces: faces, fontDirectory: fontDirectory)

        let faceCount = faces.count
        if let facesPerClass, !(1...faceCount).contains(facesPerClass) {
            throw HanziError.facesPerClass(requested: facesPerClass, faces: faceCount)
        }
        // The (character, face) of each sample, in sample order.
        var pairs: [(character: Int, face: Int)] = []
        for character in 0..<characters.count {
            var kept = Array(0..<faceCount)
            if let facesPerClass {
                var random = RandomSource.derived(seed: seed, stream: (1 << 40) + UInt64(character))
                for k in 0..<facesPerClass { kept.swapAt(k, k + random.nextInt(below: faceCount - k)) }
                kept = kept.prefix(facesPerClass).sorted()
            }
            pairs += kept.map { (character, $0) }
        }
        let total = pairs.count
        let pixels = side * side
        var images = [UInt8](repeating: 0, count: total * pixels)
        let queue = WorkQueue(total: total, chunk: 64)
        let group = DispatchGroup()
        images.withUnsafeMutableBufferPointer { buffer in
            let output = SendablePointer(pointer: buffer.baseAddress!)
            let scalars = characters, samples = pairs
            for _ in 0..<threads {
                group.enter()
                let thread = Thread {
                    defer { group.leave() }
                    do {
                        let renderer = try HanziRenderer(faces: faces, fontDirectory: fontDirectory)
                        let workspace = GlyphWorkspace()
                        while let range = queue.take() {
                            for sample in range {
                                let (character, face) = samples[sample]
                                let glyph = try renderer.glyph(scalars[character], faceIndex: face)
                                var random = RandomSource.derived(seed: seed, stream: UInt64(character * faceCount + face))
                                let distortion = GlyphDistortion.random(using: &random)
                                composeGlyph(glyph, distortion: distortion, workspace: workspace, output: output.pointer + sample * pixels)
                            }
                            queue.finished(range.count)
                        }
                    } catch {
                        queue.fail(error)
                    }
                }
                thread.stackSize = 1 << 22
                thread.start()
            }
            while group.wait(timeout: .now() + 0.2) == .timedOut { progress(queue.done, total) }
        }
        if let error = queue.error { throw error }
        progress(total, total)

        var labels = [Int32](repeating: 0, count: total)
        var split = [UInt8](repeating: 0, count: total)
        for sample in 0..<total {
            let character = pairs[sample].character
            labels[sample] = Int32(character)
            split[sample] = character < trainClasses ? 0 : 1
        }
        var hash = FNV1a64()
        images.withUnsafeBytes { hash.update($0) }
        labels.withUnsafeBytes { hash.update($0) }
        let trainCount = split.count { $0 == 0 }
        var meta: [String: Any] = [
            "name": charset.datasetName + (facesPerClass.map { "-f\($0)" } ?? ""), "charset": charset.rawValue, "seed": seed,
            "faces": faces.map(\.name), "characters": characters.count,
            "classes": characters.count, "count": total, "train_count": trainCount, "test_count": total - trainCount,
            "train_classes": min(trainClasses, characters.count), "image_size": [side, side],
            "checksum": "fnv1a64:" + hash.hex, "order": "sample = character * faces + face",
        ]
        if let facesPerClass {
            meta["faces_per_class"] = facesPerClass
            meta["order"] = "by character, then face; \(facesPerClass) seeded faces per character"
        }
        try publish(outputDirectory) { staging in
            try Dataset.write(directory: staging, images: images, imageShape: [side, side], labels: labels, split: split, meta: meta)
        }
        return HanziSummary(directory: outputDirectory, seed: seed, count: total, classes: characters.count,
                            trainCount: trainCount, testCount: total - trainCount, checksum: hash.value,
                            seconds: Date().timeIntervalSince(start))
    }
}

extension HanziBenchmark {
    /// Writes into a sibling staging directory, then renames it to `directory`, so `directory`
    /// appears complete or not at all (other ranks may wait for it). An existing `directory` is
    /// replaced only if it holds nothing but dataset files.
    static func checkReplaceable(_ directory: URL) throws {
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        let allowed: Set<String> = ["meta.json", "x.npy", "y.npy", "split.npy"]
        let present = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        if let stranger = present.sorted().first(where: { !allowed.contains($0) }) {
            throw HanziError.outputInUse(directory: directory.path, file: stranger)
        }
    }

    static func publish(_ directory: URL, _ write: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = directory.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(directory.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: staging)
        do {
            try write(staging)
            if fm.fileExists(atPath: directory.path) {
                try checkReplaceable(directory)
                try fm.removeItem(at: directory)
            }
            try fm.moveItem(at: staging, to: directory)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }
}

/// Hands out chunks of sample indices to worker threads and counts finished ones.
private final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private let total: Int
    private let chunk: Int
    private var next = 0
    private var completed = 0
    private var firstError: Error?

    init(total: Int, chunk: Int) { self.total = total; self.chunk = chunk }

    func take() -> Range<Int>? {
        lock.withLock {
            guard firstError == nil, next < total else { return nil }
            let range = next..<min(next + chunk, total)
            next = range.upperBound
            return range
        }
    }

    func finished(_ count: Int) { lock.withLock { completed += count } }
    func fail(_ error: Error) { lock.withLock { if firstError == nil { firstError = error } } }
    var done: Int { lock.withLock { completed } }
    var error: Error? { lock.withLock { firstError } }
}

/// A raw pointer handed to worker threads that write disjoint ranges behind it.
private struct SendablePointer: @unchecked Sendable { let pointer: UnsafeMutablePointer<UInt8> }
