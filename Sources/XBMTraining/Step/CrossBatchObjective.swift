import XBMData
import XBMKernels
import XBMModel
/// The loss of Docs/distributed.md for the anchors of one rank, and its gradient with respect to the
/// gathered global batch:
///
///     L = (1/B) Σ_i [ ℓ(e_i; E∖{i}) + w · ℓ(e_i; Mem∖{i}) ]
///
/// over the B anchors of the global batch, of which this rank owns rows [r·b, (r+1)·b).
/// The batch term depends on E twice — as anchor and as reference — so this rank's anchors
/// add into every row of ∂L/∂E; summing the ranks' contributions (one allreduce) gives the
/// exact gradient. The memory is a constant: its term adds into the anchor rows only.
/// How the memory term ℓ(e_i; Mem∖{i}) is reduced over its pairs (`--xbm-reduce`). With R the
/// rows the memory holds and B the global batch:
///
///     sum     the paper's: every active pair adds its full term, so the term grows with the
///             number of active pairs, i.e. with R (thousands of active negatives early on).
///     mean    each anchor's positive part and negative part divided by the number of pairs
///             active in it (at least 1): a push of at most 1 each, however many are active.
///     scaled  sum · B / R: the memory weighs as much as one batch of references would, so each
///             active pair still counts — more hard negatives, more push — but the term no
///             longer grows with the memory's size.
///
/// Gradients follow: ∂/∂s_ij of `scaled` is B/R times that of `sum`.
public enum MemoryReduction: String, Sendable, CaseIterable, Codable {
    case sum, mean, scaled

    /// The per-anchor reduction the loss applies, and the factor on top of it for `rows` = R.
    func pairReduction(globalBatch: Int, rows: Int) -> (PairReduction, Float) {
        switch self {
        case .sum: (.sum, 1)
        case .mean: (.mean, 1)
        case .scaled: (.sum, Float(globalBatch) / Float(max(rows, 1)))
        }
    }
}

public final class CrossBatchObjective {
    /// What `accumulate` computed for this rank's anchors.
    public struct Sums: Sendable {
        /// Σ ℓ of the batch term and of the memory term (not yet divided by B).
        public var batch: Double
        public var memory: Double
        /// The pairs of each term (Docs/losses.md, Diagnostics); nil when the memory term did
        /// not run. The memory's ages are measured at `memory.clock`.
        public var batchStatistics: PairStatistics
        public var memoryStatistics: PairStatistics?
    }

    public let loss: PairLoss
    public let memoryWeight: Float
    public let memoryReduction: MemoryReduction
    public let globalBatch: Int   // B
    /// This rank's anchors: rows [r·b, (r+1)·b) of the global batch.
    public let rows: Range<Int>
    private let batchOwnIndex: FlatBuffer<Int32>    // (b) row of each anchor in E
    private let memoryOwnIndex: FlatBuffer<Int32>   // (b) memory slot of each anchor
    /// The global batch as the loss's one reference segment, kept so that the steady-state
    /// step builds no array.
    private var batchReferences: [ReferenceSegment] = []
    /// `--deterministic`: this rank's anchors in this many chunks (nil: one evaluation each).
    public let chunks: Int?
    /// (B) 0..<B, the own index of every anchor of the global batch (chunked only).
    private let everyRowIndex: FlatBuffer<Int32>

    public init(loss: PairLoss, memoryWeight: Float, memoryReduction: MemoryReduction,
                globalBatch: Int, rank: Int, ranks: Int, chunks: Int? = nil) {
        self.loss = loss
        self.memoryWeight = memoryWeight
        self.memoryReduction = memoryReduction
        self.globalBatch = globalBatch
        self.chunks = chunks
        rows = GlobalBatch.localRows(rank: rank, ranks: ranks, batchSize: globalBatch)
        precondition(rows.count % (chunks ?? 1) == 0, "\(rows.count) anchors are not \(chunks ?? 1) equal chunks")
        batchOwnIndex = FlatBuffer(count: rows.count, initialValue: -1)
        memoryOwnIndex = FlatBuffer(count: rows.count, initialValue: -1)
        for (i, row) in rows.enumerated() { batchOwnIndex[i] = Int32(row) }
        everyRowIndex = FlatBuffer(count: chunks == nil ? 0 : globalBatch, initialValue: 0)
        for i in 0..<everyRowIndex.count { everyRowIndex[i] = Int32(i) }
    }

    /// One chunk's memory term: Σ ℓ over its anchors, then its `PairStatistics` sums.
    public static let chunkRecordCount = 1 + PairStatistics.floatCount

