import XBMKernels

// What the one-pass memory terms (`ContrastiveStream`, `TripletStream`, `MultiSimilarityStream`,
// `LogSumExpStream`) share: anchors packed 16 to a group by dimension, the similarities of a
// group's 16 lanes to four reference rows at a time, the order in which the rows are visited
// (blocks that every anchor group of a thread reads while they are in cache, the first group
// prefetching ahead), and an exponential lane by lane.
//
// Every s_ij is one chain of d fused multiply-adds in k order, whatever the other lanes hold
// and whichever rows are taken together: the property that makes an anchor's results its own
// (`PairLoss.memoryTermIsPerAnchor`), provided the term's per-anchor sums also run over j in order.

/// The anchors of one evaluation packed as (groups, d, 16): packed[g][k][lane] = a_{16g + lane, k},
/// zero beyond the last anchor. Grows on first use and is then reused.
struct PackedAnchorLanes {
    private var storage = FlatBuffer<Float>(count: 0)
    private var dimension = 0

    /// Packs `count` anchor rows of dimension `d`.
    mutating func pack(_ anchors: UnsafePointer<Float>, count b: Int, dimension d: Int) {
        let groups = (b + vectorWidth - 1) / vectorWidth
        if storage.count < groups * vectorWidth * d { storage = FlatBuffer(count: groups * vectorWidth * d) }
        dimension = d
        let packed = storage.pointer
        packed.update(repeating: 0, count: groups * vectorWidth * d)
        for i in 0..<b {
            let panel = packed + (i / vectorWidth) * d * vectorWidth, lane = i % vectorWidth
            for k in 0..<d { panel[k * vectorWidth + lane] = anchors[i * d + k] }
        }
    }

    /// Group `group`'s lanes, valid until the next `pack`.
    func lanes(group: Int) -> AnchorLanes {
        AnchorLanes(packed: storage.pointer + group * dimension * vectorWidth, dimension: dimension)
    }

    /// References per block that every anchor group of a thread visits before the next block,
    /// so a block is read from memory once and from cache by the other groups: ~64 KiB of rows.
    static func blockRows(dimension d: Int) -> Int { max(4, (16_384 / max(d, 1)) & ~3) }

    /// How far ahead of the rows being multiplied their successors are prefetched: ~8 KiB.
    /// The hardware prefetcher does not keep up with four rows read a float at a time each, and
    /// a memory that does not stay in cache between steps (the network's passes evict it) is
    /// read from DRAM (Docs/performance.md, "The memory's cost").
    static func prefetchRows(dimension d: Int) -> Int { max(4, (2_048 / max(d, 1)) & ~3) }
}

/// One group's 16 packed anchors (d × 16) and the similarity kernel over them.
struct AnchorLanes: @unchecked Sendable {
    let packed: UnsafePointer<Float>
    let dimension: Int

    /// s for the 16 lanes against four rows: per lane one chain of d fused multiply-adds in k
    /// order, the same bits as `similarity` of each row alone.
    @inline(__always)
    func similarities(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>,
                      _ r3: UnsafePointer<Float>) -> (FloatVector, FloatVector, FloatVector, FloatVector) {
        let a = packed
        var s0 = FloatVector.zero, s1 = FloatVector.zero, s2 = FloatVector.zero, s3 = FloatVector.zero
        for k in 0..<dimension {
            let ak = loadVector(a + k * vectorWidth)
            s0 = s0.addingProduct(ak, r0[k])
            s1 = s1.addingProduct(ak, r1[k])
            s2 = s2.addingProduct(ak, r2[k])
            s3 = s3.addingProduct(ak, r3[k])
        }
        return (s0, s1, s2, s3)
    }

    @inline(__always)
    func similarity(_ r: UnsafePointer<Float>) -> FloatVector {
        var s = FloatVector.zero
        for k in 0..<dimension { s = s.addingProduct(loadVector(packed + k * vectorWidth), r[k]) }
        return s
    }
}

/// A group's state in a one-pass term: it is handed the 16 similarities of each reference row
/// it is shown, rows in increasing order.
protocol LaneStreamState {
    var lanes: AnchorLanes { get }
    /// The lanes' similarities `s` to row `row` of `segment`, column `column` of the loss.
    mutating func take(_ s: FloatVector, _ segment: ReferenceSegment, row: Int, column: Int)
}

extension LaneStreamState {
    /// Rows `rows` of `segment` (whose first row is column `firstColumn`), four at a time. With
    /// `prefetchRows`, the rows that far ahead of each four are requested as they are multiplied.
    @inline(__always)
    mutating func stream(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int, prefetchRows: Int?) {
        let d = lanes.dimension
        let ahead = prefetchRows ?? 0, prefetchLimit = prefetchRows == nil ? -1 : segment.count - ahead - 4
        var j = rows.lowerBound
        while j + 4 <= rows.upperBound {
            let r0 = segment.embeddings + j * d
            if j <= prefetchLimit { prefetchForReading(r0 + ahead * d, bytes: 4 * d * MemoryLayout<Float>.stride) }
            let (s0, s1, s2, s3) = lanes.similarities(r0, r0 + d, r0 + 2 * d, r0 + 3 * d)
            take(s0, segment, row: j, column: firstColumn + j)
            take(s1, segment, row: j + 1, column: firstColumn + j + 1)
            take(s2, segment, row: j + 2, column: firstColumn + j + 2)
            take(s3, segment, row: j + 3, column: firstColumn + j + 3)
            j += 4
        }
        while j < rows.upperBound {
            take(lanes.similarity(segment.embeddings + j * d), segment, row: j, column: firstColumn + j)
            j += 1
        }
    }

