import ArgumentParser
import DatasetImport
import Foundation
import XBMTraining

extension ImportFormat: ExpressibleByArgument {}

/// `xbm-dist data import FORMAT SRC --out DIR --size S`: a published dataset as a dataset
/// directory (Docs/datasets.md).
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a published metric-learning dataset (SOP, In-shop, VehicleID, CUB-200-2011, Cars196) as a dataset directory.",
        discussion: """
            SRC is the directory the download unpacked to; FORMAT names its layout:
              sop        Ebay_train.txt -> split 0, Ebay_test.txt -> 1
              inshop     Eval/list_eval_partition.txt: train -> 0, query -> 2, gallery -> 3
              vehicleid  train_test_split/: train_list.txt -> 0, test_list_800.txt -> 1
              cub        image_class_labels.txt: classes 1-100 -> 0, 101-200 -> 1
              cars       cars_annos.mat: classes 1-98 -> 0, 99-196 -> 1
            Every picture (JPEG or PNG, any colour type) becomes S x S RGB: its
            shorter side is resized to S (area averaging when shrinking, bilinear
            when enlarging), then the centre S x S is cropped. Labels are the class
            ids' ranks, ascending. meta.json records the split rule and the Recall@K
            cut-offs the literature reports, which training and `xbm-dist eval` use
            unless --recall-k is given.
            See Docs/datasets.md.
            """)

    @Argument(help: "Layout of SRC: \(ImportFormat.allCases.map(\.rawValue).joined(separator: ", ")).") var format: ImportFormat
    @Argument(help: "Directory the dataset unpacked to.") var source: String
    @Option(help: "Output dataset directory.") var out: String
    @Option(help: "Side S of the square images (e.g. 224 as in the literature, 64 for quick studies).") var size: Int
    @Option(name: .customLong("vehicleid-test"), help: "VehicleID's test list: 800, 1600 or 2400 vehicles.")
    var vehicleIDTest: Int = 800
    @Flag(name: .customLong("skip-unreadable"), help: "Leave out missing or undecodable images (and report them) instead of stopping at the first.")
    var skipUnreadable = false

    func validate() throws {
        guard (1...4096).contains(size) else {
            throw ValidationError("--size must be 1…4096 pixels, got \(size) (the literature uses 224; x.npy holds N·3·S² bytes)")
        }
        guard [800, 1600, 2400].contains(vehicleIDTest) else {
            throw ValidationError("--vehicleid-test must be 800, 1600 or 2400, got \(vehicleIDTest)")
        }
    }

    func run() throws {
        let bar = ProgressBar(label: "import \(format.rawValue)")
        let summary = try reportingErrors {
            let plan = try ImportPlan.read(format: format, source: URL(fileURLWithPath: source, isDirectory: true),
                                           vehicleIDTest: vehicleIDTest)
            return try DatasetImporter.run(plan: plan, output: URL(fileURLWithPath: out, isDirectory: true), size: size,
                                           skipUnreadable: skipUnreadable, progress: bar.update)
        }
        if !summary.skipped.isEmpty {
            let shown = summary.skipped.prefix(5).map { "  \($0)" }
            let more = summary.skipped.count > shown.count ? ["  ... and \(summary.skipped.count - shown.count) more"] : []
            FileHandle.standardError.write(Data(
                (["skipped \(summary.skipped.count) unreadable image(s):"] + shown + more).joined(separator: "\n").appending("\n").utf8))
        }
        let names: [UInt8: String] = [0: "train", 1: "test", 2: "query", 3: "gallery"]
        let splits = summary.splitCounts.keys.sorted().map { "\(names[$0]!) \(summary.splitCounts[$0]!)" }.joined(separator: ", ")
        print("imported \(summary.count) images of \(summary.classes) classes (\(splits)) as \(size)×\(size) RGB to \(out)")
        print(String(format: "time %.1f s", summary.seconds))
    }
}
