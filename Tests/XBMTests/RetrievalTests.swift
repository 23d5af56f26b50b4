import Collectives
@testable import XBMEval
@testable import XBMKernels
import XCTest

/// Retrieval metrics against a brute-force reference written here: every query's whole
/// gallery sorted by (similarity descending, gallery index ascending), then the definitions of
/// Recall@K, AP@R and R-precision applied literally. Embeddings are small integers so every
/// dot product is exact in Float: BLAS and the reference see identical values and identical ties.
final class RetrievalTests: XCTestCase {
    struct Reference { var hits: [Int]; var sumAP = 0.0; var sumRPrecision = 0.0; var scored = 0; var skipped = 0 }

    func bruteForce(queries: [Float], queryLabels: [Int32], gallery: [Float], galleryLabels: [Int32],
                    d: Int, sameSet: Bool, ks: [Int], range: Range<Int>) -> Reference {
        var reference = Reference(hits: [Int](repeating: 0, count: ks.count))
        for q in range {
            var candidates: [(similarity: Float, index: Int)] = []
            for g in 0..<galleryLabels.count where !(sameSet && g == q) {
                var s: Float = 0
                for j in 0..<d { s += queries[q * d + j] * gallery[g * d + j] }
                candidates.append((s, g))
            }
            candidates.sort { $0.similarity != $1.similarity ? $0.similarity > $1.similarity : $0.index < $1.index }
            let relevant = candidates.map { galleryLabels[$0.index] == queryLabels[q] }
            let r = relevant.filter { $0 }.count
            if r == 0 { reference.skipped += 1; continue }
            reference.scored += 1
            for (slot, k) in ks.enumerated() where relevant.prefix(k).contains(true) { reference.hits[slot] += 1 }
            var ap = 0.0
            for i in 1...r where relevant[i - 1] {
                ap += Double(relevant.prefix(i).filter { $0 }.count) / Double(i)
            }
            reference.sumAP += ap / Double(r)
            reference.sumRPrecision += Double(relevant.prefix(r).filter { $0 }.count) / Double(r)
        }
        return reference
    }

    /// Values in {-2, …, 2}: in 6 dimensions many pairs share a similarity.
    func quantised(count: Int, d: Int, random: inout RandomSource) -> [Float] {
        (0..<count * d).map { _ in Float(random.nextInt(below: 5) - 2) }
    }

    func assertMatches(_ accumulator: RetrievalAccumulator, _ reference: Reference, file: StaticString = #filePath, line: UInt = #line) {
        let m = accumulator.ks.count
        for slot in 0..<m { XCTAssertEqual(accumulator.sums[slot], Double(reference.hits[slot]), "hits at K=\(accumulator.ks[slot])", file: file, line: line) }
        // Sums of a few hundred terms in [0, 1], added in the same order: only rounding differs.
        XCTAssertEqual(accumulator.averagePrecisionSum, reference.sumAP, accuracy: 1e-9, "Σ AP@R", file: file, line: line)
        XCTAssertEqual(accumulator.rPrecisionSum, reference.sumRPrecision, accuracy: 1e-9, "Σ R-precision", file: file, line: line)
        XCTAssertEqual(accumulator.scoredQueries, reference.scored, file: file, line: line)
        XCTAssertEqual(accumulator.skippedQueries, reference.skipped, file: file, line: line)
    }

    /// Labels 0..<40 at random plus 5 classes with a single image each (R = 0).
    func labels(count: Int, random: inout RandomSource) -> [Int32] {
        var labels = (0..<count).map { _ in Int32(random.nextInt(below: 40)) }
        for i in 0..<5 { labels[i * 17] = Int32(1000 + i) }
        return labels
    }

    func testSameSetMatchesBruteForceWithTiesAndSingletons() {
        var random = RandomSource(seed: 7)
        let n = 300, d = 6, ks = [1, 5, 10, 1000]        // 1000 > gallery: the whole gallery
        let x = quantised(count: n, d: d, random: &random)
        let y = labels(count: n, random: &random)
        let reference = bruteForce(queries: x, queryLabels: y, gallery: x, galleryLabels: y, d: d, sameSet: true, ks: ks, range: 0..<n)
        XCTAssertEqual(reference.skipped, 5)
        XCTAssertEqual(reference.hits[3], reference.scored, "K beyond the gallery finds every query's class")
        var first: RetrievalAccumulator? = nil
        for (blockSize, threads) in [(1, 1), (64, 1), (64, 3), (1000, 2)] {   // 300 = 4·64 + 44: a ragged last block
            let accumulator = x.withUnsafeBufferPointer { p in
                Retrieval.evaluate(queries: p.baseAddress!, queryLabels: y, gallery: p.baseAddress!, galleryLabels: y,
                                   dimension: d, sameSet: true, ks: ks, blockSize: blockSize, threads: threads)
            }
            assertMatches(accumulator, reference)
            // Row scores are summed in row order: bit-identical whatever the blocks and threads.
            if let first { XCTAssertEqual(accumulator, first, "block \(blockSize) threads \(threads)") } else { first = accumulator }
        }
    }

