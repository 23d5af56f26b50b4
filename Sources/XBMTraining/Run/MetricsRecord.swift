import Foundation
import XBMEval

/// One line of a run's `metrics.jsonl`, and the scalars of one TensorBoard step: a logged
/// training iteration, an evaluation or a drift measurement (Docs/evaluation.md, "metrics.jsonl",
/// lists the keys). Every value but `iteration` is optional and is left out of the line when nil,
/// so a line holds only what was measured at that iteration.
///
/// The keys are declared once, in `numbers` and `integers` (and the `R@K` family of `recall`):
/// the encoder, the decoder, TensorBoard's scalars and the plot all go through them, so a key
/// cannot be renamed on one side only.
public struct MetricsRecord: Equatable, Sendable {
    /// `iter`: the iterations done when the record was taken.
    public var iteration: Int

    // A training iteration.
    /// `loss`: the step's loss, both terms.
    public var loss: Double?
    /// `batch_loss`, `memory_loss`: the terms against the global batch and against the memory.
    public var batchLoss: Double?
    public var memoryLoss: Double?
    /// `lr`: the learning rate of the step.
    public var learningRate: Double?
    /// `images_per_second` since the previous logged iteration.
    public var imagesPerSecond: Double?
    /// `memory_count`: the memory's valid rows.
    public var memoryCount: Int?

    // Pair diagnostics (Docs/losses.md, Diagnostics): per anchor, means over the global batch.
    public var batch = PairDiagnostics()
    /// The memory term's, only while it runs.
    public var memory = PairDiagnostics()
    /// `memory_age`: the mean age of the memory's rows, in iterations.
    public var memoryAge: Double?
    /// `memory_active_neg_age`: the mean age of the memory rows that were active negatives.
    public var memoryActiveNegativeAge: Double?

    // A drift measurement (`--drift-every`).
    /// `drift`: D(t, Δ) of the drift probe (Docs/losses.md).
    public var drift: Double?
    /// `memory_drift`: mean ‖m_j − f_t(x_j)‖ over a sample of the memory's rows, the row as
    /// stored against the current model's embedding of its sample; `memory_drift_compensated`
    /// the same for the row the memory term reads under `--xbm-compensate`; `memory_drift_age`
    /// the sampled rows' mean age (Docs/losses.md, Drift compensation).
    public var memoryDrift: Double?
    public var memoryDriftCompensated: Double?
    public var memoryDriftAge: Double?

    // An evaluation.
    /// `R@K` for each K evaluated, in percent.
    public var recall: [Int: Double] = [:]
    /// `MAP@R`, `R-precision`, in percent.
    public var mapAtR: Double?
    public var rPrecision: Double?
    /// `NMI`, `AMI`: k-means on the query embeddings against their classes, in percent (the
    /// final evaluation; Docs/evaluation.md, Clustering).
    public var nmi: Double?
    public var ami: Double?
    /// `eval_seconds`: the evaluation's wall time.
    public var evaluationSeconds: Double?
    /// `queries`, `skipped_queries`: queries scored, and left out for having no other item of
    /// their class (Docs/evaluation.md).
    public var queries: Int?
    public var skippedQueries: Int?

    public init(iteration: Int) { self.iteration = iteration }

    /// The record of an evaluation at `iteration`.
    public init(iteration: Int, retrieval metrics: RetrievalMetrics, seconds: Double?) {
        self.init(iteration: iteration)
        recall = metrics.recall
        mapAtR = metrics.mapAtR
        rPrecision = metrics.rPrecision
        queries = metrics.queries
        skippedQueries = metrics.skipped
        nmi = metrics.clustering?.nmi
        ami = metrics.clustering?.ami
        evaluationSeconds = seconds
    }

    /// Active pairs and hardest similarities of one term, each a mean over anchors.
    public struct PairDiagnostics: Equatable, Sendable {
        /// `*_active_pos`, `*_active_neg`: pairs with a non-zero gradient.
        public var activePositives: Double?
        public var activeNegatives: Double?
        /// `*_hardest_neg`, `*_hardest_pos`: the most similar negative, the least similar positive.
        public var hardestNegative: Double?
        public var hardestPositive: Double?
        public init() {}
    }

