import Dispatch
import XBMKernels

// Exact k-nearest-neighbour retrieval by blocked matrix products (Docs/evaluation.md).
//
// Letters: Q queries, G gallery items, d embedding size, m queries per block, k the number of
// neighbours kept per query = max(largest K, largest R), capped at the admissible gallery.
// Similarity is the dot product (cosine for the unit-length embeddings the networks emit).
// Each block is one gemm S = Q_block · Gᵀ (m, G); then each row is reduced by `TopKSelection`
// to candidates that contain its k best (ties: higher similarity, then lower gallery index)
// and scored by a `RowScorer`, the rows spread over worker threads.

/// Exact retrieval evaluation; see `evaluate`.
public enum Retrieval {
    /// Recall@K cut-offs reported by default (as for Stanford Online Products).
    public static let defaultKs = [1, 10, 100, 1000]
    /// Queries per block: the similarity workspace is blockSize × G floats (≈ 51 MB for
    /// 256 × 50,000).
    public static let defaultBlockSize = 256

    /// Scores the queries `queryRange` (default: all) against the whole gallery and returns
    /// the sums of their metrics. Give each rank a disjoint range and allreduce the result to
    /// distribute an evaluation; `.metrics` gives percentages.
    ///
    /// - Parameters:
    ///   - queries: (Q, d) row major.
    ///   - gallery: (G, d) row major. With `sameSet`, the same matrix as `queries` (Q = G) and
    ///     query i is excluded from its own neighbours by index.
    ///   - ks: the Recall@K cut-offs, ascending; a K beyond the gallery means the whole gallery.
    ///   - blockSize: queries per matrix product; bounds memory at blockSize × G floats.
    ///   - threads: threads that select and score the rows of a block (default: the BLAS
    ///     thread count, which the products use); the result does not depend on it.
    /// A query whose label no other gallery item has (R = 0) is skipped from every metric and
    /// counted in `skippedQueries`.
    public static func evaluate(queries: UnsafePointer<Float>, queryLabels: [Int32],
                                gallery: UnsafePointer<Float>, galleryLabels: [Int32],
                                dimension d: Int, sameSet: Bool, ks: [Int] = defaultKs,
                                queryRange: Range<Int>? = nil,
                                blockSize: Int = defaultBlockSize, threads: Int? = nil) -> RetrievalAccumulator {
        let queryCount = queryLabels.count, galleryCount = galleryLabels.count
        let range = queryRange ?? 0..<queryCount
        precondition(d >= 1, "retrieval needs an embedding dimension ≥ 1, got \(d)")
        precondition(blockSize >= 1, "retrieval block size must be ≥ 1, got \(blockSize)")
        precondition(range.lowerBound >= 0 && range.upperBound <= queryCount,
                     "query range \(range) outside the \(queryCount) queries")
        precondition(!sameSet || queryCount == galleryCount,
                     "query set = gallery set needs equal counts, got \(queryCount) queries and \(galleryCount) gallery items")

        var accumulator = RetrievalAccumulator(ks: ks)
        let relevantCounts = relevantCountPerQuery(queryLabels: queryLabels, galleryLabels: galleryLabels,
                                                   range: range, sameSet: sameSet)
        let admissible = galleryCount - (sameSet ? 1 : 0)
        let k = min(max(ks.last!, relevantCounts.max() ?? 0), max(admissible, 0))
        guard !range.isEmpty else { return accumulator }

        let m = min(blockSize, range.count)
        let scores = FlatBuffer<Float>(count: m * galleryCount)       // (m, G)
        let workers = max(1, min(threads ?? BLASThreads.current, m))
        let scorers = (0..<workers).map { _ in RowScorer(capacity: k) }
        let rowScores = UnsafeMutableBufferPointer<QueryScore>.allocate(capacity: m)   // (m)
        rowScores.initialize(repeating: QueryScore(firstRelevantRank: .max, averagePrecision: 0, rPrecision: 0))
        defer { rowScores.deallocate() }

        var blockStart = range.lowerBound
        while blockStart < range.upperBound {
            let rows = min(m, range.upperBound - blockStart)
            gemm(.none, .transposed, m: rows, n: galleryCount, k: d,
                 a: queries + blockStart * d, lda: d, b: gallery, ldb: d,
                 c: scores.pointer, ldc: galleryCount)
            let job = BlockScoring(scores: scores.pointer, rows: rows, width: galleryCount, firstQuery: blockStart,
                                   rangeStart: range.lowerBound, sameSet: sameSet, relevantCounts: relevantCounts,
                                   queryLabels: queryLabels, galleryLabels: galleryLabels, scorers: scorers,
                                   rowScores: rowScores)
            if workers == 1 { job.run(worker: 0) } else { DispatchQueue.concurrentPerform(iterations: workers) { job.run(worker: $0) } }
            for row in 0..<rows {
                if relevantCounts[blockStart + row - range.lowerBound] == 0 { accumulator.addSkippedQuery() }
                else { accumulator.add(rowScores[row]) }
            }
            blockStart += rows
        }
        return accumulator
    }

    /// R for each query of `range`: gallery items with its label, minus itself when query set =
    /// gallery set.
    static func relevantCountPerQuery(queryLabels: [Int32], galleryLabels: [Int32],
                                      range: Range<Int>, sameSet: Bool) -> [Int] {
        var perLabel: [Int32: Int] = [:]
        for label in galleryLabels { perLabel[label, default: 0] += 1 }
        return range.map { max(0, (perLabel[queryLabels[$0]] ?? 0) - (sameSet ? 1 : 0)) }
    }
}

/// The scoring of one block's rows, shared by the worker threads. Worker w scores rows w,
/// w + workers, … with its own `RowScorer` and writes only those rows' slots of `rowScores`;
/// everything else is read-only while the workers run, hence the unchecked Sendable. The
/// slots are summed in row order afterwards, so the sums do not depend on the worker count.
private struct BlockScoring: @unchecked Sendable {
    let scores: UnsafePointer<Float>                  // (rows, width)
    let rows: Int, width: Int, firstQuery: Int, rangeStart: Int
    let sameSet: Bool
    let relevantCounts: [Int], queryLabels: [Int32], galleryLabels: [Int32]
    let scorers: [RowScorer]
    let rowScores: UnsafeMutableBufferPointer<QueryScore>

    func run(worker: Int) {
        for row in Swift.stride(from: worker, to: rows, by: scorers.count) {
            let query = firstQuery + row
            let relevantCount = relevantCounts[query - rangeStart]
            guard relevantCount > 0 else { continue }
            rowScores[row] = scorers[worker].score(row: scores + row * width, width: width, excluded: sameSet ? query : -1,
                                                   label: queryLabels[query], relevantCount: relevantCount,
                                                   galleryLabels: galleryLabels)
        }
    }
}
