import ArgumentParser
import Collectives
import Foundation
import Hanzi
import XBMData
import XBMFormats
import XBMKernels
import XBMTraining

/// `xbm-dist data ...`: build, import, inspect and preview datasets (Docs/data.md, Docs/datasets.md, README.md).
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Build the hanzi benchmark, import a published dataset, inspect or preview a dataset directory.",
        subcommands: [Hanzi.self, ImportCommand.self, Fonts.self, Synthetic.self, Inspect.self, Preview.self])

    struct Hanzi: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Render the hanzi benchmark (3,755 characters × 27 faces, 32×32) into a dataset directory.")

        @Option(help: "Output dataset directory.") var out: String
        @Option(help: "Characters: level1 (GB2312 level 1, 3,755 classes, the benchmark), level2 (3,008 rarer classes, a second set for checking a recipe on data it was not tuned on) or all (6,763).")
        var charset: HanziCharset = .level1
        @Option(help: "Keep a seeded random N of the 27 faces of each character: few images over many classes, as SOP (about 5 per class); with --charset all, 6,763 classes (Docs/data.md).")
        var facesPerClass: Int?
        @Option(help: "Seed of the distortions (and of the faces kept).") var seed: UInt64 = 0
        @Option(help: "Rendering threads (default: all cores).") var threads: Int?

        func validate() throws {
            if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
            if let facesPerClass, !(1...HanziFace.all.count).contains(facesPerClass) {
                throw ValidationError("--faces-per-class must be 1 to \(HanziFace.all.count), got \(facesPerClass)")
            }
        }

        func run() throws {
            let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
            let bar = ProgressBar(label: charset.datasetName + (facesPerClass.map { "-f\($0)" } ?? ""))
            let summary = try reportingErrors {
                try HanziBenchmark.build(outputDirectory: URL(fileURLWithPath: out), seed: seed, threads: threadCount,
                                         charset: charset, facesPerClass: facesPerClass, progress: bar.update)
            }
            print("wrote \(summary.count) images of \(summary.classes) classes (train \(summary.trainCount), test \(summary.testCount)) to \(out)")
            print("checksum fnv1a64:\(FNV1a64.hex(summary.checksum))")
            print(String(format: "time %.2f s on %d threads", summary.seconds, threadCount))
        }
    }

    struct Fonts: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the 27 font faces of the hanzi benchmark and whether each is installed.",
            discussion: "With --packages, print only the Debian packages that install them (Launch/setup installs these).")
        @Flag(help: "Print the Debian package names, one per line.") var packages = false

        func run() throws {
            if packages {
                print(HanziFace.packages.joined(separator: "\n"))
                return
            }
            for face in HanziFace.all {
                print("\(face.isInstalled() ? "ok     " : "MISSING") \(face.name)  (\(face.package))")
            }
        }
    }

    struct Synthetic: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a small feature dataset of Gaussian clusters (a smoke test of an installation).")

        @Option(help: "Output dataset directory.") var out: String
        @Option(help: "Number of classes (two thirds train, the rest test).") var classes: Int = 60
        @Option(name: .customLong("per-class"), help: "Samples per class.") var perClass: Int = 10
        @Option(help: "Feature dimension.") var dim: Int = 32
        @Option(help: "Seed.") var seed: UInt64 = 0

        func validate() throws {
            guard classes >= 3, perClass >= 1, dim >= 1 else {
                throw ValidationError("need --classes ≥ 3, --per-class ≥ 1 and --dim ≥ 1")
            }
        }

        func run() throws {
            try reportingErrors {
                try SyntheticDataset.write(directory: URL(fileURLWithPath: out, isDirectory: true), classes: classes,
                                           perClass: perClass, dimension: dim, seed: seed)
            }
            print("wrote \(classes * perClass) feature vectors of dimension \(dim) in \(classes) classes to \(out)")
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Summarise a dataset directory.")
        @Argument(help: "Dataset directory.") var directory: String

        func run() throws {
            let dataset = try reportingErrors { try Dataset.load(directory: URL(fileURLWithPath: directory)) }
            print(DatasetSummary(dataset).text)
        }
    }

    struct Preview: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Draw a PNG grid of samples, one row per class.")
        @Argument(help: "Dataset directory.") var directory: String
        @Option(help: "Output PNG file.") var out: String
        @Option(help: "Number of classes (rows).") var classes: Int = 8
        @Option(name: .customLong("per-class"), help: "Samples per class (columns).") var perClass: Int = 8

        func validate() throws {
            guard classes > 0 else { throw ValidationError("--classes must be positive, got \(classes)") }
            guard perClass > 0 else { throw ValidationError("--per-class must be positive, got \(perClass)") }
        }

        func run() throws {
            let grid = try reportingErrors {
                let dataset = try Dataset.load(directory: URL(fileURLWithPath: directory))
                let grid = try DatasetPreview.grid(dataset, classes: classes, perClass: perClass)
                try grid.write(to: URL(fileURLWithPath: out))
                return grid
            }
            print("wrote \(out) (\(grid.width)×\(grid.height))")
        }
    }
}

/// Runs `body`; a thrown error becomes `error: <its one line>` on stderr and exit code 2.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch {
        ErrorReport.write("\(error)")
        throw ExitCode(2)
    }
}
