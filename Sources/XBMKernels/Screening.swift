import CScreening

// Exact screening (Docs/losses.md, "Exact screening of the memory term"): the memory keeps a
// bf16 copy of each row; the screen computes every ŝ_ij = Σ_k â_ik r̂_jk from the bf16 copies
// of both operands, and a pair whose ŝ is farther than β_ij from every threshold of the loss
// is proved inactive without its fp32 similarity s_ij. Only the others are recomputed in fp32.

/// The kernels that compute ŝ (Sources/CScreening), each compiled for its own ISA and chosen
/// at run time from the CPU's features, whatever the build's `-target-cpu`.
public enum ScreeningKernel: Int32, CaseIterable, Sendable, CustomStringConvertible {
    /// Portable C, for tests and CPUs without AVX2: slower than the fp32 one pass it would save.
    case scalar = 0
    /// AVX2 and FMA: bf16 widened to fp32 by a shift, 8 fp32 multiply-adds an instruction.
    case avx2 = 1
    /// AVX512-BF16: `VDPBF16PS`, 32 bf16 products an instruction.
    case avx512BF16 = 2

    public var description: String {
        switch self {
        case .scalar: "scalar"
        case .avx2: "AVX2+FMA"
        case .avx512BF16: "AVX512-BF16"
        }
    }

    /// What the CPU must have for this kernel.
    public var requiredFeatures: CPUFeatures {
        switch self {
        case .scalar: CPUFeatures()
        case .avx2: CPUFeatures(names: ["avx2", "fma"])!
        case .avx512BF16: CPUFeatures(names: ["avx512f", "avx512_bf16"])!
        }
    }

    /// The fastest kernel a CPU with `features` runs, or nil when that would be the scalar one:
    /// a scalar screen costs more than the fp32 one pass it saves.
    public static func best(for features: CPUFeatures) -> ScreeningKernel? {
        [.avx512BF16, .avx2].first { features.isSuperset(of: $0.requiredFeatures) }
    }

    /// This CPU's best (`XBM_CPU_FEATURES` can pose as another CPU), decided once.
    public static let detected: ScreeningKernel? = best(for: .detected())

    /// Why this kernel cannot run on a CPU with `features`, or nil when it can.
    public func problem(features: CPUFeatures = .detected()) -> String? {
        let missing = requiredFeatures.subtracting(features)
        guard !missing.isEmpty else { return nil }
        return "the \(self) screening kernel needs \(missing), which this CPU lacks (it has \(features)); "
            + "set XBM_SCREENING=on for the CPU's best kernel, or off for the fp32 one pass"
    }
}

/// The memory's bf16 rows: `stride` values a row (d rounded up to even, zero-padded), rounded to
/// nearest even.
public enum BF16 {
    public static func stride(dimension d: Int) -> Int { xbm_bf16_stride(d) }

    /// `out[0 ..< stride]` = the bf16 row of `x[0 ..< d]`.
    public static func round(_ x: UnsafePointer<Float>, dimension d: Int, into out: UnsafeMutablePointer<UInt16>) {
        xbm_bf16_round_row(x, d, out)
    }

    public static func widen(_ value: UInt16) -> Float { Float(bitPattern: UInt32(value) << 16) }
}

/// The bound |s_ij − ŝ_ij| ≤ β_ij = α_i ρ_j + τ (Docs/losses.md derives it), in factors that
/// are computed once: α_i per anchor per evaluation, ρ_j per memory row at enqueue.
public enum ScreeningBound {
    /// Embedding sizes up to which the constants below are proved (γ_d < 2⁻⁸).
    public static let maximumDimension = 65_536
    /// Norms up to which the absolute term τ covers the underflow; a row above it gets ρ = +∞
    /// (never skipped) and an anchor above it turns screening off for the evaluation.
    public static let largestNorm: Double = 0x1p32
    /// τ: covers the flush of subnormal products and sums (at most (√d (‖a‖ + ‖r‖) + 2d + 2) · 2⁻¹²⁶,
    /// < 2⁻⁸⁴ within the limits above) and the rounding of the comparisons against it.
    public static let absoluteTerm: Float = 0x1p-80

    /// C_d = 2u_b + u_b² + γ_d (1 + (1 + u_b)²) + 2⁻²⁰ with u_b = 2⁻⁸ (bf16's unit roundoff),
    /// γ_d = d u / (1 − d u), u = 2⁻²⁴ (fp32's); the last term covers the fp32 rounding of β
    /// and of ŝ ± β.
    public static func relativeFactor(dimension d: Int) -> Double {
        precondition(d >= 1 && d <= maximumDimension,
                     "screening's bound is proved for 1 ≤ d ≤ \(maximumDimension), got d \(d): turn screening off")
        let ub = 0x1p-8, u = 0x1p-24
        let gamma = Double(d) * u / (1 - Double(d) * u)
        return 2 * ub + ub * ub + gamma * (1 + (1 + ub) * (1 + ub)) + 0x1p-20
    }

    /// A float ≥ ‖x‖ (each square exact in Double, the sum's relative error below d·2⁻⁵³,
    /// covered by 2⁻⁴⁰, then rounded up); +∞ when above `largestNorm` or not finite.
    public static func normBound(_ x: UnsafePointer<Float>, dimension d: Int) -> Float {
        var sum = 0.0
        for k in 0..<d { sum += Double(x[k]) * Double(x[k]) }
        let norm = sum.squareRoot() * (1 + 0x1p-40)
        guard norm.isFinite, norm <= largestNorm else { return .infinity }
        return roundedUp(norm)
    }

    /// α = a float ≥ C_d · ‖a‖; +∞ when ‖a‖ is above `largestNorm` or not finite.
    public static func anchorFactor(_ a: UnsafePointer<Float>, dimension d: Int) -> Float {
        let norm = normBound(a, dimension: d)
        guard norm.isFinite else { return .infinity }
        return roundedUp(relativeFactor(dimension: d) * Double(norm) * (1 + 0x1p-40))
    }

    private static func roundedUp(_ x: Double) -> Float {
        let f = Float(x)
        return Double(f) >= x ? f : f.nextUp
    }
}

/// The panel of `count` ≤ 16 anchors (count × d floats) for `screenSimilarities`:
/// (stride / 2) × 16 × 2 bf16, zero beyond the anchors and beyond d.
package func packScreeningPanel(_ anchors: UnsafePointer<Float>, count: Int, dimension d: Int,
                                into panel: UnsafeMutablePointer<UInt16>) {
    precondition(count >= 0 && count <= 16, "a screening panel holds at most 16 anchors, got \(count)")
    xbm_screen_pack_anchors(anchors, count, d, panel)
}

/// `out` (count × 16) = ŝ of the panel's 16 lanes against `count` bf16 rows of `stride` values.
package func screenSimilarities(_ kernel: ScreeningKernel, panel: UnsafePointer<UInt16>, rows: UnsafePointer<UInt16>,
                                count: Int, stride: Int, prefetch: Bool, into out: UnsafeMutablePointer<Float>) {
    xbm_screen_similarities(kernel.rawValue, panel, rows, count, stride, prefetch ? 1 : 0, out)
}
