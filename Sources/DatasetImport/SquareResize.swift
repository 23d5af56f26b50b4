/// Resizes a picture so that its shorter side is S and crops the centre S × S, keeping the
/// aspect ratio; the result is written as three planes (R, G, B), each S × S, row-major.
///
/// Resize-then-crop is computed in one step. With m = min(w, h), the crop is the source's
/// centred m × m square scaled by S/m, so along an axis of n source pixels (n = w or h) the
/// square starts at o = (n − m)/2 (a half pixel when n − m is odd) and output pixel i
/// (0 ≤ i < S) maps back to:
///
/// - **shrinking or same size** (m ≥ S): area averaging (a box filter). Output pixel i covers the source
///   interval [a, b) with a = o + i·m/S and b = a + m/S; source pixel j (the interval
///   [j, j + 1)) gets weight |[j, j+1) ∩ [a, b)| / (m/S). Every source pixel inside the square
///   counts in proportion to the area it shares with the output pixel, so nothing aliases.
/// - **enlarging** (m < S): bilinear. u = o + (i + ½)·m/S − ½, clamped to [0, n − 1]; with
///   j = ⌊u⌋ and t = u − j, the weights are 1 − t for j and t for j + 1 (pixel centres at
///   half-integers, as in most image libraries).
///
/// The 2-d filter is the product of the two axes' weights, applied separably (rows, then
/// columns). Weights are exact fractions: multiplying every position by 2S makes the
/// interval ends and bilinear positions integers, so a weight is an integer over 2m (area)
/// or 2S (bilinear), the sums are exact integers, and each value is rounded to the nearest
/// integer with halves up — a half-red, half-blue pixel is exactly 127.5 → 128.
public enum SquareResize {
    /// One source pixel's share, `weight` / the axis' `denominator`, of an output pixel.
    public struct Tap: Equatable, Sendable {
        public var index: Int
        public var weight: Int
    }

    /// The taps of each output pixel along one axis; every list's weights sum to `denominator`.
    public struct Axis: Equatable, Sendable {
        public var taps: [[Tap]]
        public var denominator: Int
    }

    /// The `size` output pixels along an axis of `length` source pixels whose centred
    /// `square` (≤ length) is scaled to `size`.
    public static func axis(length n: Int, square m: Int, size: Int) -> Axis {
        precondition(n >= 1 && m >= 1 && m <= n && size >= 1, "axis(length: \(n), square: \(m), size: \(size))")
        // Positions in units of 1/(2·size) source pixels: source pixel j is [2·size·j, 2·size·(j+1)).
        let unit = 2 * size
        if m >= size {
            // Output i covers [a, a + 2m) with a = (n − m)·size + 2·i·m; weight = overlap / 2m.
            let taps = (0..<size).map { i in
                let a = (n - m) * size + 2 * i * m, b = a + 2 * m
                return (a / unit...min(n - 1, (b - 1) / unit)).compactMap { j -> Tap? in
                    let overlap = min(b, unit * (j + 1)) - max(a, unit * j)
                    return overlap > 0 ? Tap(index: j, weight: overlap) : nil
                }
            }
            return Axis(taps: taps, denominator: 2 * m)
        }
        // u·2·size = (n − m)·size + (2i + 1)·m − size, clamped to [0, (n − 1)·2·size];
        // j = ⌊u⌋, weights (2·size − r) for j and r for j + 1, r the remainder.
        let taps = (0..<size).map { i in
            let u = min(max((n - m) * size + (2 * i + 1) * m - size, 0), (n - 1) * unit)
            let j = u / unit, r = u % unit
            return r > 0 ? [Tap(index: j, weight: unit - r), Tap(index: j + 1, weight: r)] : [Tap(index: j, weight: unit)]
        }
        return Axis(taps: taps, denominator: unit)
    }

    /// Writes `image` resized and centre-cropped to `size` × `size` into `planes`
    /// (3 · size · size bytes: R plane, G plane, B plane).
    public static func planes(_ image: RGBImage, size: Int, into planes: UnsafeMutableBufferPointer<UInt8>) {
        precondition(planes.count == 3 * size * size, "\(planes.count) bytes for 3 planes of \(size)×\(size)")
        let square = min(image.width, image.height)
        let columns = axis(length: image.width, square: square, size: size)
        let rows = axis(length: image.height, square: square, size: size)
        let firstRow = rows.taps.first!.first!.index, lastRow = rows.taps.last!.last!.index

        // Rows pass: every source row the columns pass needs, resampled to `size` columns
        // (values × columns.denominator).
        var resampled = [Int](repeating: 0, count: (lastRow - firstRow + 1) * size * 3)
        image.pixels.withUnsafeBufferPointer { pixels in
            for r in firstRow...lastRow {
                let source = (r * image.width) * 3, target = (r - firstRow) * size * 3
                for (x, xTaps) in columns.taps.enumerated() {
                    var red = 0, green = 0, blue = 0
                    for tap in xTaps {
                        let p = source + tap.index * 3
                        red += tap.weight * Int(pixels[p])
                        green += tap.weight * Int(pixels[p + 1])
                        blue += tap.weight * Int(pixels[p + 2])
                    }
                    resampled[target + x * 3] = red
                    resampled[target + x * 3 + 1] = green
                    resampled[target + x * 3 + 2] = blue
                }
            }
        }
        // Columns pass, into planes: value = sum / d rounded half up = ⌊(2·sum + d) / 2d⌋.
        let d = columns.denominator * rows.denominator
        let plane = size * size
        for (y, yTaps) in rows.taps.enumerated() {
            for x in 0..<size {
                for c in 0..<3 {
                    var sum = 0
                    for tap in yTaps { sum += tap.weight * resampled[((tap.index - firstRow) * size + x) * 3 + c] }
                    planes[c * plane + y * size + x] = UInt8(min(255, (2 * sum + d) / (2 * d)))
                }
            }
        }
    }

    /// The planes as a new array (tests and small callers).
    public static func planes(_ image: RGBImage, size: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 3 * size * size) { buffer, count in
            planes(image, size: size, into: buffer)
            count = 3 * size * size
        }
    }
}
