import Dispatch

// The element-wise and data-movement kernels (im2col, batch norm, pooling) split their work
// over as many threads as BLAS uses: with 2 BLAS threads the products run on 2 cores, and a
// single-threaded remainder would otherwise cost as much again (Amdahl). Chunks are
// contiguous and disjoint, so results do not depend on the thread count except where a kernel
// says so.
//
// Allocation: with one thread nothing here allocates. With more, libdispatch makes a couple
// of small allocations per call (~100 a step); threaded OpenBLAS itself mallocs a 512 KiB
// buffer in some sgemm calls, so a strictly allocation-free threaded step would need more
// than a pool of our own (tried: a pthread pool still paid one closure box per call).

/// Calls `body` on disjoint contiguous sub-ranges covering 0..<count, concurrently when
/// there is enough work (`minimumChunk` items per thread at least), else inline.
@inlinable @inline(__always)
package func parallelChunks(_ count: Int, minimumChunk: Int, _ body: (Range<Int>) -> Void) {
    runChunks(count, threads: min(BLASThreads.current, count / max(minimumChunk, 1)), body)
}

/// `body` on `threads` contiguous sub-ranges of 0..<count at once (inline when threads ≤ 1):
/// the split of `parallelChunks` and of `parallelProducts`.
@inlinable @inline(__always)
package func runChunks(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    guard threads > 1 else {
        if count > 0 { body(0..<count) }
        return
    }
    // The chunks write disjoint memory and `concurrentPerform` returns only when all are
    // done, so handing the non-Sendable closure to the workers is safe.
    withoutActuallyEscaping(body) { escapable in
        nonisolated(unsafe) let work = escapable
        DispatchQueue.concurrentPerform(iterations: threads) { part in
            work(part * count / threads..<(part + 1) * count / threads)
        }
    }
}
