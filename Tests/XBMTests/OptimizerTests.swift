@testable import XBMKernels
@testable import XBMModel
import XCTest

// Two steps of each optimizer on θ0 = 1 with gradients 0.5 then −0.25, lr 0.1, worked out by
// hand from the torch.optim formulas (Optimizer.swift header). Two tensors: "w" decays,
// "b" does not, so the decay switch is checked too. Float arithmetic over a handful of
// operations on values ~1: tolerance 2e-6.
final class OptimizerTests: XCTestCase {
    private let tolerance: Float = 2e-6

    private var layout: ParameterLayout {
        var layout = ParameterLayout()
        layout.add("w", shape: [1], decays: true)
        layout.add("b", shape: [1], decays: false)
        return layout
    }

    private func twoSteps(_ optimizer: Optimizer) -> [[Float]] {
        var parameters: [Float] = [1, 1]
        var trajectory: [[Float]] = []
        for g: Float in [0.5, -0.25] {
            optimizer.step(parameters: &parameters, gradients: [g, g], learningRate: 0.1)
            trajectory.append(parameters)
        }
        return trajectory
    }

    private func assertTrajectory(_ actual: [[Float]], _ expected: [[Float]], _ what: String) {
        for (step, (a, e)) in zip(actual, expected).enumerated() {
            for i in 0..<2 { XCTAssertEqual(a[i], e[i], accuracy: tolerance, "\(what) step \(step + 1) tensor \(i)") }
        }
    }

    func testAdamWithoutDecay() {
        // Step 1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25 → θ = 1 − 0.1·0.5/0.5 = 0.9.
        // Step 2: m = 0.045 − 0.025 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
        //         m̂ = 0.02/0.19 = 0.1052632, v̂ = 0.00031225/0.001999 = 0.1562031 (√ 0.3952254)
        //         → θ = 0.9 − 0.1·0.1052632/0.3952254 = 0.8733663.
        let optimizer = Optimizer(kind: .adam, layout: layout)
        assertTrajectory(twoSteps(optimizer), [[0.9, 0.9], [0.8733663, 0.8733663]], "adam")
        XCTAssertEqual(optimizer.stepCount, 2)
        XCTAssertEqual(optimizer.stateBuffers.count, 2)
    }

    func testAdamAddsL2DecayToTheGradient() {
        // "w": g1 = 0.5 + 0.1·1 = 0.6 → m̂ = 0.6, v̂ = 0.36 → θ = 0.9.
        //      g2 = −0.25 + 0.1·0.9 = −0.16, m = 0.054 − 0.016 = 0.038, v = 0.00035964 + 0.0000256
        //      = 0.00038524, m̂ = 0.2, v̂ = 0.1927164 (√ 0.4389948) → θ = 0.9 − 0.02/0.4389948 = 0.8544414.
        // "b": no decay, as in testAdamWithoutDecay.
        let optimizer = Optimizer(kind: .adam, layout: layout, weightDecay: 0.1)
        assertTrajectory(twoSteps(optimizer), [[0.9, 0.9], [0.8544414, 0.8733663]], "adam L2")
    }

    func testAdamWDecouplesDecay() {
        // "w": θ ← θ(1 − 0.1·0.1) before each Adam update: 0.99 − 0.1 = 0.89;
        //      0.89·0.99 = 0.8811, − 0.0266337 (the undecayed step 2) = 0.8544663.
        let optimizer = Optimizer(kind: .adamw, layout: layout, weightDecay: 0.1)
        assertTrajectory(twoSteps(optimizer), [[0.89, 0.9], [0.8544663, 0.8733663]], "adamw")
    }

    func testSGDWithMomentumAndDecay() {
        // "w": g1 = 0.6, b = 0.6, θ = 0.94; g2 = −0.25 + 0.094 = −0.156, b = 0.54 − 0.156 = 0.384,
        //      θ = 0.94 − 0.0384 = 0.9016.
        // "b": b = 0.5, θ = 0.95; b = 0.45 − 0.25 = 0.2, θ = 0.93.
        let optimizer = Optimizer(kind: .sgd, layout: layout, weightDecay: 0.1, momentum: 0.9)
        assertTrajectory(twoSteps(optimizer), [[0.94, 0.95], [0.9016, 0.93]], "sgd")
        XCTAssertEqual(optimizer.stateBuffers.count, 1)
    }

    func testRestoredStateContinuesExactly() {
        let original = Optimizer(kind: .adam, layout: layout)
        var parameters: [Float] = [1, 1]
        original.step(parameters: &parameters, gradients: [0.5, 0.5], learningRate: 0.1)
        let restored = Optimizer(kind: .adam, layout: layout)
        restored.stepCount = original.stepCount
        for (target, source) in zip(restored.stateBuffers, original.stateBuffers) { target.copy(from: source.array) }
        var copy = parameters
        original.step(parameters: &parameters, gradients: [-0.25, -0.25], learningRate: 0.1)
        restored.step(parameters: &copy, gradients: [-0.25, -0.25], learningRate: 0.1)
        XCTAssertEqual(parameters, copy)
    }

    func testScheduleValues() {
        // Warm-up W = 4: (i + 1)/4 of the rate for i < 4.
        let constant = LearningRateSchedule(kind: .constant, baseRate: 0.1, warmupIterations: 4)
        XCTAssertEqual(constant.rate(at: 0), 0.025, accuracy: 1e-8)
        XCTAssertEqual(constant.rate(at: 2), 0.075, accuracy: 1e-8)
        XCTAssertEqual(constant.rate(at: 3), 0.1, accuracy: 1e-8)
        XCTAssertEqual(constant.rate(at: 1000), 0.1, accuracy: 1e-8)

        // Milestones 10 and 20, γ 0.1: 0.1 before 10, 0.01 from 10, 0.001 from 20.
        let step = LearningRateSchedule(kind: .step, baseRate: 0.1, milestones: [10, 20], gamma: 0.1)
        XCTAssertEqual(step.rate(at: 9), 0.1, accuracy: 1e-8)
        XCTAssertEqual(step.rate(at: 10), 0.01, accuracy: 1e-9)
        XCTAssertEqual(step.rate(at: 19), 0.01, accuracy: 1e-9)
        XCTAssertEqual(step.rate(at: 25), 0.001, accuracy: 1e-10)

        // Cosine over 100 iterations after W = 4 (T = 104): p = (i − 4)/100.
        let cosine = LearningRateSchedule(kind: .cosine, baseRate: 0.1, warmupIterations: 4, totalIterations: 104)
        XCTAssertEqual(cosine.rate(at: 1), 0.05, accuracy: 1e-8)       // warm-up 2/4, p = 0
        XCTAssertEqual(cosine.rate(at: 4), 0.1, accuracy: 1e-8)        // p = 0
        XCTAssertEqual(cosine.rate(at: 29), 0.0853553, accuracy: 1e-7) // p = ¼: 0.05·(1 + √½)
        XCTAssertEqual(cosine.rate(at: 54), 0.05, accuracy: 1e-8)      // p = ½
        XCTAssertEqual(cosine.rate(at: 104), 0, accuracy: 1e-9)        // p = 1
        XCTAssertEqual(cosine.rate(at: 500), 0, accuracy: 1e-9)        // stays at 0
    }
}
