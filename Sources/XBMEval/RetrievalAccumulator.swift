import Collectives

/// Running sums of the retrieval metrics over a set of queries (Docs/evaluation.md), kept as one flat
/// `[Double]` so that ranks which each scored a range of queries combine them with a single
/// allreduce-sum; `metrics` turns the sums into percentages.
///
/// Layout of `sums` (m = ks.count):
///   [0 ..< m]  hits at each K of `ks`        (queries whose top-K holds a relevant item)
///   [m]        Σ AP@R                         (each in [0, 1], rounded to 2⁻³²: `onGrid`)
///   [m + 1]    Σ R-precision                  (each in [0, 1], likewise)
///   [m + 2]    scored queries                 (queries with R ≥ 1)
///   [m + 3]    skipped queries                (R = 0: no other gallery item shares the label)
public struct RetrievalAccumulator: Sendable, Equatable {
    /// The cut-offs of Recall@K, ascending and distinct.
    public let ks: [Int]
    /// The flat sums described above; allreduce-sum them across ranks.
    public var sums: [Double]

    public init(ks: [Int]) {
        precondition(!ks.isEmpty, "Recall@K needs at least one K")
        precondition(ks.allSatisfy { $0 >= 1 }, "every K of Recall@K must be at least 1, got \(ks)")
        precondition(zip(ks, ks.dropFirst()).allSatisfy { $0 < $1 }, "the Ks of Recall@K must be ascending and distinct, got \(ks)")
        self.ks = ks
        sums = [Double](repeating: 0, count: ks.count + 4)
    }

    /// Rebuilds an accumulator from sums received from elsewhere (e.g. after an allreduce).
    public init(ks: [Int], sums: [Double]) {
        self.init(ks: ks)
        precondition(sums.count == ks.count + 4, "retrieval sums for \(ks.count) Ks have \(ks.count + 4) entries, got \(sums.count)")
        self.sums = sums
    }

    public var scoredQueries: Int { Int(sums[ks.count + 2]) }
    public var skippedQueries: Int { Int(sums[ks.count + 3]) }

    /// Sums the accumulators of all ranks in place (each rank scored its own query range).
    public mutating func allreduce(over communicator: any Communicator) throws {
        try communicator.allreduceSum(&sums)
    }

    /// Records a query with no relevant gallery item (R = 0): it is left out of every metric.
    public mutating func addSkippedQuery() { sums[ks.count + 3] += 1 }

    /// Adds one scored query.
    public mutating func add(_ score: QueryScore) {
        let m = ks.count
        for (slot, k) in ks.enumerated() where score.firstRelevantRank <= k { sums[slot] += 1 }
        sums[m] += Self.onGrid(score.averagePrecision)
        sums[m + 1] += Self.onGrid(score.rPrecision)
        sums[m + 2] += 1
    }

    /// x rounded to a multiple of 2⁻³²: sums of up to 2²¹ such values in [0, 1] are exact in a
    /// Double, so the metrics have the same bits however the queries are split over ranks and in
    /// whatever order the allreduce adds (Docs/distributed.md, "Deterministic training"). The
    /// rounding moves a metric by less than 2⁻³³ ≈ 1e-10.
    static func onGrid(_ x: Double) -> Double {
        let scale = 4_294_967_296.0   // 2³²
        return (x * scale).rounded() / scale
    }

    /// Scores one query from the relevance of its whole ranked list (at least its first R
    /// ranks; a list shorter than a K stands for the whole gallery).
    public mutating func addQuery(rankedRelevant: UnsafeBufferPointer<Bool>, relevantCount: Int) {
        precondition(rankedRelevant.count >= relevantCount, "a query with R = \(relevantCount) needs at least R ranks, got \(rankedRelevant.count)")
        let firstRelevant = rankedRelevant.firstIndex(of: true).map { $0 + 1 } ?? Int.max
        add(QueryScore(firstRelevantRank: firstRelevant, relevantInTopR: UnsafeBufferPointer(rebasing: rankedRelevant[0..<relevantCount])))
    }

    /// The metrics in percent (0 for every metric when no query was scored).
    public var metrics: RetrievalMetrics {
        let m = ks.count
        let scored = sums[m + 2]
        func percent(_ value: Double) -> Double { scored > 0 ? 100 * value / scored : 0 }
        var recall: [Int: Double] = [:]
        for (slot, k) in ks.enumerated() { recall[k] = percent(sums[slot]) }
        return RetrievalMetrics(recall: recall, mapAtR: percent(sums[m]), rPrecision: percent(sums[m + 1]),
                                queries: Int(scored), skipped: Int(sums[m + 3]))
    }
}

/// The metrics of one scored query (R ≥ 1).
public struct QueryScore: Sendable, Equatable {
    /// 1-based rank of the best-ranked relevant gallery item (`Int.max` if none is within
    /// the largest K).
    public var firstRelevantRank: Int
    /// AP@R = (1/R) Σ_{i=1..R} P(i)·rel(i), with P(i) = (relevant in ranks 1..i) / i.
    public var averagePrecision: Double
    /// (relevant in ranks 1..R) / R.
    public var rPrecision: Double

    public init(firstRelevantRank: Int, averagePrecision: Double, rPrecision: Double) {
        self.firstRelevantRank = firstRelevantRank
        self.averagePrecision = averagePrecision
        self.rPrecision = rPrecision
    }

    /// Scores a query from rel(1) … rel(R) (R = relevantInTopR.count ≥ 1: whether each of its
    /// first R ranks shares its label) and the rank of its first relevant item.
    public init(firstRelevantRank: Int, relevantInTopR: UnsafeBufferPointer<Bool>) {
        let r = relevantInTopR.count
        precondition(r >= 1, "a scored query needs R ≥ 1")
        var relevantSoFar = 0
        var precisionSum = 0.0
        for i in 0..<r where relevantInTopR[i] {
            relevantSoFar += 1
            precisionSum += Double(relevantSoFar) / Double(i + 1)
        }
        self.init(firstRelevantRank: firstRelevantRank, averagePrecision: precisionSum / Double(r),
                  rPrecision: Double(relevantSoFar) / Double(r))
    }
}
