import Collectives
import Foundation
import TestSupport
import XBMEval
import XBMKernels
import XBMModel
import XBMTraining
import XCTest

/// Docs/distributed.md, "Deterministic training": with `--deterministic` a run computes the same
/// bits on every rank count that divides its chunks and on any thread count — losses, pair
/// statistics, parameters, batch-norm running statistics and the memory — and a run resumed on
/// another rank count ends where the uninterrupted one does. Every comparison here is `==` on
/// the bits; the same comparison without `--deterministic` is shown to see a difference.
final class DeterminismTests: XCTestCase {
    struct RunResult: Equatable, Sendable {
        var losses: [Double]
        var parameters: [UInt32]
        var state: [UInt32]
        var checksum: UInt64
        var memoryStatistics: PairStatistics?
    }

    private func config(data: URL, loss: LossKind, deterministic: Bool = true, iterations: Int = 16) -> TrainingConfig {
        var c = TrainingFixtures.smallRun(data: data, iterations: iterations)
        c.loss.kind = loss
        c.optimization.optimizer = .adam
        c.optimization.lr = 3e-3
        c.optimization.schedule = .constant
        c.optimization.deterministic = deterministic
        c.optimization.deterministicChunks = 8
        c.memory.size = 40       // not a multiple of B: the ring wraps at different offsets
        c.memory.start = .at(.iteration(3))
        c.run.logEvery = 1000
        c.run.seed = 7
        return c
    }

    private func train(_ config: TrainingConfig, ranks: Int, resume: Bool = false) throws -> RunResult {
        let results = try SimulatedRanks.run(size: ranks) { comm in
            let trainer = try Trainer(config: config, comm: comm, resume: resume, writeOutputs: resume || config.run.checkpointEvery > 0)
            trainer.evaluateAtEnd = false
            trainer.verbose = false
            let outcome = try trainer.run()
            let step = trainer.components.step
            return RunResult(losses: outcome.losses, parameters: step.parameters.array.map(\.bitPattern),
                             state: step.state.array.map(\.bitPattern), checksum: step.replicaChecksum(),
                             memoryStatistics: trainer.lastStepResult?.memoryStatistics)
        }
        for result in results.dropFirst() { XCTAssertEqual(result, results[0], "the ranks' replicas differ") }
        return results[0]
    }

    func testRankCountsGiveTheSameBitsOnTheMLP() throws {
        let data = try TrainingFixtures.featureDataset()
        for loss in [LossKind.contrastive, .multiSimilarity, .triplet, .lifted, .npair] {
            var c = config(data: data, loss: loss)
            c.optimization.instances = 2     // 8 ranks hold 2 samples each
            let one = try train(c, ranks: 1)
            XCTAssertNotNil(one.memoryStatistics, "\(loss): the memory term must have run")
            for ranks in [2, 4, 8] {
                XCTAssertEqual(try train(c, ranks: ranks), one, "\(loss), \(ranks) ranks against 1")
            }
        }
    }

    /// The comparison above can fail: the same runs without `--deterministic` differ in their
    /// last bits (sums over each rank's samples, added across ranks).
    func testWithoutDeterministicTheRankCountsDiffer() throws {
        let data = try TrainingFixtures.featureDataset()
        let one = try train(config(data: data, loss: .multiSimilarity, deterministic: false), ranks: 1)
        let four = try train(config(data: data, loss: .multiSimilarity, deterministic: false), ranks: 4)
        XCTAssertNotEqual(one.parameters, four.parameters)
    }

    /// glyphnet: Winograd and the direct first layer, pooled batch norm, on 1, 2 and 4 ranks, and
    /// with 1 and 2 BLAS threads.
    func testRankAndThreadCountsGiveTheSameBitsOnGlyphNet() throws {
        let data = try TrainingFixtures.imageDataset(classes: 8, perClass: 4)
        var c = config(data: data, loss: .multiSimilarity, iterations: 6)
        c.model.model = .glyphnet
        c.memory.size = 24
        c.memory.start = .at(.iteration(2))
        let saved = BLASThreads.current
        defer { BLASThreads.set(saved) }
        BLASThreads.set(1)
        let one = try train(c, ranks: 1)
        XCTAssertEqual(try train(c, ranks: 2), one, "2 ranks against 1")
        XCTAssertEqual(try train(c, ranks: 4), one, "4 ranks against 1")
        BLASThreads.set(2)
        XCTAssertEqual(try train(c, ranks: 1), one, "1 rank × 2 threads against 1 × 1")
        XCTAssertEqual(try train(c, ranks: 2), one, "2 ranks × 2 threads against 1 × 1")
    }

