import Collectives
import XBMKernels
import XBMModel

/// The `combine` of `BatchNormSync.chunked` (`--deterministic`): every rank's per-chunk sums
/// are gathered, and each rank adds all of them in global chunk order, so the statistics are
/// the same bits for any number of ranks (chunk k holds the same samples on 1 rank or on K).
final class ChunkedStatistics {
    let comm: Communicator
    /// (ranks · chunks · width) the gathered rows, grown to the widest layer on first use.
    private var gathered = FlatBuffer<Double>(count: 0)

    init(comm: Communicator) {
        self.comm = comm
    }

    /// The sync for a network whose local batch is cut into `chunks` chunks (it keeps this
    /// object alive; nothing here refers back to it).
    func batchNormSync(chunks: Int) -> BatchNormSync {
        .chunked(chunks: chunks, combine: { rows, width in try self.combine(rows, width: width) })
    }

    /// `rows`: this rank's chunk sums, rows of `width`; on return the first row holds
    /// Σ over every chunk of every rank, added in chunk order (Double).
    func combine(_ rows: UnsafeMutableBufferPointer<Double>, width: Int) throws {
        let total = rows.count * comm.size
        if gathered.count < total { gathered = FlatBuffer(count: total) }
        try comm.allgather(UnsafeBufferPointer(rows), into: UnsafeMutableBufferPointer(start: gathered.pointer, count: total))
        let all = gathered.pointer, chunks = total / width
        for c in 0..<width {
            var sum = 0.0
            for k in 0..<chunks { sum += all[k * width + c] }
            rows[c] = sum
        }
    }
}
