import Foundation

/// What one import will read: the images the layout's lists name, in list order, and the
/// directory their paths are relative to. Built from the lists alone; nothing is decoded.
public struct ImportPlan: Sendable {
    public var format: ImportFormat
    public var source: URL
    public var imageRoot: URL
    public var images: [ListedImage]
    /// The split rule of meta.json.
    public var splitRule: String

    /// Reads the lists of `format` under `source`. `vehicleIDTest` picks VehicleID's test
    /// list (800, 1600 or 2400 vehicles).
    public static func read(format: ImportFormat, source: URL, vehicleIDTest: Int = 800) throws -> ImportPlan {
        precondition(VehicleIDList.testSizes.contains(vehicleIDTest), "VehicleID test list \(vehicleIDTest) is not 800, 1600 or 2400")
        let layout = format.title
        /// The text of the first of `candidates` (paths under `source`) that exists, and its path.
        func list(_ candidates: [String]) throws -> (text: String, name: String) {
            let fm = FileManager.default
            guard let name = candidates.first(where: { fm.fileExists(atPath: source.appendingPathComponent($0).path) }) else {
                throw ImportError.missingList(path: source.appendingPathComponent(candidates[0]).path, layout: layout)
            }
            let url = source.appendingPathComponent(name)
            guard let data = fm.contents(atPath: url.path) else { throw ImportError.unreadableList(path: url.path) }
            return (String(decoding: data, as: UTF8.self), url.path)
        }

        var roots = [source]
        let images: [ListedImage]
        switch format {
        case .sop:
            let train = try list(["Ebay_train.txt"]), test = try list(["Ebay_test.txt"])
            images = try SOPList.parse(train.text, file: train.name, split: 0) + SOPList.parse(test.text, file: test.name, split: 1)
        case .inshop:
            let partition = try list(["Eval/list_eval_partition.txt", "list_eval_partition.txt"])
            images = try InShopList.parse(partition.text, file: partition.name)
            roots.append(source.appendingPathComponent("Img"))
        case .vehicleid:
            let train = try list(["train_test_split/train_list.txt"])
            let test = try list(["train_test_split/test_list_\(vehicleIDTest).txt"])
            images = try VehicleIDList.parse(train.text, file: train.name, split: 0)
                + VehicleIDList.parse(test.text, file: test.name, split: 1)
        case .cub:
            let names = try list(["images.txt"]), labels = try list(["image_class_labels.txt"])
            images = try CUBList.parse(images: names.text, imagesFile: names.name, labels: labels.text, labelsFile: labels.name)
        case .cars:
            let url = source.appendingPathComponent("cars_annos.mat")
            guard FileManager.default.fileExists(atPath: url.path) else { throw ImportError.missingList(path: url.path, layout: layout) }
            images = CarsAnnotations.images(try CarsAnnotations.read(url), file: url.path)
        }
        guard !images.isEmpty else {
            throw ImportError.nothingImported(source: source.path, detail: "the \(layout) lists name no image")
        }
        return ImportPlan(format: format, source: source, imageRoot: imageRoot(roots, first: images[0].path),
                          images: images, splitRule: format.splitRule(vehicleIDTest: vehicleIDTest))
    }

    /// The first of `candidates` that holds the first listed image (In-shop's pictures may sit
    /// in `img/` or, as unpacked from the download's `Img/img.zip`, in `Img/img/`); the first
    /// candidate when none does, so the missing-image error names the plain path.
    static func imageRoot(_ candidates: [URL], first: String) -> URL {
        candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent(first).path) } ?? candidates[0]
    }

    /// The file of `image`.
    public func url(of image: ListedImage) -> URL { imageRoot.appendingPathComponent(image.path) }
}
