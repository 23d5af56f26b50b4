import Collectives
import XBMKernels
// Docs/losses.md: the cross-batch memory, a FIFO ring buffer of the last M embeddings and labels.
//
// Letters: M capacity (rows), d embedding size, B rows per enqueue (the global batch).
//
// Layout: rows fill storage 0, 1, …, M−1 and then overwrite cyclically from 0, so
//   - count < M  ⇒ head == count and the valid rows are storage [0, count);
//   - count == M ⇒ every row is valid; the oldest is at head.
// Either way the loss can read the valid rows as ONE contiguous segment in storage order (a
// pair loss does not care about age), and the anchors' own entries sit at the storage
// positions the last enqueue returned. The age-ordered view is one or two contiguous pieces
// ([head, M) then [0, head)), like Deque's: a wrap never needs a copy.
//
// Ages: every row is stamped with the memory's `clock` when written (the trainer keeps the
// clock at the iteration whose model embeds the rows), so a row's age is clock − stamp in
// iterations: 0 for the batch just enqueued, ~(M/B − 1)/2 on average once full.

/// Errors of the cross-batch memory, each a one-line message naming the numbers involved.
public enum CrossBatchMemoryError: SameOnEveryRankError, Equatable {
    case batchLargerThanMemory(batch: Int, capacity: Int)
    case malformedSnapshot(String)

    public var description: String {
        switch self {
        case let .batchLargerThanMemory(batch, capacity):
            return "cross-batch memory of \(capacity) rows cannot hold a global batch of \(batch): use --xbm-size ≥ \(batch)"
        case let .malformedSnapshot(reason):
            return "cross-batch memory snapshot is malformed: \(reason)"
        }
    }
}

/// The memory's complete state as plain arrays, for checkpoints. Holds only the `count`
/// valid rows, in storage order.
public struct MemorySnapshot: Sendable, Equatable {
    /// (count, dimension)
    public var embeddings: [Float]
    /// (count)
    public var labels: [Int32]
    public var head: Int
    public var count: Int
    public var capacity: Int
    public var dimension: Int
    /// (count) the iteration each row was written at, or empty when unknown (restored rows
    /// are then stamped with the memory's clock: age 0).
    public var stamps: [Int32]
    /// (count) the dataset index of each row's sample (−1: unknown), or empty when unknown.
    public var samples: [Int32]

    public init(embeddings: [Float], labels: [Int32], head: Int, count: Int, capacity: Int, dimension: Int,
                stamps: [Int32] = [], samples: [Int32] = []) {
        self.embeddings = embeddings
        self.labels = labels
        self.head = head
        self.count = count
        self.capacity = capacity
        self.dimension = dimension
        self.stamps = stamps
        self.samples = samples
    }
}

/// A FIFO memory of the last `capacity` embeddings with their labels (Docs/losses.md).
///
/// Segments handed out point into the memory's own storage: they stay valid as long as the
/// memory lives, and their contents change with the next `enqueue` or `clear`.
/// Not thread-safe; every rank keeps its own replica, fed the same global batches.
public final class CrossBatchMemory {
    /// M
    public let capacity: Int
    /// d
    public let dimension: Int
    /// The storage row the next enqueued row goes to.
    public private(set) var head = 0
    /// Valid rows, 0…M. No label value means "empty": the count alone says which rows are valid.
    public private(set) var count = 0
    /// (M, d)
    private let embeddings: FlatBuffer<Float>
    /// (M)
    private let labels: FlatBuffer<Int32>
    /// (M) the clock when each row was written.
    private let stamps: FlatBuffer<Int32>
    /// (M) the dataset index of each row's sample, −1 when unknown (the drift measurement
    /// re-embeds rows from it).
    private let samples: FlatBuffer<Int32>
    /// Whether the memory keeps a bf16 copy of each row and a bound on its norm, written with the
    /// row, for the contrastive term's exact screening (Docs/losses.md); its segments then carry them.
    public let keepsLowPrecisionCopy: Bool
    /// (M, stride) the bf16 rows and (M) ρ_j ≥ ‖r_j‖; empty without `keepsLowPrecisionCopy`.
    private let lowPrecisionRows: FlatBuffer<UInt16>
    private let normBounds: FlatBuffer<Float>
    private let lowPrecisionStride: Int
    /// The iteration rows enqueued now belong to; enqueue stamps them with it (the trainer's
    /// step sets it; not part of the checksum or snapshot, the checkpoint's iteration is).
    public var clock = 0
    /// Where the last enqueued batch starts and how many rows it had.
    private var lastBatchStart = 0
    private var lastBatchCount = 0

