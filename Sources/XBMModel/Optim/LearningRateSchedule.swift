import Foundation

// Learning-rate schedules with linear warm-up (Docs/numerics.md). With i the 0-based iteration,
// η the base rate and W the warm-up length:
//   warm-up factor  w(i) = (i + 1) / W for i < W, else 1   (ramps linearly from 0; the
//                   first step already moves, reaching η at i = W − 1)
//   constant        η · w(i)
//   step            η · γ^(number of milestones ≤ i) · w(i)
//   cosine          η · ½ (1 + cos(π · p)) · w(i),  p = clamp((i − W) / (T − W), 0, 1)
//                   (decays to 0 at i = T, the total iteration count, and stays there)

/// The shape of a schedule, as `--lr-schedule` names it.
public enum ScheduleKind: String, Sendable, CaseIterable, Codable {
    case constant, step, cosine
}

public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public var kind: ScheduleKind
    public var baseRate: Float
    public var warmupIterations: Int
    /// step: iterations at which the rate is multiplied by `gamma` (from that iteration on).
    public var milestones: [Int]
    public var gamma: Float
    /// cosine: T, the iteration at which the rate reaches 0.
    public var totalIterations: Int

    public init(kind: ScheduleKind = .constant, baseRate: Float, warmupIterations: Int = 0,
                milestones: [Int] = [], gamma: Float = 0.1, totalIterations: Int = 0) {
        precondition(baseRate >= 0 && baseRate.isFinite, "base learning rate must be finite and ≥ 0, got \(baseRate)")
        precondition(warmupIterations >= 0, "warm-up iterations must be ≥ 0, got \(warmupIterations)")
        precondition(kind != .cosine || totalIterations > warmupIterations,
                     "cosine schedule needs total iterations (\(totalIterations)) > warm-up (\(warmupIterations))")
        self.kind = kind
        self.baseRate = baseRate
        self.warmupIterations = warmupIterations
        self.milestones = milestones
        self.gamma = gamma
        self.totalIterations = totalIterations
    }

    /// The rate for 0-based `iteration` (formulas at the top of the file).
    public func rate(at iteration: Int) -> Float {
        precondition(iteration >= 0, "iteration must be ≥ 0, got \(iteration)")
        let warmup = iteration < warmupIterations ? Double(iteration + 1) / Double(warmupIterations) : 1
        let base = Double(baseRate)
        switch kind {
        case .constant:
            return Float(base * warmup)
        case .step:
            let passed = milestones.filter { $0 <= iteration }.count
            var factor = 1.0
            for _ in 0..<passed { factor *= Double(gamma) }
            return Float(base * factor * warmup)
        case .cosine:
            let progress = min(max(Double(iteration - warmupIterations) / Double(totalIterations - warmupIterations), 0), 1)
            return Float(base * 0.5 * (1 + cos(Double.pi * progress)) * warmup)
        }
    }
}