    /// Stopped at iteration 8 on 4 ranks and resumed on 2: the same bits as 16 iterations on 1.
    func testResumeOnAnotherRankCountEndsOnTheSameBits() throws {
        let data = try TrainingFixtures.featureDataset()
        let whole = try train(config(data: data, loss: .multiSimilarity), ranks: 1)
        var first = config(data: data, loss: .multiSimilarity, iterations: 8)
        first.run.directory = TrainingFixtures.temporaryDirectory("deterministic-resume").path
        first.run.checkpointEvery = 8
        first.optimization.scheduleIters = 16
        let stopped = try train(first, ranks: 4)
        var second = config(data: data, loss: .multiSimilarity, iterations: 16)
        second.run.directory = first.run.directory
        second.run.checkpointEvery = 8
        let resumed = try train(second, ranks: 2, resume: true)
        XCTAssertEqual(stopped.losses + resumed.losses, whole.losses)
        XCTAssertEqual(resumed.parameters, whole.parameters)
        XCTAssertEqual(resumed.state, whole.state)
        XCTAssertEqual(resumed.checksum, whole.checksum)
    }

    func testChunksThatRanksCannotShareAreRefused() throws {
        let data = try TrainingFixtures.featureDataset()
        var c = config(data: data, loss: .contrastive)
        c.optimization.deterministicChunks = 6
        XCTAssertThrowsError(try c.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("must divide --batch 16"), "\($0)") }
        c.optimization.deterministicChunks = 4
        XCTAssertNoThrow(try c.validate(ranks: 4))
        c.optimization.instances = 2
        XCTAssertThrowsError(try c.validate(ranks: 8)) { XCTAssertTrue("\($0)".contains("not a multiple of the 8 ranks"), "\($0)") }
        c.optimization.deterministicChunks = 8
        c.model.bn = .local
        XCTAssertThrowsError(try c.validate(ranks: 2)) { XCTAssertTrue("\($0)".contains("--bn sync"), "\($0)") }
    }
}

