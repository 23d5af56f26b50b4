import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

/// The contrastive memory term screened in bf16 (Docs/losses.md, "Exact screening of the
/// memory term") against the fp32 one pass it must equal bit for bit: the loss, every anchor's
/// row result (loss, hardest pairs, counts, ages) and the anchor gradient, with every kernel
/// this CPU runs, on memory-like data, on data built around the margin, and on negatives that
/// all sit below it in near-ties for the hardest.
final class ScreenedContrastiveTests: XCTestCase {
    private let threads = BLASThreads.current

    override func tearDown() {
        BLASThreads.set(threads)
    }

    /// Anchors, labels and own entries against a memory of rows (which keeps their bf16 copies).
    private struct Problem {
        var dimension: Int
        var anchors: [Float]
        var labels: [Int32]
        var own: [Int32]
        var memory: CrossBatchMemory
        /// The memory in age order (two segments once it wraps) rather than storage order.
        var fifo = false
    }

    /// What one evaluation gave, as bit patterns.
    private struct Outcome: Equatable {
        var path: MemoryTermPath
        var results: [[UInt64]]
        var gradient: [UInt32]
        var recomputed: Double
    }

    private func evaluate(_ problem: Problem, _ reduction: PairReduction, screening: ScreeningKernel?,
                          margin: Double = 0.5, tuning: PairLossTuning = PairLossTuning()) -> Outcome {
        var tuning = tuning
        tuning.screening = screening
        let stream = ContrastiveStream(term: ContrastiveTerm(margin: margin, epsilon: 1e-5), tuning: tuning)
        let d = problem.dimension, b = problem.labels.count
        var gradient = [Float](repeating: 0.25, count: b * d)
        var results = [RowResult](repeating: RowResult(), count: b)
        let segments = problem.fifo ? problem.memory.fifoSegments : problem.memory.referenceSegments
        var path = MemoryTermPath.products
        problem.anchors.withUnsafeBufferPointer { anchors in
            problem.labels.withUnsafeBufferPointer { labels in
                problem.own.withUnsafeBufferPointer { own in
                    var input = PairLossInput(anchors: anchors.baseAddress!, anchorLabels: labels.baseAddress!, anchorCount: b,
                                              dimension: d, references: segments, ownIndex: own.baseAddress!)
                    input.now = problem.memory.clock
                    path = stream.evaluate(input, reduction: reduction, scale: 0.5, anchorGradient: &gradient, results: &results)
                }
            }
        }
        return Outcome(path: path,
                       results: results.map { [$0.loss.bitPattern, UInt64($0.hardestNegative.bitPattern), UInt64($0.hardestPositive.bitPattern),
                                               UInt64($0.activePositives), UInt64($0.activeNegatives), UInt64($0.activeNegativeAgeSum)] },
                       gradient: gradient.map(\.bitPattern), recomputed: stream.lastRecomputedFraction)
    }

    /// Screened with every runnable kernel (and the kernels the feature override picks) against
    /// the fp32 one pass; returns the largest share of rows recomputed.
    @discardableResult
    private func assertSameBits(_ problem: Problem, margin: Double = 0.5, _ context: String,
                                file: StaticString = #filePath, line: UInt = #line) -> Double {
        var largest = 0.0
        for reduction in PairReduction.allCases {
            let reference = evaluate(problem, reduction, screening: nil, margin: margin)
            XCTAssertEqual(reference.path, .onePass)
            XCTAssertEqual(reference.recomputed, 1)
            XCTAssertTrue(reference.results.contains { $0[3] + $0[4] > 0 }, "\(context): vacuous, no active pair", file: file, line: line)
            for kernel in ScreeningKernelTests.runnableKernels {
                let screened = evaluate(problem, reduction, screening: kernel, margin: margin)
                XCTAssertEqual(screened.path, .screened(kernel), file: file, line: line)
                XCTAssertEqual(screened.results, reference.results, "\(context), \(reduction), \(kernel): row results", file: file, line: line)
                XCTAssertEqual(screened.gradient, reference.gradient, "\(context), \(reduction), \(kernel): gradient", file: file, line: line)
                largest = max(largest, screened.recomputed)
            }
        }
        return largest
    }

