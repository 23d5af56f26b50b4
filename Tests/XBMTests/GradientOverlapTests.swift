import Collectives
import Foundation
import XBMKernels
import XBMModel
import XBMTraining
import XCTest

/// Docs/distributed.md, Overlap: starting the gradient's allreduce in buckets during the
/// backward changes when the sums travel, not what they are. Simulated ranks copy a started
/// buffer at the start and sum the copy at `wait()`, so a bucket started before its
/// gradients were final would sum stale values and show here.
final class GradientOverlapTests: XCTestCase {
    private struct Run: Sendable {
        var losses: [Double]
        var parameters: [UInt32]
        var buckets: [Range<Int>]
        var checksum: UInt64
    }

    /// A network that claims every gradient final before its backward has computed any: the
    /// mistake the comparison must be able to see.
    private final class PrematureReports: EmbeddingNetwork {
        let base: EmbeddingNetwork
        init(_ base: EmbeddingNetwork) { self.base = base }
        var parameterLayout: ParameterLayout { base.parameterLayout }
        var stateLayout: ParameterLayout { base.stateLayout }
        var inputShape: [Int] { base.inputShape }
        var embeddingSize: Int { base.embeddingSize }
        var maxBatch: Int { base.maxBatch }
        var headParameterNames: [String] { base.headParameterNames }
        var batchNorm: BatchNormSync { base.batchNorm }
        func initialize(parameters: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>, random: inout RandomSource) {
            base.initialize(parameters: parameters, state: state, random: &random)
        }
        func forward(input: UnsafePointer<Float>, count: Int, parameters: UnsafePointer<Float>,
                     state: UnsafeMutablePointer<Float>, mode: ForwardMode) throws -> UnsafePointer<Float> {
            try base.forward(input: input, count: count, parameters: parameters, state: state, mode: mode)
        }
        func backward(outputGradient: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                      gradients: UnsafeMutablePointer<Float>, gradientsFinal: ((Int) throws -> Void)?) throws {
            try gradientsFinal?(0)
            try base.backward(outputGradient: outputGradient, parameters: parameters, gradients: gradients, gradientsFinal: nil)
        }
    }

    private func config(_ model: ModelChoice) -> TrainingConfig {
        var c = TrainingConfig()
        c.model.model = model
        c.model.dim = 8
        c.model.hidden = 16
        c.optimization.batch = 12
        c.optimization.instances = model == .glyphnet ? 2 : 4
        c.memory.size = 0
        return c
    }

    private func train(_ config: TrainingConfig, ranks: Int, steps: Int = 4, overlap: GradientOverlap?,
                       premature: Bool = false) throws -> [Run] {
        let isImages = config.model.model == .glyphnet
        let shape = isImages ? [1, 32, 32] : [16]
        return try SimulatedRanks.run(size: ranks) { comm in
            let b = config.optimization.batch / comm.size
            let made = try config.model.makeNetwork(sampleShape: shape, isImages: isImages, maxBatch: b,
                                                    batchNorm: .synchronized(reducer: { [unowned comm] in try comm.allreduceSum($0) }))
            let network: EmbeddingNetwork = premature ? PrematureReports(made) : made
            let step = DistributedStep(comm: comm, network: network, loss: makePairLoss(config.loss.kind), memory: nil,
                                       memoryWeight: 0, memoryReduction: .mean, memoryStart: .max,
                                       optimizer: config.optimization.makeOptimizer(layout: network.parameterLayout),
                                       globalBatch: config.optimization.batch)
            step.gradientOverlap = overlap
            try step.initializeParameters(seed: 7)
            let sample = shape.reduce(1, *)
            var random = RandomSource(seed: 100 + UInt64(comm.rank))
            let labels = (0..<config.optimization.batch).map { Int32($0 / config.optimization.instances) }
            var losses: [Double] = []
            for iteration in 0..<steps {
                let input = (0..<b * sample).map { _ in random.nextUniform() }
                let result = try input.withUnsafeBufferPointer { x in
                    try labels.withUnsafeBufferPointer { y in
                        try step.run(input: x.baseAddress!, labels: y.baseAddress!, iteration: iteration,
                                     learningRate: 1e-3, stopRequested: false)
                    }
                }
                losses.append(result.loss)
            }
            return Run(losses: losses, parameters: step.parameters.array.map(\.bitPattern),
                       buckets: step.lastGradientBuckets, checksum: step.replicaChecksum())
        }
    }

    private func assertTiles(_ buckets: [Range<Int>], _ count: Int, _ context: String) {
        // High offsets first, contiguous, down to 0: every element in exactly one bucket.
        var end = count
        for bucket in buckets {
            XCTAssertEqual(bucket.upperBound, end, "\(context): buckets \(buckets) leave a gap or overlap")
            end = bucket.lowerBound
        }
        XCTAssertEqual(end, 0, "\(context): buckets \(buckets) do not reach offset 0")
    }

    func testOverlapGivesTheSameParametersBitForBitOnTwoAndThreeRanks() throws {
        let cases: [(ModelChoice, GradientOverlap)] = [
            (.mlp, GradientOverlap(bucketBytes: 256, pollsBetweenLayers: false)),
            (.mlp, GradientOverlap(bucketBytes: 1, pollsBetweenLayers: true)),
            (.glyphnet, GradientOverlap(bucketBytes: 64 << 10, pollsBetweenLayers: true)),
        ]
        for (model, overlap) in cases {
            let c = config(model)
            for ranks in [2, 3] {
                let context = "\(model), \(ranks) ranks, bucket \(overlap.bucketBytes) B"
                let plain = try train(c, ranks: ranks, overlap: nil)
                let overlapped = try train(c, ranks: ranks, overlap: overlap)
                XCTAssertTrue(plain[0].losses.allSatisfy { $0.isFinite && $0 > 0 }, context)
                for (a, b) in zip(plain, overlapped) {
                    XCTAssertEqual(a.losses, b.losses, context)
                    XCTAssertEqual(a.parameters, b.parameters, "\(context): parameters differ")
                    XCTAssertEqual(a.checksum, b.checksum, context)
                }
                let buckets = overlapped[0].buckets
                XCTAssertGreaterThan(buckets.count, 1, "\(context): one bucket would not test the boundaries")
                assertTiles(buckets, plain[0].parameters.count, context)
            }
        }
    }

    func testTheComparisonSeesABucketStartedBeforeItsGradientsWereFinal() throws {
        let c = config(.mlp)
        let plain = try train(c, ranks: 2, overlap: nil)
        let premature = try train(c, ranks: 2, overlap: GradientOverlap(bucketBytes: 256), premature: true)
        XCTAssertNotEqual(plain[0].parameters, premature[0].parameters)
    }

    func testANetworkThatNeverReportsGetsOneBucketAfterItsBackward() throws {
        // PrematureReports without overlap never passes the notification on: the step then
        // behaves as without overlap (and PrematureReports with gradientsFinal nil is harmless).
        let c = config(.mlp)
        let plain = try train(c, ranks: 2, overlap: nil)
        XCTAssertEqual(plain[0].buckets, [0..<plain[0].parameters.count])
        let wrapped = try train(c, ranks: 2, overlap: nil, premature: true)
        XCTAssertEqual(plain[0].parameters, wrapped[0].parameters)
    }
}