/// `ExactSum`: the same bits in any order and split, within the grid's rounding of the exact sum.
final class ExactSumTests: XCTestCase {
    func testSumsAreTheSameInAnyOrderAndSplit() {
        var random = RandomSource(seed: 3)
        let n = 64, count = 37
        // Magnitudes over 30 binades, both signs: Float sums in different orders differ here.
        let addends = (0..<n).map { _ in
            (0..<count).map { _ in Float(random.nextUniform() - 0.5) * Float(sign: .plus, exponent: Int(random.nextUniform() * 30) - 20, significand: 1) }
        }
        let maximum = addends.joined().map(abs).max()!
        let s = ExactSum.shift(maximum: maximum, addends: n)!
        func sum(_ order: [Int], parts: Int) -> [Float] {
            // `parts` partial sums (the ranks), then added in reverse (the allreduce's order, any).
            var partials = [[Double]](repeating: [Double](repeating: 0, count: count), count: parts)
            for (position, index) in order.enumerated() {
                addends[index].withUnsafeBufferPointer { x in
                    partials[position * parts / n].withUnsafeMutableBufferPointer { q in
                        ExactSum.accumulate(x.baseAddress!, count: count, shift: s, into: q.baseAddress!)
                    }
                }
            }
            var total = [Double](repeating: 0, count: count)
            for part in partials.reversed() { for i in 0..<count { total[i] += part[i] } }
            var result = [Float](repeating: 0, count: count)
            ExactSum.result(total, count: count, shift: s, into: &result)
            return result
        }
        let reference = sum(Array(0..<n), parts: 1)
        var floatOrders = Set<[UInt32]>()
        for parts in [1, 2, 4, 8, 64] {
            var order = Array(0..<n)
            for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, random.nextInt(below: i + 1)) }
            XCTAssertEqual(sum(order, parts: parts).map(\.bitPattern), reference.map(\.bitPattern), "\(parts) parts")
            floatOrders.insert((0..<count).map { i in order.reduce(Float(0)) { $0 + addends[$1][i] }.bitPattern })
        }
        XCTAssertGreaterThan(floatOrders.count, 1, "plain Float sums of these addends must depend on the order")
        // Within one Float rounding of the exact sum, plus the grid's n · 2^−(s+1).
        for i in 0..<count {
            let exact = addends.reduce(0.0) { $0 + Double($1[i]) }
            let grid = Double(n) * Double(Float(sign: .plus, exponent: -s - 1, significand: 1))
            XCTAssertLessThanOrEqual(abs(Double(reference[i]) - exact), Double(Float(exact).ulp) / 2 + grid, "element \(i)")
        }
    }

    /// The grid: an addend of one step 2^−s survives, one of 0.4 steps rounds to 0, 0.6 to one step.
    func testAddendsAreRoundedToTheGridOnce() {
        let s = ExactSum.shift(maximum: 1, addends: 8)!
        XCTAssertEqual(s, 52 - 1 - 3)
        let step = Float(sign: .plus, exponent: -s, significand: 1)
        for (addend, expected) in [(step, step), (0.4 * step, 0), (0.6 * step, step), (-2.5 * step, -2 * step), (1, 1)] {
            var q = [0.0], x = [addend], result: [Float] = [0]
            ExactSum.accumulate(x, count: 1, shift: s, into: &q)
            x[0] = 0
            ExactSum.result(q, count: 1, shift: s, into: &result)
            XCTAssertEqual(result[0], expected, "addend \(addend / step) steps")
        }
    }

    func testShiftKeepsEveryPartialSumBelowTwoToThe53() {
        for (maximum, addends) in [(Float(1), 8), (Float(0.75), 2), (Float(1e-3), 64), (Float(3e5), 1), (Float.greatestFiniteMagnitude, 8)] {
            let s = ExactSum.shift(maximum: maximum, addends: addends)!
            let largest = (Double(maximum) * pow(2, Double(s))).rounded()
            XCTAssertLessThanOrEqual(largest * Double(addends), pow(2, 53), "max \(maximum), \(addends) addends, shift \(s)")
            // And not needlessly coarse: a shift two larger would exceed the budget.
            XCTAssertGreaterThanOrEqual(Double(maximum) * pow(2, Double(s + 2)) * Double(addends), pow(2, 53), "max \(maximum)")
        }
        XCTAssertEqual(ExactSum.shift(maximum: 0, addends: 8), 0)
        XCTAssertNil(ExactSum.shift(maximum: .infinity, addends: 8))
        XCTAssertNil(ExactSum.shift(maximum: .nan, addends: 8))
        XCTAssertEqual(ExactSum.shift(maximum: Float.leastNormalMagnitude, addends: 1), 126)
    }

    func testMaximumMagnitudeSeesNaNAndNegatives() {
        var x = [Float](repeating: 0.5, count: 40)
        x[33] = -7
        XCTAssertEqual(ExactSum.maximumMagnitude(x, count: 40), 7)
        x[3] = -9
        XCTAssertEqual(ExactSum.maximumMagnitude(x, count: 40), 9)
        x[17] = .nan
        XCTAssertTrue(ExactSum.maximumMagnitude(x, count: 40).isNaN)
        x[17] = 0
        x[39] = .nan
        XCTAssertTrue(ExactSum.maximumMagnitude(x, count: 40).isNaN)
    }
}

/// `RetrievalAccumulator`: the metric sums have the same bits however the queries are split and
/// ordered, as the ranks' allreduce needs.
final class RetrievalSumTests: XCTestCase {
    func testMetricSumsAreTheSameInAnyOrderAndSplit() {
        var random = RandomSource(seed: 5)
        let scores = (0..<2000).map { _ in
            QueryScore(firstRelevantRank: 1 + random.nextInt(below: 20),
                       averagePrecision: random.nextUniformDouble(), rPrecision: Double(random.nextInt(below: 7)) / 7)
        }
        var whole = RetrievalAccumulator(ks: [1, 10])
        for score in scores { whole.add(score) }
        var order = Array(scores.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, random.nextInt(below: i + 1)) }
        var parts = [RetrievalAccumulator](repeating: RetrievalAccumulator(ks: [1, 10]), count: 3)
        for (position, index) in order.enumerated() { parts[position % 3].add(scores[index]) }
        var sums = parts[2].sums
        for part in parts.dropLast().reversed() { for i in sums.indices { sums[i] += part.sums[i] } }
        let split = RetrievalAccumulator(ks: [1, 10], sums: sums)
        XCTAssertEqual(split.sums.map(\.bitPattern), whole.sums.map(\.bitPattern))
        XCTAssertEqual(split.metrics, whole.metrics)
        // Plain Double sums of the same values do depend on the order here.
        let inOrder = scores.reduce(0.0) { $0 + $1.averagePrecision }
        let shuffled = order.reduce(0.0) { $0 + scores[$1].averagePrecision }
        XCTAssertNotEqual(inOrder.bitPattern, shuffled.bitPattern)
        // And within the grid's rounding of each value (2⁻⁵³) and one final rounding of the
        // true sum (taken in Float80, 64 significant bits).
        let exact = scores.reduce(Float80(0)) { $0 + Float80($1.averagePrecision) }
        XCTAssertLessThanOrEqual(abs(Float80(whole.averagePrecisionSum) - exact),
                                 Float80(scores.count) * 0x1p-53 + Float80(Double(exact).ulp) / 2)
    }
}

