import XBMKernels
import XCTest

// Finite-difference gradient checks. The function differentiated is a Double-precision
// reference forward, so the numeric side is accurate to about 1e-9 (central differences with
// h = 1e-6: truncation O(h²) ≈ 1e-12, rounding ≈ 1e-16·|f|/h ≈ 1e-10), far below the Float
// rounding of the analytic gradient it is compared with.

/// (f(x + h·e_i) − f(x − h·e_i)) / 2h for each index i.
public func centralDifferences(of f: ([Double]) -> Double, at x: [Double], indices: [Int],
                               step h: Double = 1e-6) -> [Double] {
    var point = x
    return indices.map { i in
        point[i] = x[i] + h
        let plus = f(point)
        point[i] = x[i] - h
        let minus = f(point)
        point[i] = x[i]
        return (plus - minus) / (2 * h)
    }
}

/// (f(x + h·v) − f(x − h·v)) / 2h, the derivative of f along v.
public func directionalDifference(of f: ([Double]) -> Double, at x: [Double], direction v: [Double],
                                  step h: Double = 1e-6) -> Double {
    let plus = f(zip(x, v).map { $0 + h * $1 }), minus = f(zip(x, v).map { $0 - h * $1 })
    return (plus - minus) / (2 * h)
}

/// max_i |analytic_i − numeric_i| / max(max_i |numeric_i|, scale): the error relative to the
/// gradient's magnitude, so entries near zero are not judged by their own tiny size. `scale`
/// sets a floor, e.g. the whole network's gradient size for a tensor whose gradient is
/// structurally zero (a bias right before batch norm).
public func relativeMaxError(_ analytic: [Double], _ numeric: [Double], scale floor: Double = 0) -> Double {
    precondition(analytic.count == numeric.count, "comparing \(analytic.count) with \(numeric.count) values")
    let scale = max(numeric.map(abs).max() ?? 0, floor, 1e-30)
    return zip(analytic, numeric).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
}

/// Asserts `relativeMaxError(analytic, numeric) <= tolerance`, naming what was checked.
public func assertGradient(_ analytic: [Double], _ numeric: [Double], tolerance: Double, _ what: String,
                           scale: Double = 0, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(analytic.count, numeric.count, "\(what): sizes differ", file: file, line: line)
    let error = relativeMaxError(analytic, numeric, scale: scale)
    XCTAssertLessThanOrEqual(error, tolerance, "\(what): relative gradient error \(error)", file: file, line: line)
    if scale == 0 {
        XCTAssertGreaterThan(numeric.map(abs).max() ?? 0, 1e-6, "\(what): numeric gradient is ~zero, the check proves nothing",
                             file: file, line: line)
    }
}

/// `count` uniform values in [low, high) from a seeded generator.
public func randomFloats(_ count: Int, _ random: inout RandomSource, low: Float = -1, high: Float = 1) -> [Float] {
    (0..<count).map { _ in low + (high - low) * random.nextUniform() }
}

/// Uniform values in ±[low, high): kept away from 0, so ReLU kinks are more than h away.
public func randomFloatsAwayFromZero(_ count: Int, _ random: inout RandomSource, low: Float = 0.05, high: Float = 1) -> [Float] {
    (0..<count).map { _ in (random.nextUniform() < 0.5 ? -1 : 1) * (low + (high - low) * random.nextUniform()) }
}

extension Array where Element == Float {
    public var doubles: [Double] { map(Double.init) }
}
