import XBMKernels
import XBMModel
/// What `benchmarkNetworkTraining` measured.
public struct NetworkBenchmarkResult: Sendable, Equatable {
    public var imagesPerSecond: Double
    public var secondsPerStep: Double
    public var steps: Int
    public var batch: Int
}

/// Times `steps` training steps of `network` on random data after `warmupSteps` untimed ones.
/// A step is what the trainer does around the loss: zero the gradients, forward in training
/// mode, backward of a fixed random dL/dE with unit-length rows (standing in for the loss),
/// and an Adam step (lr 1e-3). Everything is allocated before the clock starts.
/// Returns images per second = steps · batch / elapsed seconds.
public func benchmarkNetworkTraining(network: EmbeddingNetwork, batch: Int, steps: Int, warmupSteps: Int = 5,
                                     seed: UInt64 = 0) throws -> NetworkBenchmarkResult {
    precondition(batch >= 1 && batch <= network.maxBatch, "benchmark batch \(batch) outside 1...\(network.maxBatch)")
    precondition(steps >= 1 && warmupSteps >= 0, "benchmark needs steps ≥ 1 and warm-up ≥ 0, got \(steps), \(warmupSteps)")
    var random = RandomSource(seed: seed)
    let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
    let gradients = FlatBuffer<Float>(count: network.parameterLayout.count)
    let state = FlatBuffer<Float>(count: network.stateLayout.count)
    network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
    let sampleSize = network.inputShape.reduce(1, *)
    let input = FlatBuffer<Float>(count: batch * sampleSize)
    for i in 0..<input.count { input[i] = random.nextUniform() }
    let d = network.embeddingSize
    let outputGradient = FlatBuffer<Float>(count: batch * d)
    for row in 0..<batch {
        let g = outputGradient.pointer + row * d
        var norm: Float = 0
        for j in 0..<d { g[j] = Float(random.nextNormal()); norm += g[j] * g[j] }
        for j in 0..<d { g[j] /= norm.squareRoot() }
    }
    let optimizer = Optimizer(kind: .adam, layout: network.parameterLayout)

    func trainingStep() throws {
        gradients.zero()
        _ = try network.forward(input: input.pointer, count: batch, parameters: parameters.pointer,
                                state: state.pointer, mode: .training)
        try network.backward(outputGradient: outputGradient.pointer, parameters: parameters.pointer,
                             gradients: gradients.pointer)
        optimizer.step(parameters: parameters.pointer, gradients: gradients.pointer, learningRate: 1e-3)
    }

    for _ in 0..<warmupSteps { try trainingStep() }
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<steps { try trainingStep() }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    return NetworkBenchmarkResult(imagesPerSecond: Double(steps * batch) / seconds, secondsPerStep: seconds / Double(steps),
                                  steps: steps, batch: batch)
}
