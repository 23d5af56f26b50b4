import Foundation

/// `xbm-dist bench collectives`: checks every collective (and a started allreduce) against closed forms over message
/// sizes from one float to 16 MiB and times them, like nccl-tests does for a GPU cluster.
/// Run it on a new cluster before training: a wrong result or a slow link shows up here.
public enum CollectivesBenchmark {
    public struct Row: Sendable {
        public let operation: String
        public let bytes: Int
        /// Median over repetitions, seconds.
        public let seconds: Double
        /// Message bytes per second (the algorithm bandwidth of nccl-tests).
        public var bandwidth: Double { Double(bytes) / max(seconds, 1e-12) }
        public let correct: Bool
    }

    /// Element counts 1, 4, 16, ... up to 4 Mi floats (16 MiB).
    public static let defaultCounts: [Int] = (0...11).map { 1 << (2 * $0) }

    /// Runs on every rank; returns the rows (identical `correct` flags on every rank, since
    /// they are agreed with an allreduce). Times are this rank's.
    public static func run(_ comm: Communicator, counts: [Int] = defaultCounts, repetitions: Int = 5) throws -> [Row] {
        var rows: [Row] = []
        let n = comm.size
        for count in counts {
            let reps = count >= 1 << 20 ? max(2, repetitions / 2) : repetitions
            // allreduce: x_r[i] = (r + 1) + (i mod 7)  ⇒  Σ_r = N(N+1)/2 + N·(i mod 7), exact in Float.
            var x = [Float](repeating: 0, count: count)
            var ok = true
            let reduceTime = try timed(comm, reps) {
                for i in 0..<count { x[i] = Float(comm.rank + 1) + Float(i % 7) }
                try comm.allreduceSum(&x)
            }
            let base = Float(n * (n + 1) / 2)
            for i in 0..<count where x[i] != base + Float(n) * Float(i % 7) { ok = false; break }
            rows.append(Row(operation: "allreduce", bytes: count * 4, seconds: reduceTime, correct: try agreed(comm, ok)))

            // The same sum started and waited for (MPI_Iallreduce).
            ok = true
            let startedTime = try timed(comm, reps) {
                for i in 0..<count { x[i] = Float(comm.rank + 1) + Float(i % 7) }
                try x.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0).wait() }
            }
            for i in 0..<count where x[i] != base + Float(n) * Float(i % 7) { ok = false; break }
            rows.append(Row(operation: "iallreduce", bytes: count * 4, seconds: startedTime, correct: try agreed(comm, ok)))

            // allgather: block of rank r is r·count + i.
            let send = (0..<count).map { Float(comm.rank * count + $0) }
            var receive = [Float](repeating: -1, count: count * n)
            let gatherTime = try timed(comm, reps) {
                try send.withUnsafeBufferPointer { s in
                    try receive.withUnsafeMutableBufferPointer { try comm.allgather(s, into: $0) }
                }
            }
            ok = true
            for j in 0..<(count * n) where receive[j] != Float(j) { ok = false; break }
            rows.append(Row(operation: "allgather", bytes: count * 4 * n, seconds: gatherTime, correct: try agreed(comm, ok)))

            // broadcast from the last rank (exercises a non-zero root).
            let root = n - 1
            var b = [Float](repeating: 0, count: count)
            let broadcastTime = try timed(comm, reps) {
                for i in 0..<count { b[i] = comm.rank == root ? Float(i % 1013) : -1 }
                try comm.broadcast(&b, root: root)
            }
            ok = true
            for i in 0..<count where b[i] != Float(i % 1013) { ok = false; break }
            rows.append(Row(operation: "broadcast", bytes: count * 4, seconds: broadcastTime, correct: try agreed(comm, ok)))
        }
        return rows
    }

    /// A text table for rank 0 to print.
    public static func table(_ rows: [Row], ranks: Int, backend: String) -> String {
        var lines = ["collectives over \(ranks) rank(s), backend \(backend); median of repetitions",
                     "operation        bytes     latency (us)    bandwidth (MB/s)   result"]
        for row in rows {
            let bytes = String(row.bytes).leftPadded(to: 12)
            let latency = String(format: "%.1f", row.seconds * 1e6).leftPadded(to: 14)
            let bandwidth = String(format: "%.1f", row.bandwidth / 1e6).leftPadded(to: 18)
            lines.append("\(row.operation.padding(toLength: 10, withPad: " ", startingAt: 0))\(bytes)\(latency)\(bandwidth)   \(row.correct ? "ok" : "WRONG")")
        }
        return lines.joined(separator: "\n")
    }

    private static func timed(_ comm: Communicator, _ repetitions: Int, _ body: () throws -> Void) throws -> Double {
        var times: [Double] = []
        try body()  // warm-up
        for _ in 0..<repetitions {
            try comm.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        times.sort()
        return times[times.count / 2]
    }

    private static func agreed(_ comm: Communicator, _ ok: Bool) throws -> Bool {
        try !comm.any(!ok)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
