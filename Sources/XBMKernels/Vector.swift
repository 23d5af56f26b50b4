// Explicit 16-wide vectors for the element-wise kernels. The compiler does not vectorise
// loops with a data-dependent select (ReLU masks, max-pool winners) by itself and emits
// branches that mispredict half the time on activations, so those kernels spell it out.

import CPrefetch

@usableFromInline package typealias FloatVector = SIMD16<Float>
/// Lanes of `FloatVector` (computed, so that it folds to 16 in every module that inlines it).
@inlinable package var vectorWidth: Int { FloatVector.scalarCount }

@inlinable @inline(__always)
package func loadVector(_ pointer: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(pointer).loadUnaligned(as: FloatVector.self)
}

@inlinable @inline(__always)
package func storeVector(_ value: FloatVector, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: FloatVector.self)
}

/// Asks for the cache lines of the `bytes` at `pointer` ahead of their use. A hint: it never
/// faults and changes no result, only when the data arrives.
@inlinable @inline(__always)
package func prefetchForReading(_ pointer: UnsafeRawPointer, bytes: Int) {
    let cacheLine = 64
    var offset = 0
    while offset < bytes {
        xbm_prefetch_for_reading(pointer + offset)
        offset += cacheLine
    }
}

/// Lane-wise maximum as a compare and select (the standard library's `pointwiseMax` goes
/// lane by lane to honour NaN ordering, which is far slower here).
@inlinable @inline(__always)
package func lanewiseMax(_ a: FloatVector, _ b: FloatVector) -> FloatVector {
    a.replacing(with: b, where: a .< b)
}

/// The first `lanes` (≤ vectorWidth) floats at `pointer`, zeros after: the tail of a row whose
/// length is not a multiple of the vector width.
@inlinable @inline(__always)
package func loadVector(_ pointer: UnsafePointer<Float>, lanes: Int) -> FloatVector {
    if lanes == vectorWidth { return loadVector(pointer) }
    var value = FloatVector()
    for lane in 0..<lanes { value[lane] = pointer[lane] }
    return value
}

/// Stores the first `lanes` (≤ vectorWidth) lanes of `value` at `pointer`.
@inlinable @inline(__always)
package func storeVector(_ value: FloatVector, _ pointer: UnsafeMutablePointer<Float>, lanes: Int) {
    if lanes == vectorWidth { return storeVector(value, pointer) }
    for lane in 0..<lanes { pointer[lane] = value[lane] }
}

/// Calls `body(start, lanes)` for consecutive slices of `count` values, 16 lanes each and a
/// shorter last one. Inlined, the full slices see `lanes` as the constant 16, so the
/// `lanes:` loads and stores in `body` compile to plain vector moves; only the tail pays for
/// lane-by-lane access.
@inlinable @inline(__always)
package func forEachVectorSlice(_ count: Int, _ body: (_ start: Int, _ lanes: Int) -> Void) {
    var start = 0
    while start + vectorWidth <= count {
        body(start, vectorWidth)
        start += vectorWidth
    }
    if start < count { body(start, count - start) }
}
