import Foundation
import XBMKernels
import XCTest

/// The start-up check (Docs/performance.md, "Portable binaries"): CPUID's answer agrees with
/// the kernel's, and a binary built for features a CPU lacks refuses with what to do.
final class CPUCheckTests: XCTestCase {
    /// Each feature the probe reports matches /proc/cpuinfo's flags (the kernel's reading of the
    /// same CPUID bits, cleared for state the OS does not save), so the bit positions are right.
    func testTheProbeAgreesWithProcCpuinfo() throws {
        #if arch(x86_64)
        let text = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(line.split(separator: ":")[1].split(separator: " ").map(String.init))
        let probed = CPUFeatures.detected(environment: [:])
        for (name, feature) in CPUFeatures.named {
            XCTAssertEqual(probed.contains(feature), flags.contains(name), "\(name): CPUID and /proc/cpuinfo disagree")
        }
        XCTAssertTrue(probed.contains(CPUFeatures(names: ["avx"])!), "vacuous: an x86-64 host without AVX")
        #else
        throw XCTSkip("CPUID is x86-64's")
        #endif
    }

    func testAnOverrideReplacesTheDetectedFeatures() {
        XCTAssertEqual(CPUFeatures.detected(environment: ["XBM_CPU_FEATURES": "avx2 fma"]).names, ["avx2", "fma"])
        XCTAssertEqual(CPUFeatures.detected(environment: ["XBM_CPU_FEATURES": ""]), [])
        XCTAssertNil(CPUFeatures(names: ["avx2", "sse9"]), "an unknown name")
    }

    /// An AVX-512 build on an AVX2 CPU: refused, naming the build's level, what is missing,
    /// what the CPU has, and the build variable that gives a binary for it.
    func testABuildForMoreThanTheCPUHasIsRefusedWithWhatToDo() throws {
        let avx2Host = CPUFeatures.x86_64_v3.union(CPUFeatures(names: ["avx512_vnni"])!)
        let message = try XCTUnwrap(BuildTarget.problem(required: .x86_64_v4, level: "x86-64-v4", features: avx2Host))
        for part in ["built for x86-64-v4", "lacks avx512f avx512cd avx512bw avx512dq avx512vl", "it has avx avx2 fma",
                     "XBM_TARGET_CPU=haswell Launch/setup"] {
            XCTAssertTrue(message.contains(part), "missing \(part) in: \(message)")
        }
        // Without AVX2 either, only a generic build runs.
        let old = CPUFeatures(names: ["avx"])!
        XCTAssertTrue(try XCTUnwrap(BuildTarget.problem(required: .x86_64_v3, level: "x86-64-v3", features: old))
            .contains("XBM_TARGET_CPU=generic"))
        // What the CPU has suffices: no problem, whatever else it has.
        XCTAssertNil(BuildTarget.problem(required: .x86_64_v3, level: "x86-64-v3", features: avx2Host))
        XCTAssertNil(BuildTarget.problem(required: [], level: "generic x86-64", features: []))
    }
}
