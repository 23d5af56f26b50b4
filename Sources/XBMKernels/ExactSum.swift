/// Sums of Float vectors that come out the same bits in any order and over any split of the
/// addends (`--deterministic`, Docs/distributed.md, "Deterministic training").
///
/// Every addend x is rounded once onto a fixed grid, the integer q = round(x · 2^s), and held in a
/// Double. For n addends whose largest magnitude m has 2^(e−1) ≤ m < 2^e, the shift
///
///     s = 52 − e − ⌈log₂ n⌉          so that |q| ≤ 2^(52 − ⌈log₂ n⌉) and |Σ q| ≤ 2^52,
///
/// makes every partial sum of any subset of the q an integer below 2^53, which a Double holds
/// exactly: addition is then associative, and the ranks' allreduce may add in any order. The
/// total goes back to Float once, Float(Σ q) · 2^−s, rounded to nearest. Each addend moves by
/// at most 2^−(s+1) ≤ m · 2^(⌈log₂ n⌉ − 52) when it is put on the grid (2^−49 of the largest
/// addend for n = 8), far below the 2^−24 of one Float rounding.
///
/// Every step here is elementwise, so the result does not depend on the thread count either.
public enum ExactSum {
    /// The shift s for `addends` addends of largest magnitude `maximum`; nil when `maximum` is
    /// not finite (the sum is then NaN). Clamped to ±126 so that 2^s is a normal Float: a
    /// tensor whose largest addend is below 2^−74 loses digits below 2^−126, which a Float
    /// gradient of that size hardly has.
    public static func shift(maximum: Float, addends: Int) -> Int? {
        precondition(addends >= 1, "ExactSum needs at least one addend")
        guard maximum.isFinite else { return nil }
        guard maximum > 0 else { return 0 }
        // e with 2^(e−1) ≤ maximum < 2^e: Float's exponent is e − 1.
        let e = Int(maximum.exponent) + 1
        let headroom = Int.bitWidth - (addends - 1).leadingZeroBitCount   // ⌈log₂ addends⌉
        return min(126, max(-126, 52 - e - headroom))
    }

    /// The largest |x_i| of `count` floats (NaN if any is NaN). On the bit patterns with the
    /// sign cleared, integer order is the order of the magnitudes, and every NaN is above +∞.
    public static func maximumMagnitude(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let magnitude = SIMD16<UInt32>(repeating: 0x7fff_ffff)
        var lanes = SIMD16<UInt32>.zero
        var i = 0
        while i + 16 <= count {
            let bits = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<UInt32>.self) & magnitude
            lanes.replace(with: bits, where: bits .> lanes)   // (pointwiseMax is not inlined here)
            i += 16
        }
        var largest = lanes.max()
        while i < count {
            largest = max(largest, x[i].bitPattern & 0x7fff_ffff)
            i += 1
        }
        return largest > Float.infinity.bitPattern ? .nan : Float(bitPattern: largest)
    }

    /// q_i += round(x_i · 2^s) for `count` addends (ties to even). x · 2^s is exact in Float for
    /// the shift of `shift(maximum:addends:)`, and so is the rounding to an integer.
    public static func accumulate(_ x: UnsafePointer<Float>, count: Int, shift s: Int, into q: UnsafeMutablePointer<Double>) {
        let scale = Float(sign: .plus, exponent: s, significand: 1)
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let target = UnsafeMutableRawPointer(q + i)
            let sum = target.loadUnaligned(as: SIMD8<Double>.self) + SIMD8<Double>((v * scale).rounded(.toNearestOrEven))
            target.storeBytes(of: sum, as: SIMD8<Double>.self)
            i += 8
        }
        while i < count {
            q[i] += Double((x[i] * scale).rounded(.toNearestOrEven))
            i += 1
        }
    }

    /// x_i = Float(q_i) · 2^−s: the sums back on the Float scale (NaN everywhere without a shift).
    public static func result(_ q: UnsafePointer<Double>, count: Int, shift s: Int?, into x: UnsafeMutablePointer<Float>) {
        guard let s else {
            x.update(repeating: .nan, count: count)
            return
        }
        let scale = Float(sign: .plus, exponent: -s, significand: 1)
        var i = 0
        while i + 8 <= count {
            let sum = UnsafeRawPointer(q + i).loadUnaligned(as: SIMD8<Double>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: SIMD8<Float>(sum) * scale, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            x[i] = Float(q[i]) * scale
            i += 1
        }
    }
}
