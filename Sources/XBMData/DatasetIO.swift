import Foundation
import XBMFormats

extension Dataset {
    /// Loads and validates a dataset (Docs/data.md, Docs/distributed.md): a directory of
    /// meta.json, x.npy, y.npy and split.npy; a directory of data.npz (and optionally
    /// meta.json) instead of the three arrays; or a `.npz` file itself. An archive holds the
    /// members x, y and split. Throws `DatasetError` or `NpyError`.
    public static func load(directory: URL) throws -> Dataset {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isDirectory), !isDirectory.boolValue,
           directory.pathExtension.lowercased() == "npz" {
            let file = URL(fileURLWithPath: directory.path)
            return try loadArchive(file, name: file.deletingPathExtension().lastPathComponent, directory: file)
        }
        let archive = directory.appendingPathComponent("data.npz")
        if !fm.fileExists(atPath: directory.appendingPathComponent("x.npy").path), fm.fileExists(atPath: archive.path) {
            let metaURL = directory.appendingPathComponent("meta.json")
            let hasMeta = fm.fileExists(atPath: metaURL.path)
            let meta = hasMeta ? try readMeta(metaURL) : [:]
            return try loadArchive(archive, name: meta["name"] as? String ?? directory.lastPathComponent, directory: directory,
                                   recallK: hasMeta ? recallCutoffs(metaURL) : nil)
        }

