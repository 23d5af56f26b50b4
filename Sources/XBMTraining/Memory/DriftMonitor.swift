import Collectives
import XBMData
import XBMEval
import XBMKernels
import XBMModel

/// Feature drift (Docs/losses.md; Wang et al. §3.1): how far the embeddings of fixed samples move
/// between two measurements Δ iterations apart,
///
///     D(t, Δ) = mean_{x ∈ probe} ‖ f_t(x) − f_{t−Δ}(x) ‖₂
///
/// with f the L2-normalised embedding (so D ∈ [0, 2]). XBM's premise is that D becomes small
/// after a warm-up; `--xbm-start auto` starts the memory at the first measurement below a
/// threshold. The probe is a seeded random subset of the training samples, the same on every
/// rank; embedding it is sharded over the ranks (`Evaluation.embed`), so all ranks measure the
/// same value.
public final class DriftMonitor {
    public let probe: [Int]
    public let dimension: Int
    /// Embeddings of the probe at the previous measurement, (probe.count, d); empty before the first.
    public private(set) var previous: [Float] = []
    public private(set) var lastDrift: Double?

    public init(trainingIndices: [Int], probeSize: Int, dimension: Int, seed: UInt64) {
        var random = RandomSource.derived(seed: seed, stream: 0xD81F7)
        var pool = trainingIndices
        let count = min(probeSize, pool.count)
        for i in 0..<count {   // partial Fisher–Yates: the first `count` are a uniform sample
            pool.swapAt(i, i + random.nextInt(below: pool.count - i))
        }
        probe = Array(pool.prefix(count)).sorted()
        self.dimension = dimension
    }

    /// Embeds the probe with the current model and returns D against the previous
    /// measurement (nil at the first one).
    public func measure(dataset: Dataset, network: EmbeddingNetwork, parameters: UnsafePointer<Float>,
                        state: UnsafeMutablePointer<Float>, comm: Communicator) throws -> Double? {
        let current = try Evaluation.embed(indices: probe, dataset: dataset, network: network,
                                           parameters: parameters, state: state, comm: comm).array
        defer { previous = current }
        guard previous.count == current.count else { return nil }
        var total = 0.0
        for i in 0..<probe.count {
            var squared = 0.0
            for j in 0..<dimension {
                let delta = Double(current[i * dimension + j]) - Double(previous[i * dimension + j])
                squared += delta * delta
            }
            total += squared.squareRoot()
        }
        lastDrift = total / Double(max(probe.count, 1))
        return lastDrift
    }

    /// For checkpoints: the previous measurement, so a resumed run measures the same drift.
    public func restore(previous: [Float]) {
        precondition(previous.isEmpty || previous.count == probe.count * dimension,
                     "drift probe of \(previous.count) values for \(probe.count) samples of dimension \(dimension)")
        self.previous = previous
    }
}
