import Collectives

/// Running sums of the retrieval metrics over a set of queries (Docs/evaluation.md), kept as one flat
/// `[Double]` so that ranks which each scored a range of queries combine them with a single
/// allreduce-sum; `metrics` turns the sums into percentages.
///
/// Layout of `sums` (m = ks.count):
///   [0 ..< m]  hits at each K of `ks`        (queries whose top-K holds a relevant item)
///   [m]        Σ AP@R, high parts             (each AP in [0, 1]; see `ExactFraction`)
///   [m + 1]    Σ R-precision, high parts      (each in [0, 1])
///   [m + 2]    scored queries                 (queries with R ≥ 1)
///   [m + 3]    skipped queries                (R = 0: no other gallery item shares the label)
///   [m + 4]    Σ AP@R, low parts
///   [m + 5]    Σ R-precision, low parts
///
/// Every slot holds a sum of integers below 2⁵³, exact in a Double, so the sums — and the
/// metrics — have the same bits however the queries are split over ranks and in whatever order
/// the allreduce adds (Docs/distributed.md, "Deterministic training").
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
        sums = [Double](repeating: 0, count: ks.count + 6)
    }

    /// Rebuilds an accumulator from sums received from elsewhere (e.g. after an allreduce).
    public init(ks: [Int], sums: [Double]) {
        self.init(ks: ks)
        precondition(sums.count == ks.count + 6, "retrieval sums for \(ks.count) Ks have \(ks.count + 6) entries, got \(sums.count)")
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
        let averagePrecision = ExactFraction.parts(score.averagePrecision), rPrecision = ExactFraction.parts(score.rPrecision)
        sums[m] += averagePrecision.high
        sums[m + 4] += averagePrecision.low
        sums[m + 1] += rPrecision.high
        sums[m + 5] += rPrecision.low
        sums[m + 2] += 1
    }

    /// Σ AP@R and Σ R-precision over the scored queries.
    public var averagePrecisionSum: Double { ExactFraction.total(high: sums[ks.count], low: sums[ks.count + 4]) }
    public var rPrecisionSum: Double { ExactFraction.total(high: sums[ks.count + 1], low: sums[ks.count + 5]) }

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
        return RetrievalMetrics(recall: recall, mapAtR: percent(averagePrecisionSum), rPrecision: percent(rPrecisionSum),
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

/// Exact sums of values in [0, 1] in two Double slots: x is rounded once to q = round(x · 2⁵²)
/// (as fine as a Double near 1) and split q = h · 2²⁶ + l with 0 ≤ l < 2²⁶; the h and the l of
/// up to 2²⁶ values sum to integers below 2⁵³, which a Double holds exactly in any order.
enum ExactFraction {
    /// h and l of x, to add into the high and the low slot.
    static func parts(_ x: Double) -> (high: Double, low: Double) {
        precondition(x >= 0 && x <= 1, "ExactFraction adds values in [0, 1], got \(x)")
        let q = (x * 0x1p52).rounded(), h = (q * 0x1p-26).rounded(.down)
        return (h, q - h * 0x1p26)
    }

    /// The sum the two slots hold: one rounding of Σh · 2⁻²⁶ + Σl · 2⁻⁵².
    static func total(high: Double, low: Double) -> Double { high * 0x1p-26 + low * 0x1p-52 }
}
