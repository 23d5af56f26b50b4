// swift-tools-version:6.0
// xbm-dist: Cross-Batch Memory metric learning over MPI (see Docs/architecture.md).
import PackageDescription

let package = Package(
    name: "xbm-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "xbm-dist", targets: ["xbm-dist"]),
        .library(name: "XBM", targets: ["XBM"]),
        .library(name: "Collectives", targets: ["Collectives"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        // C interop: each is reached by exactly one Swift module (Docs/architecture.md).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFreeType", path: "Sources/CFreeType", pkgConfig: "freetype2",
                       providers: [.apt(["libfreetype-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CMatio", path: "Sources/CMatio", pkgConfig: "matio",
                       providers: [.apt(["libmatio-dev"])]),
        // A prefetch hint (a compiler builtin; no library).
        .systemLibrary(name: "CPrefetch", path: "Sources/CPrefetch"),

        .target(name: "Collectives", dependencies: ["CMPI"]),
        .target(name: "XBM", dependencies: [
            "Collectives", "CBLAS", "CPrefetch",
            // The TensorBoard event file (Sources/XBM/Run/TensorBoard, Protos/event.proto).
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            // YAML config files (Sources/XBM/Config/ConfigYAML.swift).
            .product(name: "Yams", package: "Yams"),
            // .npz datasets, NumPy's zip of .npy members (Sources/XBM/Data/Npz.swift).
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        // The built-in benchmark's generator: the only user of FreeType.
        .target(name: "Hanzi", dependencies: ["XBM", "Collectives", "CFreeType"]),
        // Importers of published datasets (Docs/datasets.md): the only user of libjpeg, libpng and libmatio.
        .target(name: "DatasetImport", dependencies: ["XBM", "CJPEG", "CPNG", "CMatio"]),
        .executableTarget(name: "xbm-dist", dependencies: [
            "XBM", "Hanzi", "DatasetImport", "Collectives",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "TestSupport", dependencies: ["XBM", "Collectives"], path: "Tests/TestSupport"),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives", "TestSupport"]),
        // Fixtures/ holds input files the tests read by path (the fuzzers' regressions).
        .testTarget(name: "XBMTests", dependencies: ["XBM", "Collectives", "TestSupport",
                                                    // NpzTests build archives as NumPy does.
                                                    .product(name: "ZIPFoundation", package: "ZIPFoundation")],
                    exclude: ["Fixtures"]),
        .testTarget(name: "HanziTests", dependencies: ["Hanzi", "XBM", "TestSupport"]),
        // The tests write their fixtures (JPEG, PNG, .mat) with the same C libraries.
        .testTarget(name: "ImportTests", dependencies: ["DatasetImport", "XBM", "Collectives", "TestSupport", "CJPEG", "CPNG", "CMatio"]),
        .testTarget(name: "CommandLineTests", dependencies: ["xbm-dist", "XBM", "Collectives"]),
    ]
)