    /// The `count` rows of `segment` listed (increasing) in `listed`, four at a time, after a
    /// prefetch of all of them (a list is a few rows of a block).
    @inline(__always)
    mutating func stream(_ segment: ReferenceSegment, listed: UnsafePointer<Int32>, count: Int, firstColumn: Int) {
        let d = lanes.dimension, r = segment.embeddings
        for index in 0..<count { prefetchForReading(r + Int(listed[index]) * d, bytes: d * MemoryLayout<Float>.stride) }
        var index = 0
        while index + 4 <= count {
            let j0 = Int(listed[index]), j1 = Int(listed[index + 1]), j2 = Int(listed[index + 2]), j3 = Int(listed[index + 3])
            let (s0, s1, s2, s3) = lanes.similarities(r + j0 * d, r + j1 * d, r + j2 * d, r + j3 * d)
            take(s0, segment, row: j0, column: firstColumn + j0)
            take(s1, segment, row: j1, column: firstColumn + j1)
            take(s2, segment, row: j2, column: firstColumn + j2)
            take(s3, segment, row: j3, column: firstColumn + j3)
            index += 4
        }
        while index < count {
            let j = Int(listed[index])
            take(lanes.similarity(r + j * d), segment, row: j, column: firstColumn + j)
            index += 1
        }
    }
}

/// The lane labels and own columns of one anchor group, and the masks of a reference row.
struct LaneLabels {
    let labels: LabelVector, own: LabelVector
    /// Lanes that hold an anchor (the others are never a positive or a negative).
    let valid: SIMDMask<LabelVector>
    /// Anchors in the group (16 but in the last group).
    let count: Int

    init(group: Int, anchorCount: Int, anchorLabels: UnsafePointer<Int32>, ownIndex: UnsafePointer<Int32>?) {
        let first = group * vectorWidth
        count = min(vectorWidth, anchorCount - first)
        var labels = LabelVector(repeating: 0), own = LabelVector(repeating: -1)
        for lane in 0..<count {
            labels[lane] = anchorLabels[first + lane]
            own[lane] = ownIndex?[first + lane] ?? -1
        }
        self.labels = labels
        self.own = own
        valid = LabelVector(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) .< LabelVector(repeating: Int32(count))
    }

    /// The lanes for which reference `label` at `column` is a positive (same label, not the
    /// anchor's own entry) and those for which it is a negative (another label, not the own entry).
    @inline(__always)
    func pairs(label: Int32, column: Int) -> (positive: SIMDMask<LabelVector>, negative: SIMDMask<LabelVector>) {
        let same = labels .== LabelVector(repeating: label)
        let candidate = valid .& (own .!= LabelVector(repeating: Int32(truncatingIfNeeded: column)))
        return (candidate .& same, candidate .& .!same)
    }

    /// Lists in `listed` the rows of `rows` that are a positive of some lane; returns how many.
    @inline(__always)
    func listPositives(_ segment: ReferenceSegment, rows: Range<Int>, firstColumn: Int,
                       into listed: UnsafeMutablePointer<Int32>) -> Int {
        var count = 0
        for j in rows {
            listed[count] = Int32(truncatingIfNeeded: j)
            count += any(pairs(label: segment.labels[j], column: firstColumn + j).positive) ? 1 : 0
        }
        return count
    }
}

/// Bit `lane` set for each true lane of `mask`.
@inline(__always)
func laneBits(_ mask: SIMDMask<LabelVector>) -> UInt16 {
    let bits = LabelVector(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    return UInt16(truncatingIfNeeded: LabelVector.zero.replacing(with: bits, where: mask).wrappedSum())
}

/// The blocks of `blockRows` references the segments are cut into, in order: each with its
/// segment, its rows in the segment and the column of the segment's first row.
@inline(__always)
func forEachReferenceBlock(_ segments: [ReferenceSegment], blockRows: Int,
                           _ body: (_ segment: ReferenceSegment, _ rows: Range<Int>, _ firstColumn: Int) -> Void) {
    var column = 0
    for segment in segments {
        var start = 0
        while start < segment.count {
            let end = min(start + blockRows, segment.count)
            body(segment, start..<end, column)
            start = end
        }
        column += segment.count
    }
}

/// The reference at `column` of the concatenated segments: its row pointer and stamp (nil
/// without stamps).
func referenceRow(column: Int, of segments: [ReferenceSegment], dimension d: Int) -> (row: UnsafePointer<Float>, stamp: Int32?) {
    var first = 0
    for segment in segments {
        if column < first + segment.count {
            let j = column - first
            return (segment.embeddings + j * d, segment.stamps.map { $0[j] })
        }
        first += segment.count
    }
    preconditionFailure("column \(column) is beyond the \(first) references")
}

/// Float thresholds that decide a Double comparison exactly for every Float s:
/// s > t ⇔ Double(s) > bound, and s < u ⇔ Double(s) < bound. (The product path compares
/// Double(s) with bounds like min_p s_ip − μ; the lanes compare Floats.)
@inline(__always)
func floatThreshold(above bound: Double) -> Float {
    let f = Float(bound)
    return Double(f) > bound ? f.nextDown : f
}

@inline(__always)
func floatThreshold(below bound: Double) -> Float {
    let f = Float(bound)
    return Double(f) < bound ? f.nextUp : f
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
