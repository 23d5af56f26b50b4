import Collectives
import Foundation
import TestSupport
@testable import XBMKernels
@testable import XBMModel
import XCTest

// Synchronised batch norm across simulated ranks, and a small overfitting run that only a
// correct gradient gets to near-zero loss.
final class ModelTrainingTests: XCTestCase {
    /// Two ranks with half the batch each and BN synchronised by `allreduceSum` give the
    /// outputs, summed gradients and running statistics of one rank with the whole batch
    /// (Docs/distributed.md). Only the order of Float sums differs (64-row partial sums, split at other
    /// rows), ~1e-7 relative per sum; the backward's cancellation g − mean(g) − x̂·mean(g·x̂)
    /// amplifies that, so gradients get 1e-4 (as the layer checks), outputs 1e-5.
    private func checkSynchronisedRanks(count n: Int, inputSize: Int, seed: UInt64,
                                        make: @escaping @Sendable (Int, BatchNormSync) -> EmbeddingNetwork) throws {
        let single = make(n, .local)
        var random = RandomSource(seed: seed)
        let parameters = FlatBuffer<Float>(count: single.parameterLayout.count)
        let state = FlatBuffer<Float>(count: single.stateLayout.count)
        single.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        for entry in single.parameterLayout.entries where !entry.decays {
            for i in 0..<entry.count { parameters[entry.offset + i] = 0.5 + random.nextUniform() }
        }
        let initialParameters = parameters.array, initialState = state.array
        let d = single.embeddingSize
        let input = randomFloats(n * inputSize, &random, low: 0, high: 1), r = randomFloats(n * d, &random)

        let gradients = FlatBuffer<Float>(count: parameters.count)
        let embeddings = try single.forward(input: input, count: n, parameters: parameters.pointer,
                                            state: state.pointer, mode: .training)
        let expectedEmbeddings = Array(UnsafeBufferPointer(start: embeddings, count: n * d))
        try single.backward(outputGradient: r, parameters: parameters.pointer, gradients: gradients.pointer)

        let half = n / 2
        let perRank = try SimulatedRanks.run(size: 2) { comm -> ([Float], [Float], [Float]) in
            let network = make(half, .synchronized(reducer: { try comm.allreduceSum($0) }))
            let parameters = FlatBuffer<Float>(count: initialParameters.count)
            parameters.copy(from: initialParameters)
            let state = FlatBuffer<Float>(count: initialState.count)
            state.copy(from: initialState)
            let gradients = FlatBuffer<Float>(count: initialParameters.count)
            let rows = comm.rank * half..<(comm.rank + 1) * half
            let localInput = Array(input[rows.lowerBound * inputSize..<rows.upperBound * inputSize])
            let localR = Array(r[rows.lowerBound * d..<rows.upperBound * d])
            let embeddings = try network.forward(input: localInput, count: half, parameters: parameters.pointer,
                                                 state: state.pointer, mode: .training)
            let output = Array(UnsafeBufferPointer(start: embeddings, count: half * d))
            try network.backward(outputGradient: localR, parameters: parameters.pointer, gradients: gradients.pointer)
            return (output, gradients.array, state.array)
        }
        let combined = perRank[0].0 + perRank[1].0
        XCTAssertLessThanOrEqual(relativeMaxError(combined.doubles, expectedEmbeddings.doubles), 1e-5, "embeddings")
        let summed = zip(perRank[0].1, perRank[1].1).map { Double($0) + Double($1) }
        XCTAssertLessThanOrEqual(relativeMaxError(summed, gradients.array.doubles), 1e-4, "summed gradients")
        for rank in 0..<2 {
            XCTAssertLessThanOrEqual(relativeMaxError(perRank[rank].2.doubles, state.array.doubles), 1e-5, "running statistics")
        }
        // Local BN on the halves would differ: the check above is not vacuous.
        let local = make(half, .local)
        let localState = FlatBuffer<Float>(count: initialState.count)
        localState.copy(from: initialState)
        let localEmbeddings = try local.forward(input: input, count: half, parameters: parameters.pointer,
                                                state: localState.pointer, mode: .training)
        let localOutput = Array(UnsafeBufferPointer(start: localEmbeddings, count: half * d))
        XCTAssertGreaterThan(relativeMaxError(localOutput.doubles, Array(expectedEmbeddings[0..<half * d]).doubles), 1e-3)
    }

