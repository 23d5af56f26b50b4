import XBMKernels

/// Drift compensation by moment matching (`--xbm-compensate moments`; Docs/losses.md, "Drift
/// compensation"; after Adaptive Cross Batch Normalization, arXiv 2303.17127): a memory row
/// written at iteration τ was embedded by the model of τ, and the model has moved since. Each
/// row is mapped from its model's statistics to the current model's, per dimension k:
///
///     x̃_k = (x_k − μ_τ,k) · σ_now,k / σ_τ,k + μ_now,k,      then x̃ ← x̃ / ‖x̃‖
///
/// where μ_τ, σ_τ are the mean and standard deviation of the memory rows stamped within
/// `window` iterations of τ ([τ − W, τ + W]: several batches, so that the 16 classes of one
/// batch do not pass for a drift), and μ_now, σ_now those of the rows stamped in
/// [now − W, now], now being the newest stamp (the batch just enqueued). Rows of the current
/// window map to themselves, up to rounding. σ below 1e-6 is taken as 1e-6.
///
/// The stored rows are left as they are (a correction is not compounded step after step): the
/// compensated rows are written to a workspace the memory term reads instead. Everything is
/// computed from the memory's rows and stamps in storage order, with Double sums, so every
/// replica gets the same bits on any number of ranks, and a resumed run (whose checkpoint holds
/// rows and stamps) the same as the uninterrupted one. Cost: three passes over the M × d rows.
public final class MomentMatching {
    /// W, in iterations.
    public let window: Int
    /// (M, d) the compensated rows, in the memory's storage order.
    private var workspace = FlatBuffer<Float>(count: 0)
    private var segments: [ReferenceSegment] = []

    public init(window: Int) {
        precondition(window >= 0, "moment matching window must be non-negative, got \(window)")
        self.window = window
    }

    /// The memory's valid rows compensated, as one reference segment in storage order (with
    /// the memory's labels and stamps), valid until the next call. Empty for an empty memory.
    public func compensated(_ memory: CrossBatchMemory) -> [ReferenceSegment] {
        let n = memory.count, d = memory.dimension
        guard n > 0, let stored = memory.referenceSegments.first, let stampsOfRows = stored.stamps else { return [] }
        if workspace.count < memory.capacity * d { workspace = FlatBuffer(count: memory.capacity * d) }

        // Per stamp, in increasing stamp order: Σx, Σx² per dimension and the row count.
        var stampIndex: [Int32: Int] = [:]
        for row in 0..<n where stampIndex[stampsOfRows[row]] == nil { stampIndex[stampsOfRows[row]] = 0 }
        let stamps = stampIndex.keys.sorted()
        for (index, stamp) in stamps.enumerated() { stampIndex[stamp] = index }
        let groups = stamps.count
        var sums = [Double](repeating: 0, count: groups * 2 * d), counts = [Int](repeating: 0, count: groups)
        for row in 0..<n {
            let g = stampIndex[stampsOfRows[row]]!, x = stored.embeddings + row * d
            counts[g] += 1
            for k in 0..<d {
                let v = Double(x[k])
                sums[g * 2 * d + k] += v
                sums[g * 2 * d + d + k] += v * v
            }
        }

        // Mean and standard deviation over the groups whose stamps lie in [low, high].
        var windowSums = [Double](repeating: 0, count: 2 * d)
        func moments(from first: Int, through last: Int) -> (mean: [Double], deviation: [Double]) {
            windowSums.withUnsafeMutableBufferPointer { w in
                w.update(repeating: 0)
                for g in first...last { for k in 0..<(2 * d) { w[k] += sums[g * 2 * d + k] } }
            }
            let count = Double((first...last).reduce(0) { $0 + counts[$1] })
            let mean = (0..<d).map { windowSums[$0] / count }
            // The variance as E[x²] − E[x]² can round below 0: clamp before the root.
            let deviation = (0..<d).map { k in max(max(windowSums[d + k] / count - mean[k] * mean[k], 0).squareRoot(), 1e-6) }
            return (mean, deviation)
        }
        let newest = Int(stamps[groups - 1])
        let nowFirst = stamps.firstIndex { Int($0) >= newest - window }!
        let now = moments(from: nowFirst, through: groups - 1)

        // Each group's transform x ↦ x · scale + shift, (groups, d) each, then the rows.
        var first = 0, last = 0
        var scale = [Double](repeating: 0, count: groups * d), shift = [Double](repeating: 0, count: groups * d)
        for g in 0..<groups {
            let tau = Int(stamps[g])
            while Int(stamps[first]) < tau - window { first += 1 }
            while last + 1 < groups, Int(stamps[last + 1]) <= tau + window { last += 1 }
            let then = moments(from: first, through: last)
            for k in 0..<d {
                scale[g * d + k] = now.deviation[k] / then.deviation[k]
                shift[g * d + k] = now.mean[k] - then.mean[k] * scale[g * d + k]
            }
        }
        let out = workspace.pointer
        var row = [Double](repeating: 0, count: d)
        for r in 0..<n {
            let g = stampIndex[stampsOfRows[r]]!, x = stored.embeddings + r * d
            var squared = 0.0
            for k in 0..<d {
                row[k] = Double(x[k]) * scale[g * d + k] + shift[g * d + k]
                squared += row[k] * row[k]
            }
            let inverse = squared > 0 ? 1 / squared.squareRoot() : 0
            for k in 0..<d { out[r * d + k] = Float(row[k] * inverse) }
        }
        if segments.first?.embeddings != UnsafePointer(out) || segments.first?.count != n {
            segments = [ReferenceSegment(embeddings: UnsafePointer(out), labels: stored.labels, count: n, stamps: stampsOfRows)]
        }
        return segments
    }
}
