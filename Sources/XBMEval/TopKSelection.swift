// Partial selection of the k best entries of one similarity row, without sorting the row.
//
// Order ("better first"): higher similarity first; among equal similarities, the lower
// gallery index first. NaN similarities rank as −∞ and −0 as +0, so the order is total and
// a non-finite embedding cannot reorder the finite ones (Docs/evaluation.md).
//
// Each candidate is one UInt64 key, (order-preserving bits of the similarity) << 32 |
// (UInt32.max − gallery index), so "better" is plain integer `>` and every key is distinct.

/// Collects, from one row, a set of candidates that contains the k best entries and, with
/// each of those, every entry better than it; so among the candidates the R best (R ≤ k) are
/// the row's R best, and the rank of a top-k entry is one plus the candidates better than it.
///
/// Candidates pass a similarity threshold into a buffer of 4k keys; when the buffer fills, a
/// quickselect keeps the k best and raises the threshold to the k-th best similarity. Rows
/// are scanned in ascending gallery index, so a later entry whose similarity equals the
/// threshold ranks after the k-th kept one: admission is `similarity > threshold`, tested 32
/// entries at a time (within a step, the threshold of its start: a superset). The first
/// threshold comes from a strided sample of the row (about 1.5k entries expected above it);
/// if fewer than k entries pass it, the row is scanned again with none. So the cost is one
/// vector compare per entry plus work on about 2k candidates.
struct TopKSelection {
    let capacity: Int                 // k
    private var keys: [UInt64]        // (4k + 32) candidate buffer
    private(set) var count = 0        // candidates after `scan`: ≥ min(k, admissible entries)

    init(capacity: Int) {
        precondition(capacity >= 0, "top-k capacity must be non-negative, got \(capacity)")
        self.capacity = capacity
        keys = [UInt64](repeating: 0, count: max(4 * capacity, 64) + 32)   // + 32: slack of the vector scan
    }

    /// The order key of (similarity, gallery index); larger is better.
    @inline(__always)
    static func key(similarity: Float, index: Int) -> UInt64 {
        let value = similarity.isNaN ? -Float.infinity : similarity + 0   // −0 + 0 = +0
        let bits = value.bitPattern
        let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        return UInt64(ordered) << 32 | UInt64(UInt32.max - UInt32(truncatingIfNeeded: index))
    }

    @inline(__always)
    static func index(ofKey key: UInt64) -> Int { Int(UInt32.max - UInt32(truncatingIfNeeded: key)) }

    @inline(__always)
    static func similarity(ofKey key: UInt64) -> Float {
        let ordered = UInt32(truncatingIfNeeded: key >> 32)
        return Float(bitPattern: ordered & 0x8000_0000 != 0 ? ordered & 0x7FFF_FFFF : ~ordered)
    }

    /// The candidates of the last `scan`, unordered.
    var candidates: ArraySlice<UInt64> { keys[0..<count] }

    /// Collects the candidates of `row[0..<width]` (gallery indices 0..<width), skipping the
    /// gallery index `excluded` (the query itself when query set = gallery set, else −1).
    mutating func scan(row: UnsafePointer<Float>, width: Int, excluded: Int) {
        precondition(width < Int(UInt32.max), "gallery of \(width) items exceeds the 32-bit index of a key")
        count = 0
        guard capacity > 0 else { return }
        if let threshold = sampledThreshold(row: row, width: width, excluded: excluded),
           collect(row: row, width: width, excluded: excluded, threshold: threshold) {
            return
        }
        _ = collect(row: row, width: width, excluded: excluded, threshold: nil)
    }

    /// The similarity of the m-th best of every `stride`-th entry of the row, m about
    /// 1.5k / stride + 8; nil when the row is too short for a sample to help.
    private mutating func sampledThreshold(row: UnsafePointer<Float>, width: Int, excluded: Int) -> Float? {
        let stride = max(64, width / keys.count + 1)           // the sample fits the buffer
        let wanted = (3 * capacity / 2) / stride + 8
        guard (width + stride - 1) / stride >= 4 * wanted else { return nil }
        return keys.withUnsafeMutableBufferPointer { buffer in
            let keys = buffer.baseAddress!
            var filled = 0
            for j in Swift.stride(from: 0, to: width, by: stride) where j != excluded {
                keys[filled] = Self.key(similarity: row[j], index: j)
                filled += 1
            }
            Self.selectLargest(wanted, of: keys, count: filled)
            return Self.similarity(ofKey: Self.smallest(keys, wanted))
        }
    }

    /// Collects the entries above `threshold` (all entries when nil), compacting the buffer to
    /// the k best whenever it fills. Returns false when fewer than k entries passed a given
    /// threshold (the k best are then not all collected).
    private mutating func collect(row: UnsafePointer<Float>, width: Int, excluded: Int, threshold initial: Float?) -> Bool {
        let k = capacity
        let (filled, admitted) = keys.withUnsafeMutableBufferPointer { buffer in
            Self.collect(row: row, width: width, excluded: excluded, threshold: initial, k: k,
                         keys: buffer.baseAddress!, limit: buffer.count - 32)
        }
        if initial != nil && admitted < k { return false }
        count = filled
        return true
    }