        let files = ["meta.json", "x.npy", "y.npy", "split.npy"].map { directory.appendingPathComponent($0) }
        for file in files where !fm.fileExists(atPath: file.path) { throw DatasetError.missingFile(path: file.path) }
        let (metaURL, xURL, yURL, splitURL) = (files[0], files[1], files[2], files[3])
        let name = try readMeta(metaURL)["name"] as? String ?? directory.lastPathComponent
        return try assemble(directory: directory, name: name,
                            x: (NpyArray.read(contentsOf: xURL), xURL.path),
                            y: (NpyArray.read(contentsOf: yURL), yURL.path),
                            split: (NpyArray.read(contentsOf: splitURL), splitURL.path),
                            recallK: recallCutoffs(metaURL))
    }

    /// The dataset in the `.npz` at `url`: members x, y and split, checked as the files are.
    private static func loadArchive(_ url: URL, name: String, directory: URL, recallK: [Int]? = nil) throws -> Dataset {
        let arrays = try Npz.read(contentsOf: url, names: ["x", "y", "split"])
        func member(_ name: String) -> (NpyArray, String) { (arrays[name]!, "\(url.path)/\(name).npy") }
        return try assemble(directory: directory, name: name, x: member("x"), y: member("y"), split: member("split"),
                            recallK: recallK)
    }

    /// Validates the three arrays (each with the path its errors name) and builds the dataset.
    private static func assemble(directory: URL, name: String, x xArray: (NpyArray, String), y yArray: (NpyArray, String),
                                 split splitArray: (NpyArray, String), recallK: [Int]?) throws -> Dataset {
        let (x, xPath) = xArray, (y, yPath) = yArray, (s, splitPath) = splitArray
        let kind: Kind
        switch (x.dtype, x.shape.count) {
        case (.uint8, 3): kind = .images(channels: 1, height: x.shape[1], width: x.shape[2])
        case (.uint8, 4): kind = .images(channels: x.shape[1], height: x.shape[2], width: x.shape[3])
        case (.float32, 2): kind = .features(dimension: x.shape[1])
        case (.uint8, _), (.float32, _):
            throw DatasetError.badShape(path: xPath, shape: x.shape,
                                        expected: x.dtype == .uint8 ? "(N, H, W) or (N, C, H, W) for uint8 images" : "(N, D) for float32 features")
        default:
            throw DatasetError.badDType(path: xPath, dtype: x.dtype.rawValue, expected: "|u1 (uint8 images) or <f4 (float32 features)")
        }
        let n = x.shape[0]
        let sampleSize = x.shape.dropFirst().reduce(1, *)
        guard sampleSize > 0 else {
            throw DatasetError.badShape(path: xPath, shape: x.shape, expected: "non-empty samples")
        }

        guard y.shape.count == 1 else { throw DatasetError.badShape(path: yPath, shape: y.shape, expected: "(N,)") }
        guard y.count == n else { throw DatasetError.countMismatch(path: yPath, count: y.count, expected: n, reference: "x.npy") }
        let labels: [Int32]
        switch y.dtype {
        case .int32:
            labels = y.values(as: Int32.self)
            if let i = labels.firstIndex(where: { $0 < 0 }) { throw DatasetError.negativeLabel(path: yPath, index: i, value: Int64(labels[i])) }
        case .int64:
            let wide = y.values(as: Int64.self)
            if let i = wide.firstIndex(where: { $0 < 0 }) { throw DatasetError.negativeLabel(path: yPath, index: i, value: wide[i]) }
            if let i = wide.firstIndex(where: { $0 > Int64(Int32.max) }) { throw DatasetError.labelOutOfRange(path: yPath, index: i, value: wide[i]) }
            labels = wide.map { Int32($0) }
        default:
            throw DatasetError.badDType(path: yPath, dtype: y.dtype.rawValue, expected: "<i4 or <i8 labels")
        }

        guard s.dtype == .uint8 else { throw DatasetError.badDType(path: splitPath, dtype: s.dtype.rawValue, expected: "|u1 split values") }
        guard s.shape.count == 1 else { throw DatasetError.badShape(path: splitPath, shape: s.shape, expected: "(N,)") }
        guard s.count == n else { throw DatasetError.countMismatch(path: splitPath, count: s.count, expected: n, reference: "x.npy") }
        let split = s.values(as: UInt8.self)
        if let i = split.firstIndex(where: { $0 > 3 }) { throw DatasetError.badSplitValue(path: splitPath, index: i, value: split[i]) }

        if case let .features(d) = kind {
            let values = x.bytes.bindMemory(to: Float.self)
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw DatasetError.nonFiniteFeature(path: xPath, sample: i / d, component: i % d)
            }
        }

        var trainingClasses = Set<Int32>()
        for i in 0..<n where split[i] == 0 { trainingClasses.insert(labels[i]) }
        guard trainingClasses.count >= 2 else {
            throw DatasetError.tooFewTrainingClasses(path: splitPath, classes: trainingClasses.count)
        }
        return Dataset(directory: directory, name: name, kind: kind, x: x, labels: labels, split: split, recallK: recallK)
    }

    /// meta.json's optional `recall_k` (meta.json already checked to be a JSON object): distinct
    /// positive integers, returned ascending.
    static func recallCutoffs(_ url: URL) throws -> [Int]? {
        struct RecallCutoffs: Decodable { var recall_k: [Int]? }
        let fail = DatasetError.badRecallK(path: url.path)
        guard let ks = try? JSONDecoder().decode(RecallCutoffs.self, from: Data(contentsOf: url)) else { throw fail }
        guard let list = ks.recall_k else { return nil }
        guard !list.isEmpty, list.allSatisfy({ $0 >= 1 }) else { throw fail }
        return Array(Set(list)).sorted()
    }

    static func readMeta(_ url: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DatasetError.badMeta(path: url.path, detail: "unreadable")
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw DatasetError.badMeta(path: url.path, detail: "not valid JSON")
        }
        guard let dictionary = object as? [String: Any] else {
            throw DatasetError.badMeta(path: url.path, detail: "top level is not an object")
        }
        return dictionary
    }

    /// Writes an image dataset: `images` is (N, H, W) or (N, C, H, W) uint8 per `imageShape`
    /// ([H, W] or [C, H, W]); `meta` must be JSON-serialisable.
    public static func write(directory: URL, images: [UInt8], imageShape: [Int], labels: [Int32],
                             split: [UInt8], meta: [String: Any]) throws {
        precondition(imageShape.count == 2 || imageShape.count == 3, "imageShape must be [H, W] or [C, H, W], got \(imageShape)")
        let n = labels.count
        precondition(images.count == n * imageShape.reduce(1, *), "\(images.count) image bytes for \(n) samples of \(imageShape)")
        try writeCommon(directory: directory, labels: labels, split: split, meta: meta)
        try Npy.write(images, shape: [n] + imageShape, to: directory.appendingPathComponent("x.npy"))
    }

    /// Writes a feature dataset: `features` is (N, dimension) float32.
    public static func write(directory: URL, features: [Float], dimension: Int, labels: [Int32],
                             split: [UInt8], meta: [String: Any]) throws {
        let n = labels.count
        precondition(features.count == n * dimension, "\(features.count) features for \(n) samples of dimension \(dimension)")
        try writeCommon(directory: directory, labels: labels, split: split, meta: meta)
        try Npy.write(features, shape: [n, dimension], to: directory.appendingPathComponent("x.npy"))
    }

    private static func writeCommon(directory: URL, labels: [Int32], split: [UInt8], meta: [String: Any]) throws {
        precondition(split.count == labels.count, "\(split.count) split values for \(labels.count) labels")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let json = try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: directory.appendingPathComponent("meta.json"))
        try Npy.write(labels, shape: [labels.count], to: directory.appendingPathComponent("y.npy"))
        try Npy.write(split, shape: [split.count], to: directory.appendingPathComponent("split.npy"))
    }
}
