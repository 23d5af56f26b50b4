import CCPUFeatures
import Foundation

/// x86-64 features, as `cpu_features.h` reports them (CPUID and XGETBV).
public struct CPUFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Every feature with its name as /proc/cpuinfo spells it.
    public static let named: [(name: String, feature: CPUFeatures)] = {
        func bit<T: BinaryInteger>(_ value: T) -> CPUFeatures { CPUFeatures(rawValue: UInt32(value)) }
        var table: [(name: String, feature: CPUFeatures)] = []
        table.append(("avx", bit(XBM_CPU_AVX)))
        table.append(("avx2", bit(XBM_CPU_AVX2)))
        table.append(("fma", bit(XBM_CPU_FMA)))
        table.append(("f16c", bit(XBM_CPU_F16C)))
        table.append(("bmi1", bit(XBM_CPU_BMI1)))
        table.append(("bmi2", bit(XBM_CPU_BMI2)))
        table.append(("abm", bit(XBM_CPU_LZCNT)))
        table.append(("movbe", bit(XBM_CPU_MOVBE)))
        table.append(("avx512f", bit(XBM_CPU_AVX512F)))
        table.append(("avx512cd", bit(XBM_CPU_AVX512CD)))
        table.append(("avx512bw", bit(XBM_CPU_AVX512BW)))
        table.append(("avx512dq", bit(XBM_CPU_AVX512DQ)))
        table.append(("avx512vl", bit(XBM_CPU_AVX512VL)))
        table.append(("avx512_vnni", bit(XBM_CPU_AVX512_VNNI)))
        table.append(("avx512_bf16", bit(XBM_CPU_AVX512_BF16)))
        return table
    }()

    /// x86-64-v3, what `-target-cpu haswell` (and znver1…3) lets the compiler use.
    public static let x86_64_v3 = CPUFeatures(names: ["avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe"])!
    /// x86-64-v4, what `-target-cpu skylake-avx512` (and znver4) lets the compiler use.
    public static let x86_64_v4 = x86_64_v3.union(CPUFeatures(names: ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"])!)

    /// The features of a list of names; nil when a name is unknown.
    public init?(names: [String]) {
        var features = CPUFeatures()
        for name in names {
            guard let entry = Self.named.first(where: { $0.name == name }) else { return nil }
            features.insert(entry.feature)
        }
        self = features
    }

    public var names: [String] { Self.named.filter { contains($0.feature) }.map(\.name) }
    public var description: String { names.isEmpty ? "none of them" : names.joined(separator: " ") }

    /// This CPU's, or those `XBM_CPU_FEATURES` names (space-separated: a test's way to be
    /// another CPU).
    public static func detected(environment: [String: String] = ProcessInfo.processInfo.environment) -> CPUFeatures {
        if let override = environment["XBM_CPU_FEATURES"],
           let features = CPUFeatures(names: override.split(separator: " ").map(String.init)) {
            return features
        }
        return CPUFeatures(rawValue: xbm_cpu_features())
    }
}

/// What the binary was compiled for: `Launch/common.sh` (`release_build`) passes the level of
/// its `-target-cpu` as a compilation condition, since the Swift compiler cannot tell code which
/// target features it was built with.
public enum BuildTarget {
    #if XBM_BUILT_FOR_X86_64_V4
    public static let level = "x86-64-v4 (AVX-512: -target-cpu skylake-avx512 or alike)"
    public static let required = CPUFeatures.x86_64_v4
    #elseif XBM_BUILT_FOR_X86_64_V3
    public static let level = "x86-64-v3 (AVX2 and FMA: -target-cpu haswell or alike)"
    public static let required = CPUFeatures.x86_64_v3
    #else
    public static let level = "generic x86-64"
    public static let required = CPUFeatures()
    #endif

    /// Why this binary cannot run on a CPU with `features`, or nil when it can. Code compiled
    /// for a feature the CPU lacks would die with SIGILL at the first kernel that uses it.
    public static func problem(required: CPUFeatures = required, level: String = level,
                               features: CPUFeatures = .detected()) -> String? {
        let missing = required.subtracting(features)
        guard !missing.isEmpty else { return nil }
        let suggestion = features.isSuperset(of: .x86_64_v3) ? "XBM_TARGET_CPU=haswell" : "XBM_TARGET_CPU=generic"
        return "this xbm-dist was built for \(level), but this CPU lacks \(missing) (it has \(features)). "
            + "Build it on this machine (Launch/setup picks the CPU's own target), or build one binary for every "
            + "node of a mixed cluster with \(suggestion) Launch/setup"
    }
}