/// The chunked backward of `--deterministic` (`GradientChunks`): it writes every entry of every
/// chunk's gradient (the buffer is never zeroed, so a missed entry would keep the last step's
/// value), and the chunks' gradients add up to the gradient of the whole batch.
final class ChunkedBackwardTests: XCTestCase {
    /// One process's `.chunked` combine: the chunk rows added in order into the first.
    private var inOrder: BatchNormSync {
        .chunked(chunks: 4, combine: { rows, width in
            for row in 1..<(rows.count / width) { for c in 0..<width { rows[c] += rows[row * width + c] } }
        })
    }

    private func check(_ make: (BatchNormSync) -> EmbeddingNetwork, inputSize: Int, count n: Int, _ name: String) throws {
        let whole = make(.local), chunked = make(inOrder)
        let P = whole.parameterLayout.count, d = whole.embeddingSize
        var random = RandomSource(seed: 9)
        var parameters = [Float](repeating: 0, count: P), state = [Float](repeating: 0, count: whole.stateLayout.count)
        whole.initialize(parameters: &parameters, state: &state, random: &random)
        let input = (0..<n * inputSize).map { _ in random.nextUniform() }
        let outputGradient = (0..<n * d).map { _ in random.nextUniform() - 0.5 }
        var stateCopy = state
        let a = try whole.forward(input: input, count: n, parameters: parameters, state: &state, mode: .training)
        let b = try chunked.forward(input: input, count: n, parameters: parameters, state: &stateCopy, mode: .training)
        for i in 0..<n * d { XCTAssertEqual(a[i], b[i], accuracy: 1e-5, "\(name): embedding \(i)") }

        var expected = [Float](repeating: 0, count: P)
        try whole.backward(outputGradient: outputGradient, parameters: parameters, gradients: &expected)
        let chunks = chunked.gradientChunks(batchNorm: chunked.batchNorm)
        XCTAssertEqual(chunks, GradientChunks(count: 4, stride: P, writes: true))
        var perChunk = [Float](repeating: .nan, count: 4 * P)
        try chunked.backward(outputGradient: outputGradient, parameters: parameters, gradients: &perChunk)
        for entry in whole.parameterLayout.entries {
            var difference = 0.0, norm = 0.0, unwritten = 0
            for i in entry.offset..<entry.offset + entry.count {
                let sum = (0..<4).reduce(0.0) { $0 + Double(perChunk[$1 * P + i]) }
                if sum.isNaN { unwritten += 1; continue }
                difference += (sum - Double(expected[i])) * (sum - Double(expected[i]))
                norm += Double(expected[i]) * Double(expected[i])
            }
            XCTAssertEqual(unwritten, 0, "\(name): \(unwritten) entries of \(entry.name) were not written in every chunk")
            XCTAssertLessThanOrEqual(difference.squareRoot(), 1e-5 * norm.squareRoot() + 1e-7, "\(name): \(entry.name)")
        }
        // Written, not added: a second step (forward, backward) over the same buffer gives the same bits.
        let first = perChunk
        _ = try chunked.forward(input: input, count: n, parameters: parameters, state: &stateCopy, mode: .training)
        try chunked.backward(outputGradient: outputGradient, parameters: parameters, gradients: &perChunk)
        let changed = zip(perChunk, first).filter { $0.bitPattern != $1.bitPattern }.count
        XCTAssertEqual(changed, 0, "\(name): \(changed) entries of the chunks' gradients were added to, not written")
    }

    func testMLPChunksAddUpToTheWholeBatch() throws {
        try check({ MLP(inputSize: 12, hiddenSize: 20, embeddingSize: 6, maxBatch: 16, batchNorm: $0) }, inputSize: 12, count: 16, "mlp")
    }

    func testGlyphNetChunksAddUpToTheWholeBatch() throws {
        // Winograd blocks and the direct first layer, and the im2col path for colour input.
        try check({ GlyphNet(embeddingSize: 8, maxBatch: 8, batchNorm: $0, channels: [4, 8, 8, 16]) },
                  inputSize: 32 * 32, count: 8, "glyphnet")
        try check({ GlyphNet(embeddingSize: 8, maxBatch: 8, batchNorm: $0, inputChannels: 3, channels: [4, 8, 8, 16], winograd: false) },
                  inputSize: 3 * 32 * 32, count: 8, "glyphnet, colour, im2col")
    }
}
