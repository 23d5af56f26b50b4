import XBMKernels

// Pieces shared by the one-pass memory terms: sixteen anchors as the lanes of a vector, their
// similarities to reference rows, and an exponential lane by lane.

/// packed[g][k][lane] = a_{16g + lane, k}, zero beyond the last anchor: (groups, d, 16).
/// `packed` has room for ⌈b / 16⌉ · 16 · d floats.
func packAnchorLanes(_ anchors: UnsafePointer<Float>, count b: Int, dimension d: Int, into packed: UnsafeMutablePointer<Float>) {
    packed.update(repeating: 0, count: (b + vectorWidth - 1) / vectorWidth * vectorWidth * d)
    for i in 0..<b {
        let panel = packed + (i / vectorWidth) * d * vectorWidth, lane = i % vectorWidth
        for k in 0..<d { panel[k * vectorWidth + lane] = anchors[i * d + k] }
    }
}

/// One group of 16 packed anchors (`packAnchorLanes`) and their similarities to reference rows:
/// per lane s = Σ_k a_k r_k as ONE chain of d fused multiply-adds in k order, with r_k broadcast
/// from the row. So a lane's s has the same bits whatever the other lanes hold, whether the row
/// is taken alone or among four, and on whichever thread: what makes a one-pass term's results
/// per anchor (`PairLoss.memoryTermIsPerAnchor`).
struct AnchorLanes {
    /// (d, 16)
    let panel: UnsafePointer<Float>
    let dimension: Int

    /// s for the 16 lanes against four rows (the accumulators of four rows fill the FMA pipes).
    @inline(__always)
    func similarities(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>,
                      _ r3: UnsafePointer<Float>) -> (FloatVector, FloatVector, FloatVector, FloatVector) {
        var s0 = FloatVector.zero, s1 = FloatVector.zero, s2 = FloatVector.zero, s3 = FloatVector.zero
        for k in 0..<dimension {
            let ak = loadVector(panel + k * vectorWidth)
            s0 = s0.addingProduct(ak, r0[k])
            s1 = s1.addingProduct(ak, r1[k])
            s2 = s2.addingProduct(ak, r2[k])
            s3 = s3.addingProduct(ak, r3[k])
        }
        return (s0, s1, s2, s3)
    }

    /// s for the 16 lanes against one row: the same bits as `similarities`.
    @inline(__always)
    func similarity(_ r: UnsafePointer<Float>) -> FloatVector {
        var s = FloatVector.zero
        for k in 0..<dimension { s = s.addingProduct(loadVector(panel + k * vectorWidth), r[k]) }
        return s
    }
}

/// eˣ lane by lane (Cephes' `expf`: x = n ln 2 + t, |t| ≤ ln 2 / 2, a degree-7 polynomial in t,
/// times 2ⁿ from the exponent bits), relative error ≤ 2 · 2⁻²³ on the range used. Meant for
/// x ≤ 0 (weights e^{x − max}): x is clamped to [−87.3, 88.3], so arguments below −87.3 give
/// e^{−87.3} ≈ 1.2e−38 instead of a smaller number or 0 (a weight that small changes no Float
/// sum it joins). Each lane depends on its own x only.
@inline(__always)
func laneExp(_ x: FloatVector) -> FloatVector {
    // Compare and select (the standard library's clamp goes lane by lane); a NaN stays NaN.
    let low = FloatVector(repeating: -87.3), high = FloatVector(repeating: 88.3)
    var clamped = x.replacing(with: low, where: x .< low)
    clamped.replace(with: high, where: clamped .> high)
    // n = round(x / ln 2) by the 1.5 · 2²³ trick: n sits in the low mantissa bits of `shifted`.
    let magic = FloatVector(repeating: 12_582_912)
    let shifted = clamped * FloatVector(repeating: 1.442_695_04) + magic
    let n = shifted - magic
    // t = x − n ln 2, with ln 2 in two parts so that n · (first part) is exact.
    let t = clamped - n * FloatVector(repeating: 0.693_359_375) - n * FloatVector(repeating: -2.121_944_4e-4)
    var p = FloatVector(repeating: 1.987_569_15e-4)
    p = p * t + FloatVector(repeating: 1.398_199_95e-3)
    p = p * t + FloatVector(repeating: 8.333_451_9e-3)
    p = p * t + FloatVector(repeating: 4.166_579_59e-2)
    p = p * t + FloatVector(repeating: 1.666_666_55e-1)
    p = p * t + FloatVector(repeating: 5.000_000_12e-1)
    p = p * (t * t) + t + FloatVector(repeating: 1)
    // 2ⁿ: (n + 127) in the exponent field; n ∈ [−126, 127] on the clamped range.
    let bits = unsafeBitCast(shifted, to: SIMD16<UInt32>.self)
    let power = (bits &- SIMD16<UInt32>(repeating: 0x4B40_0000) &+ SIMD16<UInt32>(repeating: 127)) &<< SIMD16<UInt32>(repeating: 23)
    return p * unsafeBitCast(power, to: FloatVector.self)
}
