import Collectives
import Foundation

/// Every option of a training run, in six typed groups, one per concern. The defaults are the
/// recipe of Docs/results.md, written relative to the run (the rate drop and the memory start
/// at 75% of `iters`) so that they hold on data and lengths they were not tuned on.
///
/// The JSON form (a run's `config.json`, a `--config` file, the checkpoint's record) is one
/// flat object keyed by the command-line option names without their dashes; each group reads
/// and writes its own keys of it with synthesised `Codable`.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var model = ModelConfig()
    public var loss = LossConfig()
    public var optimization = OptimizationConfig()
    public var memory = MemoryConfig()
    public var evaluation = EvaluationConfig()
    public var run = RunConfig()

    public init() {}

    public init(from decoder: Decoder) throws {
        model = try ModelConfig(from: decoder)
        loss = try LossConfig(from: decoder)
        optimization = try OptimizationConfig(from: decoder)
        memory = try MemoryConfig(from: decoder)
        evaluation = try EvaluationConfig(from: decoder)
        run = try RunConfig(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try model.encode(to: encoder)
        try loss.encode(to: encoder)
        try optimization.encode(to: encoder)
        try memory.encode(to: encoder)
        try evaluation.encode(to: encoder)
        try run.encode(to: encoder)
    }

    /// The keys of the JSON form: every option of `train` except `--config` itself.
    public static let keys: [String] = ModelConfig.keys + LossConfig.keys + OptimizationConfig.keys
        + MemoryConfig.keys + EvaluationConfig.keys + RunConfig.keys

    /// The memory's first iteration in this run; nil for `--xbm-start auto`.
    public var memoryStartIteration: Int? { memory.start.resolved(iterations: optimization.scheduleLength) }

    /// Pretty, key-sorted JSON (for `config.json` and checkpoints).
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }
}

/// A configuration problem, reported before any work starts (Docs/distributed.md).
public struct ConfigError: SameOnEveryRankError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
