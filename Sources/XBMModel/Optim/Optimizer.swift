import Foundation
import XBMKernels

// Optimizers over the flat parameter buffer (Docs/numerics.md), one loop per layout entry so weight
// decay applies only where the entry `decays`. Semantics follow torch.optim, with t the step
// number starting at 1, η the learning rate, λ the weight decay and g the gradient:
//   adam:  g ← g + λθ (L2 in the gradient);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
//          θ ← θ − η · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
//   adamw: θ ← θ − ηλθ (decoupled), then the adam update with g unchanged
//   sgd:   g ← g + λθ;  b ← μ b + g (b starts at 0, so b = g at t = 1, as torch);  θ ← θ − η b

/// Which update rule `--optimizer` selects.
public enum OptimizerKind: String, Sendable, CaseIterable, Codable {
    case adam, adamw, sgd
}

/// One optimizer instance for one parameter layout; its moments are flat buffers of the same
/// layout, exposed for checkpoints.
public final class Optimizer {
    public let kind: OptimizerKind
    public let layout: ParameterLayout
    public let weightDecay: Float
    public let momentum: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    /// adam/adamw: [m, v]; sgd: [momentum buffer]. Each has `layout.count` elements.
    public var stateBuffers: [FlatBuffer<Float>]
    /// Steps taken so far (t − 1 before a step); restored from checkpoints.
    public var stepCount: Int = 0

    public init(kind: OptimizerKind, layout: ParameterLayout, weightDecay: Float = 0,
                momentum: Float = 0.9, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        precondition(weightDecay >= 0 && weightDecay.isFinite, "weight decay must be finite and ≥ 0, got \(weightDecay)")
        precondition(momentum >= 0 && momentum < 1, "SGD momentum must be in [0, 1), got \(momentum)")
        precondition(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam betas must be in [0, 1), got \(beta1), \(beta2)")
        precondition(epsilon > 0, "Adam epsilon must be positive, got \(epsilon)")
        self.kind = kind
        self.layout = layout
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        let buffers = kind == .sgd ? 1 : 2
        stateBuffers = (0..<buffers).map { _ in FlatBuffer<Float>(count: layout.count) }
    }

    /// Applies one update to `parameters` (layout.count) from `gradients` (layout.count).
    public func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, learningRate: Float) {
        precondition(stateBuffers.allSatisfy { $0.count == layout.count },
                     "optimizer state has \(stateBuffers.map(\.count)) elements, layout needs \(layout.count)")
        stepCount += 1
        switch kind {
        case .adam, .adamw:
            let decoupled = kind == .adamw
            // Bias corrections in Double: 1 − β2ᵗ is tiny for small t and loses digits in Float.
            let t = Double(stepCount)
            let correction1 = Float(1 - pow(Double(beta1), t)), correction2 = Float(1 - pow(Double(beta2), t))
            let m = stateBuffers[0].pointer, v = stateBuffers[1].pointer
            for entry in layout.entries {
                let lambda = entry.decays ? weightDecay : 0
                adamUpdate(parameters: parameters + entry.offset, gradients: gradients + entry.offset,
                           m: m + entry.offset, v: v + entry.offset, count: entry.count,
                           learningRate: learningRate, l2: decoupled ? 0 : lambda, decoupled: decoupled ? lambda : 0,
                           correction1: correction1, correction2: correction2)
            }
        case .sgd:
            let buffer = stateBuffers[0].pointer
            for entry in layout.entries {
                let lambda = entry.decays ? weightDecay : 0
                let theta = parameters + entry.offset, g = gradients + entry.offset, b = buffer + entry.offset
                for i in 0..<entry.count {
                    b[i] = momentum * b[i] + (g[i] + lambda * theta[i])
                    theta[i] -= learningRate * b[i]
                }
            }
        }
    }

    @inline(__always)
    private func adamUpdate(parameters theta: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>,
                            m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                            learningRate: Float, l2: Float, decoupled: Float, correction1: Float, correction2: Float) {
        let b1 = beta1, b2 = beta2, eps = epsilon
        let stepSize = learningRate / correction1, inverseRootCorrection2 = 1 / correction2.squareRoot()
        // Element-wise, so splitting over threads changes nothing in the result. Spelled out
        // in 16-wide vectors (the compiler does not vectorise it: the four pointers may alias);
        // the tail is one partial vector, zeros in the unused lanes.
        parallelChunks((count + 4095) / 4096, minimumChunk: 8) { blocks in
            var i = blocks.lowerBound * 4096
            let end = min(blocks.upperBound * 4096, count)
            while i < end {
                let lanes = min(vectorWidth, end - i)
                let t0 = loadVector(theta + i, lanes: lanes)
                let decayed = t0 - learningRate * decoupled * t0
                let gradient = loadVector(g + i, lanes: lanes) + l2 * decayed
                let m1 = b1 * loadVector(m + i, lanes: lanes) + (1 - b1) * gradient
                let v1 = b2 * loadVector(v + i, lanes: lanes) + (1 - b2) * gradient * gradient
                storeVector(decayed - stepSize * m1 / (v1.squareRoot() * inverseRootCorrection2 + eps), theta + i, lanes: lanes)
                storeVector(m1, m + i, lanes: lanes)
                storeVector(v1, v + i, lanes: lanes)
                i += lanes
            }
        }
    }
}