    /// `lowPrecisionCopy`: keep the bf16 copy that exact screening reads (d ≤
    /// `ScreeningBound.maximumDimension`).
    public init(capacity: Int, dimension: Int, lowPrecisionCopy: Bool = false) {
        precondition(capacity >= 1, "cross-batch memory capacity must be at least 1, got \(capacity)")
        precondition(dimension >= 1, "cross-batch memory dimension must be at least 1, got \(dimension)")
        precondition(!lowPrecisionCopy || dimension <= ScreeningBound.maximumDimension,
                     "screening is proved for d ≤ \(ScreeningBound.maximumDimension), got d \(dimension): turn screening off")
        self.capacity = capacity
        self.dimension = dimension
        embeddings = FlatBuffer(count: capacity * dimension)
        labels = FlatBuffer(count: capacity)
        stamps = FlatBuffer(count: capacity)
        samples = FlatBuffer(count: capacity, initialValue: -1)
        keepsLowPrecisionCopy = lowPrecisionCopy
        lowPrecisionStride = BF16.stride(dimension: dimension)
        lowPrecisionRows = FlatBuffer(count: lowPrecisionCopy ? capacity * lowPrecisionStride : 0)
        normBounds = FlatBuffer(count: lowPrecisionCopy ? capacity : 0)
    }

    /// A memory restored from `snapshot()`; throws when the snapshot is inconsistent.
    public convenience init(snapshot: MemorySnapshot, lowPrecisionCopy: Bool = false) throws {
        guard snapshot.capacity >= 1, snapshot.dimension >= 1 else {
            throw CrossBatchMemoryError.malformedSnapshot(
                "capacity \(snapshot.capacity) and dimension \(snapshot.dimension) must be at least 1")
        }
        self.init(capacity: snapshot.capacity, dimension: snapshot.dimension, lowPrecisionCopy: lowPrecisionCopy)
        try restore(snapshot)
    }

    /// Replaces the contents with a snapshot of a memory of the same capacity and dimension
    /// (resuming a run); throws when the snapshot is inconsistent or of another shape.
    public func restore(_ snapshot: MemorySnapshot) throws {
        let M = snapshot.capacity, d = snapshot.dimension, n = snapshot.count
        guard M == capacity, d == dimension else {
            throw CrossBatchMemoryError.malformedSnapshot(
                "a snapshot of \(M) rows × \(d) cannot restore a memory of \(capacity) rows × \(dimension)")
        }
        guard n >= 0, n <= M else {
            throw CrossBatchMemoryError.malformedSnapshot("count \(n) outside 0...\(M)")
        }
        guard snapshot.head >= 0, snapshot.head < M, n == M || snapshot.head == n else {
            throw CrossBatchMemoryError.malformedSnapshot(
                "head \(snapshot.head) with count \(n) of \(M) (expected head == count until full)")
        }
        guard snapshot.embeddings.count == n * d, snapshot.labels.count == n else {
            throw CrossBatchMemoryError.malformedSnapshot(
                "\(snapshot.embeddings.count) embedding values and \(snapshot.labels.count) labels for \(n) rows of dimension \(d)")
        }
        guard snapshot.stamps.isEmpty || snapshot.stamps.count == n else {
            throw CrossBatchMemoryError.malformedSnapshot("\(snapshot.stamps.count) stamps for \(n) rows")
        }
        guard snapshot.samples.isEmpty || snapshot.samples.count == n else {
            throw CrossBatchMemoryError.malformedSnapshot("\(snapshot.samples.count) sample indices for \(n) rows")
        }
        embeddings.pointer.update(from: snapshot.embeddings, count: n * d)
        labels.pointer.update(from: snapshot.labels, count: n)
        if snapshot.stamps.isEmpty {
            stamps.pointer.update(repeating: Int32(clamping: clock), count: n)
        } else {
            stamps.pointer.update(from: snapshot.stamps, count: n)
        }
        if snapshot.samples.isEmpty {
            samples.pointer.update(repeating: -1, count: n)
        } else {
            samples.pointer.update(from: snapshot.samples, count: n)
        }
        writeLowPrecision(rows: 0..<n)
        head = snapshot.head
        count = n
        lastBatchStart = 0
        lastBatchCount = 0
    }