    /// b anchors in 5 clusters (label = cluster) against a memory of M rows: 1 in 16 positives
    /// near their cluster, 3 in 16 negatives near a cluster (most above the margin), the rest
    /// random rows of other classes (below it, as most of a real memory is); enqueued in batches
    /// of B with stamps, so it may wrap.
    private func memoryLike(b: Int, M: Int, d: Int, batches: Int, B: Int, seed: UInt64) throws -> Problem {
        var random = RandomSource(seed: seed)
        let centres = randomUnitRows(count: 5, dimension: d, random: &random)
        func near(_ centre: Int, _ weight: Float) -> [Float] {
            unitRow(near: centre, of: centres, weight: weight, dimension: d, random: &random)
        }
        let memory = CrossBatchMemory(capacity: M, dimension: d, lowPrecisionCopy: true)
        var row = 0
        for batch in 0..<batches {
            memory.clock = batch
            var rows: [Float] = [], labels: [Int32] = []
            for _ in 0..<B {
                switch row % 16 {
                case 0: rows += near(row % 5, 0.8); labels.append(Int32(row % 5))
                case 1, 2, 3: rows += near(row % 5, 0.75); labels.append(Int32(5 + row % 11))
                default: rows += randomUnitRows(count: 1, dimension: d, random: &random); labels.append(Int32(100 + row % 7))
                }
                row += 1
            }
            try memory.enqueue(embeddings: rows, labels: labels, count: B)
        }
        let anchors = (0..<b).flatMap { near($0 % 5, 0.9) }
        let own = (0..<b).map { $0 % 3 == 0 ? Int32(-1) : Int32((7 * $0) % memory.count) }
        return Problem(dimension: d, anchors: anchors, labels: (0..<b).map { Int32($0 % 5) }, own: own, memory: memory)
    }

    func testSameBitsOnMemoryLikeData() throws {
        for (b, M, d, batches, B) in [(37, 301, 20, 1, 301), (64, 4096, 128, 70, 64), (16, 1000, 7, 9, 125),
                                       (5, 3000, 64, 4, 1000), (80, 2048, 130, 40, 64)] {
            var problem = try memoryLike(b: b, M: M, d: d, batches: batches, B: B, seed: UInt64(b * M))
            let recomputed = assertSameBits(problem, "b \(b), M \(M), d \(d)")
            // Random rows sit below m − β at d ≥ 64 (their s are ~N(0, 1/d)); at small d many do not.
            if d >= 64 { XCTAssertLessThan(recomputed, 0.5, "b \(b), M \(M), d \(d): the screen skipped too little") }
            if M * batches > B * batches, problem.memory.count == M, batches * B > M {
                problem.fifo = true   // wrapped: two segments
                assertSameBits(problem, "b \(b), M \(M), d \(d), age order")
            }
        }
    }