    /// The loop of `collect` over plain locals. Returns (keys in the buffer, keys admitted).
    /// `limit` leaves 32 slots of slack at the end of `keys` for a step's admissions.
    private static func collect(row: UnsafePointer<Float>, width: Int, excluded: Int, threshold initial: Float?,
                                k: Int, keys: UnsafeMutablePointer<UInt64>, limit: Int) -> (Int, Int) {
        var filled = 0, dropped = 0, j = 0
        var threshold = initial ?? -.infinity
        // Cuts a full buffer to its k best and raises the threshold to the k-th best.
        @inline(__always) func compact() {
            selectLargest(k, of: keys, count: filled)
            dropped += filled - k
            filled = k
            threshold = similarity(ofKey: smallest(keys, k))
        }
        if initial == nil {
            // No threshold yet: every entry is a candidate until the buffer first fills.
            while filled < limit && j < width {
                if j != excluded { keys[filled] = key(similarity: row[j], index: j); filled += 1 }
                j += 1
            }
            if filled == limit { compact() }
        }
        // 32 entries per step, as four 8-wide vector compares (SIMD8 is two SSE registers on
        // baseline x86-64); in a step with entries above the threshold only those (the set
        // bits of the compares) are visited. The splat is rebuilt only when the threshold
        // moves: built inside the loop, it compiles to a lane-by-lane loop.
        var thresholds = SIMD8<Float>(repeating: threshold)
        while j + 32 <= width {
            let chunk = UnsafeRawPointer(row + j)
            let above0 = chunk.loadUnaligned(as: SIMD8<Float>.self) .> thresholds          // NaN is never above
            let above1 = chunk.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) .> thresholds
            let above2 = chunk.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self) .> thresholds
            let above3 = chunk.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self) .> thresholds
            if any(above0 .| above1 .| above2 .| above3) {
                var bits = laneBits(above0) | laneBits(above1) << 8 | laneBits(above2) << 16 | laneBits(above3) << 24
                while bits != 0 {
                    let t = j + bits.trailingZeroBitCount
                    bits &= bits - 1
                    keys[filled] = key(similarity: row[t], index: t)
                    filled += t != excluded ? 1 : 0
                }
                if filled > limit - 32 { compact(); thresholds = SIMD8<Float>(repeating: threshold) }
            }
            j += 32
        }
        while j < width {
            if row[j] > threshold && j != excluded {
                keys[filled] = key(similarity: row[j], index: j)
                filled += 1
                if filled > limit - 32 { compact() }
            }
            j += 1
        }
        return (filled, filled + dropped)
    }

    /// Bit i set when lane i of `mask` is true.
    @inline(__always)
    private static func laneBits(_ mask: SIMDMask<SIMD8<Int32>>) -> UInt32 {
        UInt32(truncatingIfNeeded: SIMD8<Int32>(repeating: 0).replacing(with: SIMD8(1, 2, 4, 8, 16, 32, 64, 128), where: mask).wrappedSum())
    }

    /// The smallest of keys[0..<n].
    private static func smallest(_ keys: UnsafeMutablePointer<UInt64>, _ n: Int) -> UInt64 {
        var worst = keys[0]
        for i in 1..<n where keys[i] < worst { worst = keys[i] }
        return worst
    }

    /// Quickselect: reorders keys[0..<count] so that its `k` largest occupy [0, k), unordered.
    static func selectLargest(_ k: Int, of keys: UnsafeMutablePointer<UInt64>, count: Int) {
        var low = 0, high = count - 1                    // the boundary k lies in [low, high]
        while low < high {
            // Median of three as pivot, then Hoare partition into > pivot | < pivot (keys are distinct).
            let middle = low + (high - low) / 2
            let a = keys[low], b = keys[middle], c = keys[high]
            let pivot = max(min(a, b), min(max(a, b), c))
            var i = low, j = high
            while i <= j {
                while keys[i] > pivot { i += 1 }
                while keys[j] < pivot { j -= 1 }
                if i <= j { (keys[i], keys[j]) = (keys[j], keys[i]); i += 1; j -= 1 }
            }
            // Now [low, j] ≥ pivot ≥ [i, high], with j < i.
            if k - 1 <= j { high = j } else if k - 1 >= i { low = i } else { return }
        }
    }

    /// Writes the `length` best candidates, best first, into best[0..<length]
    /// (length ≤ count). Short lists by insertion behind a threshold, long ones by quickselect
    /// and sort.
    func best(_ length: Int, into best: UnsafeMutablePointer<UInt64>) {
        precondition(length <= count, "asked for the \(length) best of \(count) candidates")
        guard length > 0 else { return }
        if length > 64 {
            var copy = Array(keys[0..<count])
            copy.withUnsafeMutableBufferPointer { Self.selectLargest(length, of: $0.baseAddress!, count: count) }
            copy[0..<length].sort(by: >)
            for i in 0..<length { best[i] = copy[i] }
            return
        }
        var filled = 0
        for key in keys[0..<count] where filled < length || key > best[length - 1] {
            var slot = min(filled, length - 1)           // shift worse keys down, drop the last
            while slot > 0 && best[slot - 1] < key { best[slot] = best[slot - 1]; slot -= 1 }
            best[slot] = key
            filled = min(filled + 1, length)
        }
    }
}