    /// Every real-valued key with its field, once.
    public static let numbers: [(key: String, field: WritableKeyPath<MetricsRecord, Double?> & Sendable)] = [
        ("loss", \.loss), ("batch_loss", \.batchLoss), ("memory_loss", \.memoryLoss),
        ("lr", \.learningRate), ("images_per_second", \.imagesPerSecond),
        ("batch_active_pos", \.batch.activePositives), ("batch_active_neg", \.batch.activeNegatives),
        ("batch_hardest_neg", \.batch.hardestNegative), ("batch_hardest_pos", \.batch.hardestPositive),
        ("memory_active_pos", \.memory.activePositives), ("memory_active_neg", \.memory.activeNegatives),
        ("memory_hardest_neg", \.memory.hardestNegative), ("memory_hardest_pos", \.memory.hardestPositive),
        ("memory_age", \.memoryAge), ("memory_active_neg_age", \.memoryActiveNegativeAge),
        ("drift", \.drift), ("memory_drift", \.memoryDrift), ("memory_drift_compensated", \.memoryDriftCompensated),
        ("memory_drift_age", \.memoryDriftAge),
        ("MAP@R", \.mapAtR), ("R-precision", \.rPrecision), ("NMI", \.nmi), ("AMI", \.ami),
        ("eval_seconds", \.evaluationSeconds),
    ]
    /// Every integer-valued key but `iter`, with its field.
    public static let integers: [(key: String, field: WritableKeyPath<MetricsRecord, Int?> & Sendable)] = [
        ("memory_count", \.memoryCount), ("queries", \.queries), ("skipped_queries", \.skippedQueries),
    ]
    static let iterationKey = "iter"
    static let recallPrefix = "R@"

    /// Every key a record may hold, `R@K` as written once for all K.
    public static var keys: [String] {
        [iterationKey] + numbers.map(\.key) + integers.map(\.key) + [recallPrefix + "K"]
    }

    /// The values as TensorBoard scalars, tagged with their keys (all but `iter`).
    public var scalars: [String: Float] {
        var scalars: [String: Float] = [:]
        for (key, field) in Self.numbers { if let value = self[keyPath: field] { scalars[key] = Float(value) } }
        for (key, field) in Self.integers { if let value = self[keyPath: field] { scalars[key] = Float(value) } }
        for (k, value) in recall { scalars[Self.recallPrefix + String(k)] = Float(value) }
        return scalars
    }

    /// The records of a `metrics.jsonl` text, skipping lines that are not records (a torn last line).
    public static func records(inLog text: String) -> [MetricsRecord] {
        let decoder = JSONDecoder()
        return text.split(separator: "\n").compactMap { try? decoder.decode(MetricsRecord.self, from: Data($0.utf8)) }
    }

    /// One line of `metrics.jsonl`: the record as JSON with sorted keys, and a newline.
    public func jsonLine() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self) + Data("\n".utf8)
    }
}

extension MetricsRecord: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        self.init(iteration: try container.decode(Int.self, forKey: Key(Self.iterationKey)))
        for (key, field) in Self.numbers { self[keyPath: field] = try container.decodeIfPresent(Double.self, forKey: Key(key)) }
        for (key, field) in Self.integers { self[keyPath: field] = try container.decodeIfPresent(Int.self, forKey: Key(key)) }
        for key in container.allKeys where key.stringValue.hasPrefix(Self.recallPrefix) {
            guard let k = Int(key.stringValue.dropFirst(Self.recallPrefix.count)) else { continue }
            recall[k] = try container.decode(Double.self, forKey: key)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(iteration, forKey: Key(Self.iterationKey))
        for (key, field) in Self.numbers { try container.encodeIfPresent(self[keyPath: field], forKey: Key(key)) }
        for (key, field) in Self.integers { try container.encodeIfPresent(self[keyPath: field], forKey: Key(key)) }
        for (k, value) in recall { try container.encode(value, forKey: Key(Self.recallPrefix + String(k))) }
    }
}