    /// Every similarity within ±2β of the margin m: s = (m + δ) ‖·‖ by construction, |δ| ≤ 0.016,
    /// so the screen's decision is close for every pair and a bound that was too small, or a
    /// threshold on the wrong side, would drop an active pair.
    func testSameBitsAroundTheMargin() throws {
        var random = RandomSource(seed: 21)
        let d = 128, b = 48, M = 3000, margin = 0.5
        let anchors = randomUnitRows(count: b, dimension: d, random: &random)
        let memory = CrossBatchMemory(capacity: M, dimension: d, lowPrecisionCopy: true)
        var rows: [Float] = [], labels: [Int32] = []
        for j in 0..<M {
            let i = random.nextInt(below: b)
            let target = margin + (random.nextUniformDouble() * 2 - 1) * 0.016
            // r = t a_i + √(1 − t²) n, n a unit vector orthogonal to a_i.
            var n = randomUnitRows(count: 1, dimension: d, random: &random).map(Double.init)
            let a = (0..<d).map { Double(anchors[i * d + $0]) }
            let dot = zip(n, a).reduce(0) { $0 + $1.0 * $1.1 }
            n = zip(n, a).map { $0 - dot * $1 }
            let norm = n.reduce(0) { $0 + $1 * $1 }.squareRoot()
            rows += (0..<d).map { Float(target * a[$0] + (1 - target * target).squareRoot() * n[$0] / norm) }
            labels.append(j % 7 == 0 ? Int32(i % 6) : Int32(100 + j % 13))
        }
        try memory.enqueue(embeddings: rows, labels: labels, count: M)
        let problem = Problem(dimension: d, anchors: anchors, labels: (0..<b).map { Int32($0 % 6) },
                              own: (0..<b).map { _ in -1 }, memory: memory)
        assertSameBits(problem, margin: margin, "around the margin")
    }

    /// Pairs whose bf16 error is as large as the bound and whose s is just above the margin:
    /// anchors of elements just below bf16 rounding midpoints, 32 of 2⁻³ and 96 of 2⁻⁴ in
    /// shuffled places with random signs (so every ‖a_i‖² is the same s₀), and rows r = a_i with
    /// 0–2 signs flipped among the small elements, so s = s₀ − 2⁻⁷·1.008·flips. Both operands
    /// shrink by ~2⁻⁸ in every term, so ŝ ≈ s − 2⁻⁷ s ≈ s − β (Docs/losses.md); with m = s₀ − 2·10⁻⁴
    /// the unflipped pairs are active by 2·10⁻⁴ and ŝ + β clears m by less than that. A bound 10%
    /// too small drops them (tried); a row 1.25 a_i first makes each anchor's hardest negative
    /// far above them, so only the margin's rule keeps them.
    func testSameBitsWhereTheBoundIsTight() throws {
        var random = RandomSource(seed: 33)
        let d = 128, b = 32, M = 2048
        var anchors: [Float] = []
        for _ in 0..<b {
            var exponents = [Int](repeating: -3, count: 32) + [Int](repeating: -4, count: 96)
            for k in stride(from: d - 1, to: 0, by: -1) { exponents.swapAt(k, random.nextInt(below: k + 1)) }
            anchors += exponents.map { exponent in
                Float(sign: random.nextInt(below: 2) == 0 ? .plus : .minus, exponent: exponent, significand: 1 + 0x1p-8 - 0x1p-23)
            }
        }
        var s0: Float = 0
        for k in 0..<d { s0 = s0.addingProduct(anchors[k], anchors[k]) }
        let memory = CrossBatchMemory(capacity: M, dimension: d, lowPrecisionCopy: true)
        var rows: [Float] = [], labels: [Int32] = []
        for j in 0..<M {
            // First a far harder negative for each anchor, so the pairs near m are not kept as
            // candidates for the hardest negative.
            if j < b {
                rows += anchors[j * d..<(j + 1) * d].map { 1.25 * $0 }
                labels.append(2000)
                continue
            }
            let i = random.nextInt(below: b)
            var row = Array(anchors[i * d..<(i + 1) * d])
            var flips = random.nextInt(below: 3)
            while flips > 0 {
                let k = random.nextInt(below: d)
                if abs(row[k]) < 0.1, row[k] == anchors[i * d + k] { row[k] = -row[k]; flips -= 1 }
            }
            rows += row
            labels.append(j % 11 == 0 ? Int32(i) : Int32(1000 + j % 5))
        }
        try memory.enqueue(embeddings: rows, labels: labels, count: M)
        let problem = Problem(dimension: d, anchors: anchors, labels: (0..<b).map { Int32($0) },
                              own: (0..<b).map { _ in -1 }, memory: memory)
        assertSameBits(problem, margin: Double(s0) - 2e-4, "where the bound is tight")
    }

