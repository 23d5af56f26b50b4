// swift-tools-version:6.0
// libFuzzer harnesses for the parsers of untrusted files: .npy arrays, config files, checkpoints.
// Build and run them with Launch/fuzz, which adds the sanitizers to every target (so the XBM
// code under test is instrumented too) and keeps the build in Fuzz/.build.
import PackageDescription

let xbm = Target.Dependency.product(name: "XBM", package: "xbm-dist")

/// A harness defines LLVMFuzzerTestOneInput and no top-level code: libFuzzer supplies main.
func harness(_ name: String) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport", xbm],
                      swiftSettings: [.unsafeFlags(["-parse-as-library"])])
}

let package = Package(
    name: "xbm-fuzz",
    dependencies: [.package(name: "xbm-dist", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "Collectives", package: "xbm-dist"), xbm]),
        harness("FuzzNpy"),
        harness("FuzzConfig"),
        harness("FuzzYAML"),
        harness("FuzzCheckpoint"),
    ]
)
