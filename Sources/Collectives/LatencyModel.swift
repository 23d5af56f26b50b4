/// The collectives a `Communicator` offers, as the latency model and the byte tally name them.
public enum CollectiveOperation: String, CaseIterable, Sendable, Codable {
    case allreduce, allgather, broadcast, barrier
}

/// The latency term of the α–β model of a collective (Docs/performance.md, Communication
/// cost): α per message round times the number of rounds the algorithm runs one after the
/// other. The algorithms are those Open MPI 4.1's `tuned` component picks by its fixed
/// decision rules (coll_tuned_decision_fixed.c) for a commutative sum of n bytes per rank
/// over p ranks; with ⌊log₂ p⌋ = k and e = 0 for a power of 2, else 2 (the ranks past the
/// power of 2 hand their data in first and get the result last):
///
///     allreduce  recursive doubling   k + e rounds          p < 4: n < 4 KiB or 8–16 KiB
///                                                           p < 16: n < 8 KiB; above: n < 4 KiB
///                ring (segmented)     2(p − 1) rounds       p < 4: the other sizes below 256 KiB
///                Rabenseifner         2k + e rounds         the rest (reduce-scatter by recursive
///                                                           halving, then allgather by doubling)
///     allgather  two-process exchange (p = 2), else recursive doubling: ⌈log₂ p⌉ rounds
///     broadcast, barrier  ⌈log₂ p⌉ rounds
///
/// Beyond 16 ranks Open MPI's table has more bands than these; the model keeps the two that
/// matter (small: recursive doubling, large: Rabenseifner). The bandwidth term is not
/// modelled here: it is the link's (Launch/netlink).
public struct LatencyModel: Sendable, Equatable {
    /// α, seconds per message round.
    public var perMessage: Double

    public init(perMessage: Double) {
        precondition(perMessage >= 0 && perMessage.isFinite, "latency per message must be finite and ≥ 0, got \(perMessage)")
        self.perMessage = perMessage
    }

    /// The allreduce algorithms of Open MPI 4.1's fixed rules that this model tells apart.
    public enum AllreduceAlgorithm: Sendable, Equatable {
        case recursiveDoubling, ring, rabenseifner
    }

    public static func allreduceAlgorithm(bytes n: Int, ranks p: Int) -> AllreduceAlgorithm {
        if p < 4 {
            switch n {
            case ..<8: return .ring
            case ..<4096: return .recursiveDoubling
            case ..<8192: return .ring
            case ..<16_384: return .recursiveDoubling
            case ..<262_144: return .ring
            default: return .rabenseifner
            }
        }
        if p < 8 && n < 16 { return .ring }
        return n < (p < 16 ? 8192 : 4096) ? .recursiveDoubling : .rabenseifner
    }

    /// Sequential message rounds of one `operation` over `ranks` ranks with `bytes` per rank.
    public static func rounds(_ operation: CollectiveOperation, bytes: Int, ranks: Int) -> Int {
        guard ranks > 1 else { return 0 }
        let floorLog2 = Int.bitWidth - 1 - ranks.leadingZeroBitCount
        let ceilLog2 = Int.bitWidth - (ranks - 1).leadingZeroBitCount
        let extra = ranks == 1 << floorLog2 ? 0 : 2
        switch operation {
        case .allreduce:
            switch allreduceAlgorithm(bytes: bytes, ranks: ranks) {
            case .recursiveDoubling: return floorLog2 + extra
            case .ring: return 2 * (ranks - 1)
            case .rabenseifner: return 2 * floorLog2 + extra
            }
        case .allgather, .broadcast, .barrier: return ceilLog2
        }
    }

    /// α · rounds, seconds.
    public func delay(_ operation: CollectiveOperation, bytes: Int, ranks: Int) -> Double {
        perMessage * Double(LatencyModel.rounds(operation, bytes: bytes, ranks: ranks))
    }
}
