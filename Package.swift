// swift-tools-version:6.0
// xbm-dist: Cross-Batch Memory metric learning over MPI (see Docs/architecture.md).
import PackageDescription

/// The library's layers, lowest first: each target imports only targets before it in this list
/// (and Collectives, beside XBMKernels at the bottom). Launch/check-layers enforces it.
let xbmLayers = ["XBMKernels", "XBMFormats", "XBMData", "XBMModel", "XBMEval", "XBMTraining"]
/// All of them, for the tests and the tools that use the whole library.
let allLayers = xbmLayers.map { Target.Dependency.target(name: $0) }

let package = Package(
    name: "xbm-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "xbm-dist", targets: ["xbm-dist"]),
        .library(name: "XBM", targets: xbmLayers),
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
        // The CPU's features (CPUID), compiled for generic x86-64 so that the start-up check
        // of a binary built for a newer CPU runs anywhere.
        .target(name: "CCPUFeatures", path: "Sources/CCPUFeatures"),
        // The low-precision similarities of exact screening (Docs/losses.md): compiled for generic
        // x86-64 too, each kernel for its own ISA, chosen at run time from the CPU's features.
        .target(name: "CScreening", path: "Sources/CScreening"),

        .target(name: "Collectives", dependencies: ["CMPI"]),
        // The library, in layers whose imports run one way (Docs/architecture.md; Launch/check-layers
        // fails on an import of a higher layer). Each depends only on the ones named here.
        // Flat buffers, BLAS, SIMD vectors and prefetch, thread splitting, checksums, random numbers,
        // the screening kernels.
        .target(name: "XBMKernels", dependencies: ["CBLAS", "CPrefetch", "CCPUFeatures", "CScreening"]),
        // File formats: .npy/.npz, PNG, safetensors, TensorBoard's event file, the checkpoint archive.
        .target(name: "XBMFormats", dependencies: [
            "XBMKernels", "Collectives",
            // TensorBoard's Event message (Sources/XBMFormats/TensorBoard, Protos/event.proto).
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            // .npz datasets, NumPy's zip of .npy members (Sources/XBMFormats/Npy/Npz.swift).
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        // Datasets: loading and checking, the P×K sampler, augmentation, synthetic data.
        .target(name: "XBMData", dependencies: ["XBMKernels", "XBMFormats", "Collectives"]),
        // Layers, networks, pair losses, the cross-batch memory, optimisers and schedules.
        .target(name: "XBMModel", dependencies: ["XBMKernels", "Collectives"]),
        // Retrieval metrics and the evaluation of a network on a dataset.
        .target(name: "XBMEval", dependencies: ["XBMKernels", "XBMFormats", "XBMData", "XBMModel", "Collectives"]),
        // Configuration, the distributed step, the trainer and its run directory, benchmarks.
        .target(name: "XBMTraining", dependencies: [
            "XBMKernels", "XBMFormats", "XBMData", "XBMModel", "XBMEval", "Collectives",
            // YAML config files (Sources/XBMTraining/Config/ConfigYAML.swift).
            .product(name: "Yams", package: "Yams"),
        ]),
        // The built-in benchmark's generator: the only user of FreeType.
        .target(name: "Hanzi", dependencies: ["XBMKernels", "XBMData", "XBMTraining", "Collectives", "CFreeType"]),
        // Importers of published datasets (Docs/datasets.md): the only user of libjpeg, libpng and libmatio.
        .target(name: "DatasetImport", dependencies: ["XBMFormats", "XBMData", "XBMEval", "CJPEG", "CPNG", "CMatio"]),
        .executableTarget(name: "xbm-dist", dependencies: [
            "XBMKernels", "XBMFormats", "XBMData", "XBMModel", "XBMEval", "XBMTraining", "Hanzi", "DatasetImport", "Collectives",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "TestSupport", dependencies: allLayers + ["Collectives"], path: "Tests/TestSupport"),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives", "TestSupport"]),
        // Fixtures/ holds input files the tests read by path (the fuzzers' regressions).
        .testTarget(name: "XBMTests", dependencies: allLayers + ["Collectives", "TestSupport",
                                                    // NpzTests build archives as NumPy does.
                                                    .product(name: "ZIPFoundation", package: "ZIPFoundation")],
                    exclude: ["Fixtures"]),
        .testTarget(name: "HanziTests", dependencies: ["Hanzi", "TestSupport"] + allLayers),
        // The tests write their fixtures (JPEG, PNG, .mat) with the same C libraries.
        .testTarget(name: "ImportTests", dependencies: ["DatasetImport", "Collectives", "TestSupport", "CJPEG", "CPNG", "CMatio"] + allLayers),
        .testTarget(name: "CommandLineTests", dependencies: ["xbm-dist", "DatasetImport", "Collectives", "TestSupport"] + allLayers),
    ]
)
