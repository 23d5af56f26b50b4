import Collectives
import TestSupport
import XBMKernels
import XBMModel
import XBMTraining
import XCTest

/// The gradient the ranks assemble (each rank's anchors adding into every row of ∂L/∂E, then
/// one allreduce) is the gradient of the Docs/distributed.md objective: checked against central finite
/// differences of a Double brute-force evaluation of
///     L(E) = (1/B) Σ_i [ ℓ(e_i; E∖{i}) + w · ℓ(e_i; Mem∖{i}) ],  Mem constant.
/// Unlike the N-rank-versus-one-rank comparison, this catches an error made identically on
/// every rank count, such as dropping the reference-side gradient of the batch term.
final class CrossBatchObjectiveTests: XCTestCase {
    let B = 8, d = 6, M = 12
    let weight: Float = 0.7

    func testAssembledGradientIsTheObjectivesGradientOnAnyRankCount() throws {
        try checkAssembledGradient(kinds: [.npair, .multiSimilarity, .contrastive], olderRows: M - B)
    }

    /// The same with a memory that has wrapped: 10 older rows, then the batch's 8 overwrite
    /// the first 6 of them, so the ring's live rows are two segments (slots 6…11 and 0…5) and
    /// the batch's own rows sit on both sides of the seam. The contrastive one-pass kernel
    /// (`ContrastiveStream`) walks those segments itself.
    func testAssembledGradientWithAWrappedMemory() throws {
        try checkAssembledGradient(kinds: [.contrastive, .multiSimilarity], olderRows: 10)
    }

    /// `olderRows` earlier rows are enqueued before the batch; the memory keeps the newest
    /// M − B of them.
    private func checkAssembledGradient(kinds: [LossKind], olderRows: Int) throws {
        var random = RandomSource(seed: 3)
        let embeddings = randomUnitRows(count: B, dimension: d, random: &random)
        let labels: [Int32] = [0, 0, 1, 1, 2, 2, 3, 0]
        let older = randomUnitRows(count: olderRows, dimension: d, random: &random)   // earlier batches in memory
        let olderLabels = (0..<olderRows).map { Int32([1, 2, 3, 5][$0 % 4]) }
        let overwritten = olderRows - (M - B)     // the oldest rows, which the batch overwrites
        for kind in kinds {
            for reduction in MemoryReduction.allCases {
                let expected = finiteDifferenceGradient(kind, reduction, embeddings, labels, Array(older[(overwritten * d)...]),
                                                        Array(olderLabels[overwritten...]))
                for ranks in [1, 2, 4] {
                    let gradients = try SimulatedRanks.run(size: ranks) { [B, d, M, weight] comm -> [Float] in
                        let memory = CrossBatchMemory(capacity: M, dimension: d)
                        _ = try older.withUnsafeBufferPointer { e in
                            try olderLabels.withUnsafeBufferPointer { try memory.enqueue(embeddings: e.baseAddress!, labels: $0.baseAddress!, count: olderRows) }
                        }
                        _ = try embeddings.withUnsafeBufferPointer { e in
                            try labels.withUnsafeBufferPointer { try memory.enqueue(embeddings: e.baseAddress!, labels: $0.baseAddress!, count: B) }
                        }
                        let objective = CrossBatchObjective(loss: makePairLoss(kind), memoryWeight: weight, memoryReduction: reduction,
                                                            globalBatch: B, rank: comm.rank, ranks: comm.size)
                        var gradient = [Float](repeating: 0, count: B * d)
                        embeddings.withUnsafeBufferPointer { e in
                            labels.withUnsafeBufferPointer { l in
                                gradient.withUnsafeMutableBufferPointer { g in
                                    _ = objective.accumulate(embeddings: e.baseAddress!, labels: l.baseAddress!, dimension: d,
                                                             memory: memory, gradient: g.baseAddress!)
                                }
                            }
                        }
                        try comm.allreduceSum(&gradient)
                        return gradient
                    }
                    let scale = expected.map(abs).max()!
                    XCTAssertGreaterThan(scale, 1e-3, "vacuous: zero gradient")
                    for (rank, gradient) in gradients.enumerated() {
                        for k in 0..<(B * d) {
                            // Float32 similarities (rounding 6e-8 relative) amplified by the
                            // losses' exponentials (β = 40 for multi-similarity, 1/τ = 10 for
                            // npair): 1e-4 of the largest component bounds that comfortably.
                            XCTAssertEqual(Double(gradient[k]), expected[k], accuracy: 1e-4 * scale,
                                           "\(kind) \(reduction) \(ranks) ranks, rank \(rank), component \(k)")
                        }
                    }
                }
            }
        }
    }

    /// Central differences of the brute-force objective in Double. The memory holds the older
    /// rows followed by the current batch (slots M−B…M−1) as constants; anchor i's own slot
    /// there is excluded by index.
    private func finiteDifferenceGradient(_ kind: LossKind, _ reduction: MemoryReduction, _ embeddings: [Float], _ labels: [Int32],
                                          _ older: [Float], _ olderLabels: [Int32]) -> [Double] {
        let memoryRows = (older + embeddings).map(Double.init)
        let memoryLabels = olderLabels + labels
        let batchOwn = (0..<B).map(Int32.init)
        let memoryOwn = (0..<B).map { Int32(M - B + $0) }
        func objective(_ e: [Double]) -> Double {
            let batch = BruteForcePairLoss.value(kind, options: LossOptions(), reduction: .sum, anchors: e, anchorLabels: labels,
                                                 references: e, referenceLabels: labels, ownIndex: batchOwn, dimension: d)
            // `scaled` is the summed term times B / (rows in the memory) = 8 / 12 here.
            let memory = BruteForcePairLoss.value(kind, options: LossOptions(), reduction: reduction == .mean ? .mean : .sum,
                                                  anchors: e, anchorLabels: labels, references: memoryRows,
                                                  referenceLabels: memoryLabels, ownIndex: memoryOwn, dimension: d)
                * (reduction == .scaled ? Double(B) / Double(M) : 1)
            return (batch + Double(weight) * memory) / Double(B)
        }
        let base = embeddings.map(Double.init), h = 1e-6
        return (0..<(B * d)).map { k in
            var plus = base, minus = base
            plus[k] += h
            minus[k] -= h
            return (objective(plus) - objective(minus)) / (2 * h)
        }
    }
}
