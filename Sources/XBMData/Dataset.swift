import Foundation
import XBMFormats
import XBMKernels

/// A dataset directory (Docs/data.md), loaded and validated (Docs/distributed.md):
///
///     meta.json   a JSON object (free-form; "name" is shown when present, "recall_k" is the
///                 dataset's Recall@K protocol, used when the run gives no --recall-k)
///     x.npy       uint8 images (N, H, W) or (N, C, H, W), or float32 features (N, D)
///     y.npy       int32 or int64 labels (N), each in 0 ..< 2^31
///     split.npy   uint8 (N): 0 train, 1 test (query = gallery), 2 query only, 3 gallery only
///
/// `x` stays memory mapped; labels and split are copied. Immutable after loading, so one
/// instance may be shared by threads (simulated ranks).
public final class Dataset: @unchecked Sendable {
    public enum Kind: Equatable, Sendable {
        case images(channels: Int, height: Int, width: Int)
        case features(dimension: Int)
    }

    /// Which samples a role uses: train = split 0; test = split 1; query = split 1 or 2;
    /// gallery = split 1 or 3 (a test sample is both a query and a gallery item).
    public enum SplitRole: String, CaseIterable, Sendable {
        case train, test, query, gallery

        func contains(_ split: UInt8) -> Bool {
            switch self {
            case .train: split == 0
            case .test: split == 1
            case .query: split == 1 || split == 2
            case .gallery: split == 1 || split == 3
            }
        }
    }

    public let directory: URL
    public let name: String
    public let kind: Kind
    public let count: Int
    public let labels: [Int32]
    public let split: [UInt8]
    /// meta.json's `recall_k`: the Recall@K cut-offs the dataset's literature reports
    /// (written by `xbm-dist data import`); nil when meta.json has none.
    public let recallK: [Int]?
    private let x: NpyArray

    /// [C, H, W] for images, [D] for features.
    public var sampleShape: [Int] {
        switch kind {
        case let .images(c, h, w): [c, h, w]
        case let .features(d): [d]
        }
    }

    /// Floats per sample.
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    public var isImages: Bool { if case .images = kind { true } else { false } }

    /// The raw x payload: uint8 for images, float32 for features, (N, sampleShape) in C order.
    public var rawSamples: UnsafeRawBufferPointer { x.bytes }

    /// FNV-1a 64 of the sample shape, the samples, the labels and the split: what a checkpoint
    /// records to recognise its data wherever the directory has moved. One pass over x.npy
    /// (about 0.1 s for the hanzi benchmark).
    public func fingerprint() -> UInt64 {
        var hash = FNV1a64()
        for value in sampleShape + [count] { hash.update(UInt64(value)) }
        hash.update(x.bytes)
        labels.withUnsafeBufferPointer { hash.update($0.baseAddress!, count: $0.count) }
        split.withUnsafeBufferPointer { hash.update($0.baseAddress!, count: $0.count) }
        return hash.value
    }

    /// Indices (ascending) of the samples the role uses.
    public func indices(_ role: SplitRole) -> [Int] {
        split.indices.filter { role.contains(split[$0]) }
    }

    init(directory: URL, name: String, kind: Kind, x: NpyArray, labels: [Int32], split: [UInt8], recallK: [Int]? = nil) {
        self.directory = directory
        self.name = name
        self.recallK = recallK
        self.kind = kind
        self.x = x
        self.count = labels.count
        self.labels = labels
        self.split = split
    }

    /// Writes samples `indices` (n) as floats into `output` (n, sampleShape). Images become
    /// uint8/255; with `shifts` (2n values dx, dy per sample, each in −2…2) an image is
    /// moved by (dx, dy) pixels with zero fill, i.e. out[c,y,x] = in[c, y−dy, x−dx] or 0 when
    /// that lies outside (pad by 2 then crop). Features are copied as they are; `shifts` must
    /// then be nil or all zero. Allocates nothing.
    public func fill(indices: UnsafeBufferPointer<Int32>, shifts: UnsafeBufferPointer<Int8>?,
                     into output: UnsafeMutablePointer<Float>) {
        precondition(shifts == nil || shifts!.count == 2 * indices.count,
                     "fill: \(shifts?.count ?? 0) shift values for \(indices.count) samples (need 2 per sample)")
        let size = sampleSize
        switch kind {
        case let .features(d):
            let source = x.bytes.baseAddress!.assumingMemoryBound(to: Float.self)
            for (row, index) in indices.enumerated() {
                precondition(index >= 0 && Int(index) < count, "fill: index \(index) outside 0..<\(count)")
                if let shifts { precondition(shifts[2 * row] == 0 && shifts[2 * row + 1] == 0, "fill: feature datasets take no shifts") }
                (output + row * d).update(from: source + Int(index) * d, count: d)
            }
        case let .images(channels, height, width):
            let source = x.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for (row, index) in indices.enumerated() {
                precondition(index >= 0 && Int(index) < count, "fill: index \(index) outside 0..<\(count)")
                let dx = shifts.map { Int($0[2 * row]) } ?? 0
                let dy = shifts.map { Int($0[2 * row + 1]) } ?? 0
                precondition(abs(dx) <= 2 && abs(dy) <= 2, "fill: shift (\(dx), \(dy)) outside −2…2")
                let image = source + Int(index) * size
                let out = output + row * size
                for c in 0..<channels {
                    let plane = image + c * height * width
                    let outPlane = out + c * height * width
                    for y in 0..<height {
                        let sy = y - dy
                        let outRow = outPlane + y * width
                        guard sy >= 0 && sy < height else { outRow.update(repeating: 0, count: width); continue }
                        let inRow = plane + sy * width
                        for x in 0..<width {
                            let sx = x - dx
                            outRow[x] = (sx >= 0 && sx < width) ? Float(inRow[sx]) / 255 : 0
                        }
                    }
                }
            }
        }
    }
}