    /// No negative above the margin (m = 0.95): the hardest negative alone keeps rows, among
    /// negatives in near-ties (within 10⁻³ of each other, β ≈ 0.008) and exact duplicates.
    func testSameHardestNegativeAmongNearTies() throws {
        var random = RandomSource(seed: 5)
        let d = 64, b = 16, M = 1024
        let anchors = randomUnitRows(count: b, dimension: d, random: &random)
        let base = randomUnitRows(count: 1, dimension: d, random: &random)
        let memory = CrossBatchMemory(capacity: M, dimension: d, lowPrecisionCopy: true)
        var rows: [Float] = [], labels: [Int32] = []
        for j in 0..<M {
            if j % 2 == 1 {
                rows += randomUnitRows(count: 1, dimension: d, random: &random).map { $0 * 0.3 }   // far below
            } else if j % 5 == 0, j > 0 {
                rows += rows[(j - 5) * d..<(j - 4) * d]   // an exact duplicate of an earlier row
            } else {
                let noise = randomUnitRows(count: 1, dimension: d, random: &random)
                let v = (0..<d).map { 0.6 * anchors[$0] + 0.3 * base[$0] + 0.001 * noise[$0] }
                rows += v
            }
            labels.append(j % 9 == 0 ? 0 : Int32(50 + j % 3))
        }
        try memory.enqueue(embeddings: rows, labels: labels, count: M)
        let problem = Problem(dimension: d, anchors: anchors, labels: (0..<b).map { Int32($0 % 2) },
                              own: (0..<b).map { _ in -1 }, memory: memory)
        let recomputed = assertSameBits(problem, margin: 0.95, "near-ties below the margin")
        XCTAssertLessThan(recomputed, 0.6, "the rows far below the hardest negative are skipped")
    }

    /// The thread split and the kernel the feature override picks change nothing.
    func testSameBitsOnEveryThreadSplitAndOverride() throws {
        let problem = try memoryLike(b: 64, M: 4096, d: 128, batches: 64, B: 64, seed: 9)
        let reference = evaluate(problem, .mean, screening: nil)
        for features in ["avx avx2 fma", "avx avx2 fma avx512f avx512bw avx512_bf16"] {
            guard let kernel = ScreeningKernel.best(for: CPUFeatures.detected(environment: ["XBM_CPU_FEATURES": features])),
                  ScreeningKernelTests.runnableKernels.contains(kernel) else { continue }
            for work in [1, Int.max] {
                BLASThreads.set(2)
                let screened = evaluate(problem, .mean, screening: kernel, tuning: PairLossTuning(rowsWorkPerThread: work))
                XCTAssertEqual(screened.results, reference.results, "\(features), work \(work)")
                XCTAssertEqual(screened.gradient, reference.gradient, "\(features), work \(work)")
            }
        }
    }

    /// The fp32 one pass runs when the screen cannot: screening off, references without bf16
    /// rows, or an anchor whose norm the bound does not cover.
    func testFallsBackToTheOnePass() throws {
        var problem = try memoryLike(b: 20, M: 500, d: 16, batches: 1, B: 500, seed: 4)
        guard let kernel = ScreeningKernelTests.runnableKernels.last else { return }
        XCTAssertEqual(evaluate(problem, .sum, screening: kernel).path, .screened(kernel))
        XCTAssertEqual(evaluate(problem, .sum, screening: nil).path, .onePass)
        problem.anchors[3] = .infinity
        XCTAssertEqual(evaluate(problem, .sum, screening: kernel).path, .onePass)
        let plain = CrossBatchMemory(capacity: 500, dimension: 16)
        try plain.enqueue(embeddings: problem.memory.snapshot().embeddings, labels: problem.memory.snapshot().labels, count: 500)
        problem.anchors[3] = 0
        problem.memory = plain
        XCTAssertEqual(evaluate(problem, .sum, screening: kernel).path, .onePass)
    }
}