    /// Writes B rows over the oldest ones (in two pieces when they wrap past the end) and
    /// returns the storage position of the first row written; row i of the batch is then at
    /// (position + i) mod M (`storagePosition(ofLastBatchRow:)`).
    ///
    /// `rowSamples` are the rows' dataset indices (nil: unknown, −1).
    ///
    /// Throws when B > M: a batch cannot be compared against a memory that cannot hold it.
    @discardableResult
    public func enqueue(embeddings rows: UnsafePointer<Float>, labels rowLabels: UnsafePointer<Int32>,
                        samples rowSamples: UnsafePointer<Int32>? = nil, count B: Int) throws -> Int {
        precondition(B >= 0, "cannot enqueue a negative number of rows (\(B))")
        guard B <= capacity else { throw CrossBatchMemoryError.batchLargerThanMemory(batch: B, capacity: capacity) }
        let d = dimension, start = head
        let firstPiece = min(B, capacity - start)
        (embeddings.pointer + start * d).update(from: rows, count: firstPiece * d)
        (labels.pointer + start).update(from: rowLabels, count: firstPiece)
        embeddings.pointer.update(from: rows + firstPiece * d, count: (B - firstPiece) * d)
        labels.pointer.update(from: rowLabels + firstPiece, count: B - firstPiece)
        let stamp = Int32(clamping: clock)
        (stamps.pointer + start).update(repeating: stamp, count: firstPiece)
        stamps.pointer.update(repeating: stamp, count: B - firstPiece)
        if let rowSamples {
            (samples.pointer + start).update(from: rowSamples, count: firstPiece)
            samples.pointer.update(from: rowSamples + firstPiece, count: B - firstPiece)
        } else {
            (samples.pointer + start).update(repeating: -1, count: firstPiece)
            samples.pointer.update(repeating: -1, count: B - firstPiece)
        }
        writeLowPrecision(rows: start..<(start + firstPiece))
        writeLowPrecision(rows: 0..<(B - firstPiece))
        head = (start + B) % capacity
        count = min(count + B, capacity)
        lastBatchStart = start
        lastBatchCount = B
        return start
    }

    /// The storage position (= reference index in `referenceSegments`) of row i of the last
    /// enqueued batch: that anchor's own entry, which the memory loss excludes by index.
    public func storagePosition(ofLastBatchRow i: Int) -> Int {
        precondition(i >= 0 && i < lastBatchCount, "row \(i) is not in the last enqueued batch of \(lastBatchCount) rows")
        return (lastBatchStart + i) % capacity
    }

    /// The mean age (clock − stamp, in iterations) of the valid rows; 0 when empty.
    public var meanAge: Double {
        guard count > 0 else { return 0 }
        var stampSum = 0
        for k in 0..<count { stampSum += Int(stamps.pointer[k]) }
        return Double(count * clock - stampSum) / Double(count)
    }

    /// The valid rows in storage order, as the pair loss reads them: always storage
    /// [0, count), as one segment (none when empty).
    public var referenceSegments: [ReferenceSegment] {
        // Rebuilt only when the count changes (while filling), so the steady-state step
        // allocates nothing here.
        if cachedReferenceCount != count {
            cachedReferenceSegments = count == 0 ? [] : [segment(from: 0, count: count)]
            cachedReferenceCount = count
        }
        return cachedReferenceSegments
    }
    private var cachedReferenceSegments: [ReferenceSegment] = []
    private var cachedReferenceCount = 0

    /// The valid rows oldest first: one segment, or two when the ring has wrapped
    /// ([oldest, M) then [0, head)). No copying.
    public var fifoSegments: [ReferenceSegment] {
        guard count > 0 else { return [] }
        let oldest = (head - count + capacity) % capacity
        let firstPiece = min(count, capacity - oldest)
        var segments = [segment(from: oldest, count: firstPiece)]
        if firstPiece < count { segments.append(segment(from: 0, count: count - firstPiece)) }
        return segments
    }