    func testQueryGallerySplitMatchesBruteForce() {
        var random = RandomSource(seed: 11)
        let d = 5, ks = [1, 2, 10, 20]    // k ≈ 20 of 250: the selection compacts its buffer
        let queries = quantised(count: 120, d: d, random: &random)
        let gallery = quantised(count: 250, d: d, random: &random)
        var queryLabels = labels(count: 120, random: &random)
        queryLabels[3] = 999                              // a label absent from the gallery: R = 0
        let galleryLabels = labels(count: 250, random: &random)
        let reference = bruteForce(queries: queries, queryLabels: queryLabels, gallery: gallery, galleryLabels: galleryLabels,
                                   d: d, sameSet: false, ks: ks, range: 0..<120)
        XCTAssertGreaterThanOrEqual(reference.skipped, 1)
        let accumulator = queries.withUnsafeBufferPointer { q in
            gallery.withUnsafeBufferPointer { g in
                Retrieval.evaluate(queries: q.baseAddress!, queryLabels: queryLabels, gallery: g.baseAddress!,
                                   galleryLabels: galleryLabels, dimension: d, sameSet: false, ks: ks, blockSize: 32)
            }
        }
        assertMatches(accumulator, reference)
    }

    func testQueryRangesSumToTheWholeAcrossSimulatedRanks() throws {
        var random = RandomSource(seed: 3)
        let n = 200, d = 4, ks = [1, 10]
        let x = quantised(count: n, d: d, random: &random)
        let y = labels(count: n, random: &random)
        let whole = bruteForce(queries: x, queryLabels: y, gallery: x, galleryLabels: y, d: d, sameSet: true, ks: ks, range: 0..<n)
        let ranges = [0..<37, 37..<37, 37..<150, 150..<200]   // uneven, one empty
        let results = try SimulatedRanks.run(size: ranges.count) { communicator in
            var accumulator = x.withUnsafeBufferPointer { p in
                Retrieval.evaluate(queries: p.baseAddress!, queryLabels: y, gallery: p.baseAddress!, galleryLabels: y,
                                   dimension: d, sameSet: true, ks: ks, queryRange: ranges[communicator.rank], blockSize: 16)
            }
            try accumulator.allreduce(over: communicator)
            return accumulator
        }
        for accumulator in results { assertMatches(accumulator, whole) }
    }

    /// One dimension, so similarity = query value × gallery value. Gallery (value, label):
    ///   g0 (0.9, A)  g1 (0.8, B)  g2 (0.7, A)  g3 (0.7, B)  g4 (0.5, A)  g5 (0.1, B)
    /// q0 = +1, A:  ranking g0 g1 g2 g3 g4 g5 (g2 before g3: equal similarity, lower index)
    ///   rel = 1 0 1 0 1 0, R = 3: AP@R = (1/1 + 2/3)/3 = 5/9, R-precision = 2/3, hit@1
    /// q1 = −1, B:  ranking g5 g4 g2 g3 g1 g0
    ///   rel = 1 0 0 1 1 0, R = 3: AP@R = (1/1)/3 = 1/3, R-precision = 1/3, hit@1
    /// q2 = +1, C:  no gallery item of class C, R = 0: skipped
    /// q3 = −1, A:  ranking g5 g4 g2 g3 g1 g0
    ///   rel = 0 1 1 0 0 1, R = 3: AP@R = (1/2 + 2/3)/3 = 7/18, R-precision = 2/3, miss@1, hit@2
    /// Over the 3 scored queries: R@1 = 2/3, R@2 = 3/3, MAP@R = (5/9 + 1/3 + 7/18)/3 = 23/54,
    /// R-precision = (2/3 + 1/3 + 2/3)/3 = 5/9.
    func testHandWorkedExample() {
        let a: Int32 = 0, b: Int32 = 1, c: Int32 = 2
        let gallery: [Float] = [0.9, 0.8, 0.7, 0.7, 0.5, 0.1]
        let galleryLabels = [a, b, a, b, a, b]
        let queries: [Float] = [1, -1, 1, -1]
        let queryLabels = [a, b, c, a]
        let accumulator = queries.withUnsafeBufferPointer { q in
            gallery.withUnsafeBufferPointer { g in
                Retrieval.evaluate(queries: q.baseAddress!, queryLabels: queryLabels, gallery: g.baseAddress!,
                                   galleryLabels: galleryLabels, dimension: 1, sameSet: false, ks: [1, 2, 10])
            }
        }
        let metrics = accumulator.metrics
        XCTAssertEqual(metrics.queries, 3)
        XCTAssertEqual(metrics.skipped, 1)
        XCTAssertEqual(metrics.recall[1]!, 100.0 * 2 / 3, accuracy: 1e-12)
        XCTAssertEqual(metrics.recall[2]!, 100, accuracy: 1e-12)
        XCTAssertEqual(metrics.recall[10]!, 100, accuracy: 1e-12)
        XCTAssertEqual(metrics.mapAtR, 100.0 * 23 / 54, accuracy: 1e-12)
        XCTAssertEqual(metrics.rPrecision, 100.0 * 5 / 9, accuracy: 1e-12)
    }

