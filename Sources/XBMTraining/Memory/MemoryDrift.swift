import Collectives
import XBMData
import XBMEval
import XBMKernels
import XBMModel

/// How stale the memory is (Docs/losses.md, Drift compensation): a sample of its rows against
/// the current model's embeddings of the same samples,
///
///     memory_drift = mean_j ‖ m_j − f_t(x_j) ‖₂          (m̃_j for the compensated rows)
///
/// over up to `rows` rows spread evenly over the memory's valid rows (storage order), those
/// whose sample is known. f_t embeds in inference mode without augmentation while the rows were
/// embedded in training mode from augmented images, so a fresh row is not at 0: the value of
/// the newest rows is the floor. Embedding is sharded over the ranks (`Evaluation.embed`), so
/// every rank measures the same value.
public enum MemoryDrift {
    public struct Measurement: Equatable, Sendable {
        public var stored: Double
        public var compensated: Double?
        /// Mean age of the sampled rows, in iterations.
        public var age: Double
    }

    /// nil when no row of the memory has a known sample.
    public static func measure(memory: CrossBatchMemory, compensated: [ReferenceSegment]?, rows: Int, dataset: Dataset,
                               network: EmbeddingNetwork, parameters: UnsafePointer<Float>,
                               state: UnsafeMutablePointer<Float>, comm: Communicator) throws -> Measurement? {
        let n = memory.count, d = memory.dimension, wanted = min(rows, n)
        guard wanted > 0 else { return nil }
        let positions = (0..<wanted).map { $0 * n / wanted }.filter { memory.row($0).sample >= 0 }
        guard !positions.isEmpty else { return nil }
        let fresh = try Evaluation.embed(indices: positions.map { Int(memory.row($0).sample) }, dataset: dataset,
                                         network: network, parameters: parameters, state: state, comm: comm)
        func distance(_ row: UnsafePointer<Float>, _ i: Int) -> Double {
            var squared = 0.0
            for k in 0..<d {
                let delta = Double(row[k]) - Double(fresh.pointer[i * d + k])
                squared += delta * delta
            }
            return squared.squareRoot()
        }
        var stored = 0.0, shifted = 0.0, age = 0.0
        let compensatedRows = compensated?.first.map { $0.embeddings }
        for (i, position) in positions.enumerated() {
            let row = memory.row(position)
            stored += distance(row.embedding, i)
            if let compensatedRows { shifted += distance(compensatedRows + position * d, i) }
            age += Double(memory.clock) - Double(row.stamp)
        }
        let count = Double(positions.count)
        return Measurement(stored: stored / count, compensated: compensatedRows == nil ? nil : shifted / count, age: age / count)
    }
}
