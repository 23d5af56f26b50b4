import Foundation
import XBMFormats

/// What `xbm-dist data inspect` prints: kind, sizes, classes and value ranges of a dataset.
public struct DatasetSummary: Sendable {
    public struct SplitLine: Sendable {
        public var name: String
        public var samples: Int
        public var classes: Int
        public var smallestClass: Int
        public var largestClass: Int
    }

    public var name: String
    public var kind: Dataset.Kind
    public var count: Int
    public var classes: Int
    public var labelRange: ClosedRange<Int32>
    public var splits: [SplitLine]
    public var valueRange: ClosedRange<Float>
    public var valueMean: Double

    public init(_ dataset: Dataset) {
        name = dataset.name
        kind = dataset.kind
        count = dataset.count
        classes = Set(dataset.labels).count
        labelRange = (dataset.labels.min() ?? 0)...(dataset.labels.max() ?? 0)
        let names = ["train (0)", "test (1)", "query only (2)", "gallery only (3)"]
        splits = names.indices.compactMap { code in
            var sizes: [Int32: Int] = [:]
            for i in 0..<dataset.count where dataset.split[i] == UInt8(code) { sizes[dataset.labels[i], default: 0] += 1 }
            guard !sizes.isEmpty else { return nil }
            return SplitLine(name: names[code], samples: sizes.values.reduce(0, +), classes: sizes.count,
                             smallestClass: sizes.values.min()!, largestClass: sizes.values.max()!)
        }
        var low = Float.infinity, high = -Float.infinity, sum = 0.0
        let raw = dataset.rawSamples
        if dataset.isImages {
            var histogram = [Int](repeating: 0, count: 256)
            for byte in raw { histogram[Int(byte)] += 1 }
            for (v, n) in histogram.enumerated() where n > 0 {
                low = min(low, Float(v)); high = max(high, Float(v)); sum += Double(v) * Double(n)
            }
            valueMean = raw.isEmpty ? 0 : sum / Double(raw.count)
        } else {
            let values = raw.bindMemory(to: Float.self)
            for v in values { low = min(low, v); high = max(high, v); sum += Double(v) }
            valueMean = values.isEmpty ? 0 : sum / Double(values.count)
        }
        valueRange = low <= high ? low...high : 0...0
    }

    public var text: String {
        var lines: [String] = []
        switch kind {
        case let .images(c, h, w): lines.append("dataset \(name): images \(c)×\(h)×\(w) uint8")
        case let .features(d): lines.append("dataset \(name): features of dimension \(d), float32")
        }
        lines.append("samples \(count), classes \(classes), labels \(labelRange.lowerBound)…\(labelRange.upperBound)")
        lines.append("split              samples  classes  per class (min…max)")
        for s in splits {
            lines.append(s.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                         + String(s.samples).leftPadded(8) + String(s.classes).leftPadded(9)
                         + "  \(s.smallestClass)…\(s.largestClass)")
        }
        lines.append("values \(valueRange.lowerBound)…\(valueRange.upperBound), mean \(String(format: "%.4f", valueMean))")
        return lines.joined(separator: "\n")
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// A grid of samples for `xbm-dist data preview`: one row per class, classes spread evenly over
/// the sorted labels, each row its class's first samples in dataset order. Three-channel images
/// are drawn in colour (channels red, green, blue), others in grey (the mean of their
/// channels); cells are separated by a 2-pixel grey gap.
public enum DatasetPreview {
    public static func grid(_ dataset: Dataset, classes: Int, perClass: Int, scale: Int = 2) throws -> RasterImage {
        precondition(classes > 0 && perClass > 0 && scale > 0, "preview needs positive classes, per-class and scale, got \(classes), \(perClass), \(scale)")
        guard case let .images(channels, h, w) = dataset.kind else { throw DatasetError.notImages(path: dataset.directory.appendingPathComponent("x.npy").path) }
        let labels = Array(Set(dataset.labels)).sorted()
        let rows = min(classes, labels.count)
        let chosen = (0..<rows).map { labels[$0 * labels.count / rows] }
        var members: [Int32: [Int]] = [:]
        for i in 0..<dataset.count where members[dataset.labels[i], default: []].count < perClass {
            members[dataset.labels[i], default: []].append(i)
        }
        let gap = 2, cellW = w * scale, cellH = h * scale
        let width: Int = perClass * cellW + (perClass + 1) * gap, height: Int = rows * cellH + (rows + 1) * gap
        let colour: PNG.Colour = channels == 3 ? .rgb : .grey
        var grid = RasterImage(width: width, height: height, colour: colour, background: RasterImage.RGB(grey: 96))
        let raw = dataset.rawSamples, sampleBytes = channels * h * w
        for (row, label) in chosen.enumerated() {
            for (column, index) in (members[label] ?? []).enumerated() {
                grid.draw(sample: UnsafeRawBufferPointer(rebasing: raw[(index * sampleBytes)..<((index + 1) * sampleBytes)]),
                          channels: channels, height: h, width: w,
                          x: gap + column * (cellW + gap), y: gap + row * (cellH + gap), scale: scale)
            }
        }
        return grid
    }
}