    /// The k best from a selection against a sort of the whole row; and each of them has
    /// exactly (its rank − 1) better candidates, which is how ranks beyond R are computed.
    func assertSelection(row: [Float], excluded: Int, capacity: Int, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let width = row.count
        var selection = TopKSelection(capacity: capacity)
        row.withUnsafeBufferPointer { selection.scan(row: $0.baseAddress!, width: width, excluded: excluded) }
        // NaN ranks below every number (read as −∞), −0 equals +0, ties by lower index.
        let value = { (i: Int) -> Float in row[i].isNaN ? -.infinity : row[i] }
        let expected = Array((0..<width).filter { $0 != excluded }
            .sorted { value($0) != value($1) ? value($0) > value($1) : $0 < $1 }.prefix(capacity))
        XCTAssertGreaterThanOrEqual(selection.count, expected.count, message, file: file, line: line)
        var best = [UInt64](repeating: 0, count: expected.count)
        best.withUnsafeMutableBufferPointer { selection.best(expected.count, into: $0.baseAddress!) }
        XCTAssertEqual(best.map(TopKSelection.index(ofKey:)), expected, message, file: file, line: line)
        for (rank, key) in best.enumerated() {
            XCTAssertEqual(selection.candidates.filter { $0 > key }.count, rank, message, file: file, line: line)
        }
    }

    func testTopKSelectionMatchesSortWithTiesNaNAndSignedZero() {
        var random = RandomSource(seed: 5)
        for width in [1, 7, 50, 301, 5000] {             // 5000 with k ≤ 10: many buffer compactions
            var row = (0..<width).map { _ in Float(random.nextInt(below: 6)) }
            if width > 3 { row[2] = .nan; row[3] = -0.0; row[1] = 0 }
            for capacity in [1, 3, 10, 100, 400] {
                assertSelection(row: row, excluded: width > 1 ? width / 2 : -1, capacity: capacity, "width \(width) k \(capacity)")
            }
        }
    }

    func testTopKSelectionWithSampledThresholdAndItsFallback() {
        var random = RandomSource(seed: 9)
        // Fine values with ties: the sampled threshold holds (about 1.5k entries pass it).
        let fine = (0..<20_000).map { _ in Float(random.nextInt(below: 1000)) }
        assertSelection(row: fine, excluded: 123, capacity: 100, "sampled")
        // Every 64th entry (the sample's stride) is the maximum: the sample's threshold lets
        // nothing through and the row is scanned again without one.
        let rigged = (0..<20_000).map { $0 % 64 == 0 ? 10 : Float(random.nextInt(below: 6)) }
        assertSelection(row: rigged, excluded: 128, capacity: 100, "fallback")
    }

    func testMetricsKeysTableAndJSON() throws {
        var accumulator = RetrievalAccumulator(ks: Retrieval.defaultKs)
        // Two queries with R = 2: relevant at ranks {1, 2} and at ranks {3, 4}.
        [true, true, false].withUnsafeBufferPointer { accumulator.addQuery(rankedRelevant: $0, relevantCount: 2) }
        [false, false, true, true].withUnsafeBufferPointer { accumulator.addQuery(rankedRelevant: $0, relevantCount: 2) }
        accumulator.addSkippedQuery()
        let metrics = accumulator.metrics
        // R@1: 1 of 2; R@10: 2 of 2; AP@R: (1 + 0)/2; R-precision: (2/2 + 0/2)/2.
        XCTAssertEqual(metrics.jsonObject, ["R@1": 50, "R@10": 100, "R@100": 100, "R@1000": 100, "MAP@R": 50, "R-precision": 50])
        XCTAssertEqual(metrics.skipped, 1)
        XCTAssertTrue(metrics.table.contains("R@1000"))
        XCTAssertTrue(metrics.table.contains("50.00"))
        let decoded = try JSONSerialization.jsonObject(with: Data(metrics.jsonString.utf8)) as? [String: Double]
        XCTAssertEqual(decoded?["MAP@R"], 50)
        XCTAssertEqual(decoded?["skipped_queries"], 1)
        let roundTrip = try JSONDecoder().decode(RetrievalMetrics.self, from: JSONEncoder().encode(metrics))
        XCTAssertEqual(roundTrip, metrics)
    }

    func testBenchmarkRunsTheEvaluationItTimes() {
        let result = RetrievalBenchmark.run(count: 270, dimension: 16, classes: 10, blockSize: 64)
        XCTAssertEqual(result.metrics.queries, 270)                  // 27 per class: none skipped
        XCTAssertEqual(result.metrics.recall[1000], 100)             // K beyond the gallery
        XCTAssertGreaterThan(result.totalSeconds, 0)
        XCTAssertGreaterThan(result.gemmSeconds, 0)
    }
}