    /// Forgets every row. Storage is zeroed too, so nothing stale survives.
    public func clear() {
        embeddings.zero()
        labels.zero()
        stamps.zero()
        samples.fill(-1)
        lowPrecisionRows.zero()
        normBounds.zero()
        head = 0
        count = 0
        lastBatchStart = 0
        lastBatchCount = 0
    }

    /// 64-bit FNV-1a over capacity, dimension, count, head, then the valid rows' embedding
    /// bits and labels in storage order: replicas on different ranks must agree bit for bit.
    public func checksum() -> UInt64 {
        var hash = FNV1a64()
        for word in [capacity, dimension, count, head] { hash.update(UInt64(word)) }
        hash.update(embeddings.pointer, count: count * dimension)
        hash.update(labels.pointer, count: count)
        return hash.value
    }

    /// The state as plain arrays (the valid rows only), for checkpoints.
    public func snapshot() -> MemorySnapshot {
        MemorySnapshot(embeddings: Array(UnsafeBufferPointer(start: embeddings.pointer, count: count * dimension)),
                       labels: Array(UnsafeBufferPointer(start: labels.pointer, count: count)),
                       head: head, count: count, capacity: capacity, dimension: dimension,
                       stamps: Array(UnsafeBufferPointer(start: stamps.pointer, count: count)),
                       samples: Array(UnsafeBufferPointer(start: samples.pointer, count: count)))
    }

    /// The storage rows of the `k` oldest rows by stamp whose samples are known (ties in
    /// storage order), oldest first: the rows `--xbm-refresh` re-embeds.
    public func oldestRows(_ k: Int) -> [Int] {
        let known = (0..<count).filter { samples.pointer[$0] >= 0 }
        return Array(known.sorted { (stamps.pointer[$0], $0) < (stamps.pointer[$1], $1) }.prefix(max(k, 0)))
    }

    /// Replaces storage row `row`'s embedding (d floats) and stamps it with the clock; its label
    /// and sample stay (the same sample, embedded again).
    public func overwrite(row: Int, embedding: UnsafePointer<Float>) {
        precondition(row >= 0 && row < count, "memory row \(row) outside the \(count) valid rows")
        (embeddings.pointer + row * dimension).update(from: embedding, count: dimension)
        writeLowPrecision(rows: row..<(row + 1))
        stamps.pointer[row] = Int32(clamping: clock)
    }

    /// Storage row `row` (< count): its embedding (d floats), stamp and sample index (−1: unknown).
    public func row(_ row: Int) -> (embedding: UnsafePointer<Float>, stamp: Int32, sample: Int32) {
        precondition(row >= 0 && row < count, "memory row \(row) outside the \(count) valid rows")
        return (UnsafePointer(embeddings.pointer + row * dimension), stamps.pointer[row], samples.pointer[row])
    }

    private func segment(from row: Int, count rows: Int) -> ReferenceSegment {
        let lowPrecision = keepsLowPrecisionCopy
            ? LowPrecisionRows(rows: lowPrecisionRows.pointer + row * lowPrecisionStride, stride: lowPrecisionStride,
                               normBounds: normBounds.pointer + row)
            : nil
        return ReferenceSegment(embeddings: UnsafePointer(embeddings.pointer + row * dimension),
                                labels: UnsafePointer(labels.pointer + row), count: rows,
                                stamps: UnsafePointer(stamps.pointer + row), lowPrecision: lowPrecision)
    }

    /// The bf16 copies and norm bounds of storage `rows`, from their fp32 rows (once per write).
    private func writeLowPrecision(rows: Range<Int>) {
        guard keepsLowPrecisionCopy else { return }
        let d = dimension
        for row in rows {
            let source = embeddings.pointer + row * d
            BF16.round(source, dimension: d, into: lowPrecisionRows.pointer + row * lowPrecisionStride)
            normBounds.pointer[row] = ScreeningBound.normBound(source, dimension: d)
        }
    }
}