    func testSynchronisedBatchNormGlyphNet() throws {
        try checkSynchronisedRanks(count: 6, inputSize: 64, seed: 41) { maxBatch, sync in
            GlyphNet(embeddingSize: 5, maxBatch: maxBatch, batchNorm: sync, height: 8, width: 8, channels: [4, 6, 8, 10])
        }
    }

    func testSynchronisedBatchNormMLP() throws {
        try checkSynchronisedRanks(count: 8, inputSize: 7, seed: 43) { maxBatch, sync in
            MLP(inputSize: 7, hiddenSize: 12, embeddingSize: 4, maxBatch: maxBatch, batchNorm: sync)
        }
    }

    /// 8 random 16×16 images in 4 classes; loss = mean over samples of the softmax
    /// cross-entropy of s·e·p_c against fixed random unit class prototypes p_c (s = 8).
    /// Starts around 2 (random embeddings, logits up to ±8); the best reachable is about
    /// log(1 + 3e^{−8(1−cos)}) ≈ 0.01 for prototypes ~±0.25 apart. < 0.1 after 150 Adam steps
    /// fails for gross errors (a flipped conv weight gradient ends at 1.8); subtle ones (a
    /// dropped batch-norm term still descends) are the finite-difference tests' job.
    func testGlyphNetOverfitsATinyLabelledSet() throws {
        let n = 8, classes = 4, d = 16, s: Float = 8
        let network = GlyphNet(embeddingSize: d, maxBatch: n, batchNorm: .local, height: 16, width: 16, channels: [8, 16, 16, 32])
        var random = RandomSource(seed: 77)
        let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
        let gradients = FlatBuffer<Float>(count: parameters.count)
        let state = FlatBuffer<Float>(count: network.stateLayout.count)
        network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        let images = randomFloats(n * 256, &random, low: 0, high: 1)
        let labels = (0..<n).map { $0 % classes }
        var prototypes = (0..<classes * d).map { _ in Float(random.nextNormal()) }
        for c in 0..<classes {
            let norm = (0..<d).reduce(Float(0)) { $0 + prototypes[c * d + $1] * prototypes[c * d + $1] }.squareRoot()
            for j in 0..<d { prototypes[c * d + j] /= norm }
        }
        let optimizer = Optimizer(kind: .adam, layout: network.parameterLayout)
        var outputGradient = [Float](repeating: 0, count: n * d)
        var firstLoss = 0.0, loss = 0.0, correct = 0
        for step in 0..<150 {
            let e = try network.forward(input: images, count: n, parameters: parameters.pointer, state: state.pointer, mode: .training)
            loss = 0
            correct = 0
            for i in 0..<n {
                let logits = (0..<classes).map { c in s * (0..<d).reduce(Float(0)) { $0 + e[i * d + $1] * prototypes[c * d + $1] } }
                let top = logits.max()!
                let exps = logits.map { Double(exp($0 - top)) }
                let total = exps.reduce(0, +)
                loss += -log(exps[labels[i]] / total) / Double(n)
                if logits.firstIndex(of: top) == labels[i] { correct += 1 }
                // dL/de_i = (s/n) Σ_c (softmax_c − [c = y_i]) p_c
                for j in 0..<d {
                    outputGradient[i * d + j] = (0..<classes).reduce(Float(0)) { sum, c in
                        sum + s / Float(n) * (Float(exps[c] / total) - (c == labels[i] ? 1 : 0)) * prototypes[c * d + j]
                    }
                }
            }
            if step == 0 { firstLoss = loss }
            gradients.zero()
            try network.backward(outputGradient: outputGradient, parameters: parameters.pointer, gradients: gradients.pointer)
            optimizer.step(parameters: parameters.pointer, gradients: gradients.pointer, learningRate: 0.01)
        }
        XCTAssertGreaterThan(firstLoss, 0.8, "starts near chance")
        XCTAssertLessThan(loss, 0.1, "loss after 150 steps")
        XCTAssertEqual(correct, n, "every sample nearest its own prototype")
    }
}
