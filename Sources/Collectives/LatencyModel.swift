/// The collectives a `Communicator` offers, as the latency model and the byte tally name them.
public enum CollectiveOperation: String, CaseIterable, Sendable, Codable {
    case allreduce, allgather, broadcast, barrier
}

/// The latency term of the α–β model of a collective (Docs/performance.md, Communication
/// cost): α per message round times the number of rounds the algorithm runs one after the
/// other. The rounds are those of the algorithms Open MPI 4.1's `tuned` component uses for
/// the sizes and rank counts of a training step (p ranks, n bytes per rank):
///
///     allreduce  n < 10 kB: recursive doubling, ⌊log₂ p⌋ rounds (+2 when p is not a power of 2:
///                           the ranks past the power of 2 hand their data in and get the result)
///                otherwise: ring (reduce-scatter, then allgather), 2(p − 1) rounds
///     allgather  ring, p − 1 rounds
///     broadcast  binomial tree, ⌈log₂ p⌉ rounds
///     barrier    recursive doubling (Bruck when p is not a power of 2), ⌈log₂ p⌉ rounds
///
/// The bandwidth term β·bytes is not modelled here: it is the link's (Launch/netlink).
public struct LatencyModel: Sendable, Equatable {
    /// α, seconds per message round.
    public var perMessage: Double
    /// Open MPI's switch from recursive doubling to the ring for allreduce, bytes per rank.
    public static let smallAllreduceBytes = 10_000

    public init(perMessage: Double) {
        precondition(perMessage >= 0 && perMessage.isFinite, "latency per message must be finite and ≥ 0, got \(perMessage)")
        self.perMessage = perMessage
    }

    /// Sequential message rounds of one `operation` over `ranks` ranks with `bytes` per rank.
    public static func rounds(_ operation: CollectiveOperation, bytes: Int, ranks: Int) -> Int {
        guard ranks > 1 else { return 0 }
        let ceilLog2 = Int.bitWidth - (ranks - 1).leadingZeroBitCount
        let floorLog2 = Int.bitWidth - 1 - ranks.leadingZeroBitCount
        switch operation {
        case .allreduce:
            guard bytes >= smallAllreduceBytes else { return floorLog2 + (ranks == 1 << floorLog2 ? 0 : 2) }
            return 2 * (ranks - 1)
        case .allgather: return ranks - 1
        case .broadcast, .barrier: return ceilLog2
        }
    }

    /// α · rounds, seconds.
    public func delay(_ operation: CollectiveOperation, bytes: Int, ranks: Int) -> Double {
        perMessage * Double(LatencyModel.rounds(operation, bytes: bytes, ranks: ranks))
    }
}