    /// `--deterministic` (Docs/distributed.md, "Deterministic training"): the same loss as
    /// `accumulate`, computed so that no value depends on how the global batch is split.
    ///
    /// - The batch term is evaluated for all B anchors on every rank (B × B pairs, a small
    ///   part of the step), so every rank computes the whole of ∂L/∂E's batch part itself, in
    ///   the order one rank would, and no sum over ranks is needed for it.
    /// - The memory term touches only its anchors' rows. A one-pass kernel
    ///   (`memoryTermIsPerAnchor`) takes all of this rank's anchors at once, since each anchor's
    ///   results are its own; the product path runs per chunk, so that its products have the
    ///   same shape on any number of ranks (BLAS picks its kernels by shape, and OpenBLAS'
    ///   small-matrix kernels round differently). Each chunk's Σ ℓ and pair statistics go to
    ///   `records` (`chunks` rows of `chunkRecordCount`), which the caller gathers from every
    ///   rank and adds in chunk order.
    ///
    /// Returns the batch term's Σ ℓ over all B anchors and its statistics (the same on every
    /// rank); the memory fields of the result are those of this rank's chunks alone.
    public func accumulateChunked(embeddings: UnsafePointer<Float>, labels: UnsafePointer<Int32>, dimension d: Int,
                                  memory: CrossBatchMemory?, memoryReferences: [ReferenceSegment]? = nil,
                                  gradient: UnsafeMutablePointer<Float>, records: UnsafeMutablePointer<Double>) -> Sums {
        guard let chunks else { preconditionFailure("accumulateChunked needs an objective made with chunks") }
        let B = globalBatch, first = rows.lowerBound, scale = 1 / Float(B)
        if batchReferences.first?.embeddings != embeddings || batchReferences.first?.labels != labels {
            batchReferences = [ReferenceSegment(embeddings: embeddings, labels: labels, count: B)]
        }
        let batchInput = PairLossInput(anchors: embeddings, anchorLabels: labels, anchorCount: B, dimension: d,
                                       references: batchReferences, ownIndex: everyRowIndex.pointer)
        let batchSum = loss.evaluate(batchInput, reduction: .sum, scale: scale, anchorGradient: gradient, referenceGradient: gradient)
        let batchStatistics = loss.statistics
        records.update(repeating: 0, count: chunks * Self.chunkRecordCount)

        guard let memory, memory.count > 0, memoryWeight > 0 else {
            return Sums(batch: batchSum, memory: 0, batchStatistics: batchStatistics, memoryStatistics: nil)
        }
        for (i, row) in rows.enumerated() { memoryOwnIndex[i] = Int32(memory.storagePosition(ofLastBatchRow: row)) }
        let (reduction, factor) = memoryReduction.pairReduction(globalBatch: B, rows: memory.count)
        let size = rows.count / chunks
        // Per-anchor kernels take all of this rank's anchors at once; products run per chunk, so
        // that every product has the same shape on any number of ranks.
        let evaluated = loss.memoryTermIsPerAnchor ? rows.count : size
        var memorySum = 0.0, memoryStatistics = PairStatistics()
        for start in stride(from: 0, to: rows.count, by: evaluated) {
            let anchors = start..<start + evaluated
            var input = PairLossInput(
                anchors: embeddings + (first + anchors.lowerBound) * d, anchorLabels: labels + first + anchors.lowerBound,
                anchorCount: anchors.count, dimension: d, references: memoryReferences ?? memory.referenceSegments,
                ownIndex: memoryOwnIndex.pointer + anchors.lowerBound)
            input.now = memory.clock
            _ = loss.evaluate(input, reduction: reduction, scale: scale * memoryWeight * factor,
                              anchorGradient: gradient + (first + anchors.lowerBound) * d, referenceGradient: nil)
            for j in anchors.lowerBound / size..<anchors.upperBound / size {
                let (sum, statistics) = loss.sums(ofAnchors: j * size - anchors.lowerBound..<(j + 1) * size - anchors.lowerBound)
                let record = records + j * Self.chunkRecordCount
                record[0] = sum * Double(factor)
                statistics.write(to: record + 1)
                memorySum += record[0]
                memoryStatistics = memoryStatistics + statistics
            }
        }
        return Sums(batch: batchSum, memory: memorySum, batchStatistics: batchStatistics, memoryStatistics: memoryStatistics)
    }

    /// Adds this rank's share of ∂L/∂E into `gradient` (B, d) and returns the sums of ℓ over
    /// its anchors (not yet divided by B) with the pair statistics of its anchors. `memory`,
    /// when given, already holds this global batch as its last enqueued one; the memory term
    /// reads `memoryReferences` instead of its rows when given (the drift-compensated rows, in
    /// the memory's storage order).
    public func accumulate(embeddings: UnsafePointer<Float>, labels: UnsafePointer<Int32>, dimension d: Int,
                           memory: CrossBatchMemory?, memoryReferences: [ReferenceSegment]? = nil,
                           gradient: UnsafeMutablePointer<Float>) -> Sums {
        let b = rows.count, B = globalBatch, first = rows.lowerBound
        let anchors = embeddings + first * d
        let anchorLabels = labels + first
        let anchorGradient = gradient + first * d
        let scale = 1 / Float(B)

        if batchReferences.first?.embeddings != embeddings || batchReferences.first?.labels != labels {
            batchReferences = [ReferenceSegment(embeddings: embeddings, labels: labels, count: B)]
        }
        let batchInput = PairLossInput(
            anchors: anchors, anchorLabels: anchorLabels, anchorCount: b, dimension: d,
            references: batchReferences, ownIndex: batchOwnIndex.pointer)
        let batchSum = loss.evaluate(batchInput, reduction: .sum, scale: scale,
                                     anchorGradient: anchorGradient, referenceGradient: gradient)

        let batchStatistics = loss.statistics

        guard let memory, memory.count > 0, memoryWeight > 0 else {
            return Sums(batch: batchSum, memory: 0, batchStatistics: batchStatistics, memoryStatistics: nil)
        }
        for (i, row) in rows.enumerated() { memoryOwnIndex[i] = Int32(memory.storagePosition(ofLastBatchRow: row)) }
        var memoryInput = PairLossInput(
            anchors: anchors, anchorLabels: anchorLabels, anchorCount: b, dimension: d,
            references: memoryReferences ?? memory.referenceSegments, ownIndex: memoryOwnIndex.pointer)
        memoryInput.now = memory.clock
        let (reduction, factor) = memoryReduction.pairReduction(globalBatch: B, rows: memory.count)
        let memorySum = loss.evaluate(memoryInput, reduction: reduction, scale: scale * memoryWeight * factor,
                                      anchorGradient: anchorGradient, referenceGradient: nil)
        return Sums(batch: batchSum, memory: memorySum * Double(factor), batchStatistics: batchStatistics, memoryStatistics: loss.statistics)
    }
}
