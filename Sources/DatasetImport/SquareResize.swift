/// Resizes a picture so that its shorter side is S and crops the centre S × S, keeping the
/// aspect ratio; the result is written as three planes (R, G, B), each S × S, row-major.
///
/// Resize-then-crop is computed in one step. With m = min(w, h), the crop is the source's
/// centred m × m square scaled by S/m, so along an axis of n source pixels (n = w or h) the
/// square starts at o = (n − m)/2 (a half pixel when n − m is odd) and output pixel i
/// (0 ≤ i < S) maps back to:
///
/// - **shrinking or same size** (m ≥ S): area averaging. Output pixel i covers the source
///   interval [a, b) with a = o + i·m/S and b = a + m/S; source pixel j (the interval
///   [j, j + 1)) gets weight |[j, j+1) ∩ [a, b)| / (m/S). Every source pixel inside the square
///   counts in proportion to the area it shares with the output pixel, so nothing aliases.
/// - **enlarging** (m < S): bilinear. u = o + (i + ½)·m/S − ½, clamped to [0, n − 1]; with
///   j = ⌊u⌋ and t = u − j, the weights are 1 − t for j and t for j + 1 (pixel centres at
///   half-integers, as in most image libraries).
///
/// The 2-d filter is the product of the two axes' weights, applied separably (rows, then
/// columns) in Double, and each value is rounded to the nearest integer (halves up).
public enum SquareResize {
    /// One source pixel's share of an output pixel along one axis.
    public struct Tap: Equatable, Sendable {
        public var index: Int
        public var weight: Double
    }

    /// The taps of each of the `size` output pixels along an axis of `length` source pixels
    /// whose centred `square` (≤ length) is scaled to `size`.
    public static func taps(length n: Int, square m: Int, size: Int) -> [[Tap]] {
        precondition(n >= 1 && m >= 1 && m <= n && size >= 1, "taps(length: \(n), square: \(m), size: \(size))")
        let offset = Double(n - m) / 2
        let scale = Double(m) / Double(size)
        return (0..<size).map { i in
            if m >= size {
                let a = offset + Double(i) * scale, b = a + scale
                let first = Int(a.rounded(.down)), last = min(n - 1, Int(b.rounded(.up)) - 1)
                return (first...last).compactMap { j in
                    let overlap = min(b, Double(j + 1)) - max(a, Double(j))
                    return overlap > 0 ? Tap(index: j, weight: overlap / scale) : nil
                }
            }
            let u = min(max(offset + (Double(i) + 0.5) * scale - 0.5, 0), Double(n - 1))
            let j = Int(u.rounded(.down)), t = u - Double(j)
            return t > 0 ? [Tap(index: j, weight: 1 - t), Tap(index: j + 1, weight: t)] : [Tap(index: j, weight: 1)]
        }
    }

    /// Writes `image` resized and centre-cropped to `size` × `size` into `planes`
    /// (3 · size · size bytes: R plane, G plane, B plane).
    public static func planes(_ image: RGBImage, size: Int, into planes: UnsafeMutableBufferPointer<UInt8>) {
        precondition(planes.count == 3 * size * size, "\(planes.count) bytes for 3 planes of \(size)×\(size)")
        let square = min(image.width, image.height)
        let columns = taps(length: image.width, square: square, size: size)
        let rows = taps(length: image.height, square: square, size: size)
        let firstRow = rows.first!.first!.index, lastRow = rows.last!.last!.index

        // Rows pass: every source row the columns pass needs, resampled to `size` columns.
        var resampled = [Double](repeating: 0, count: (lastRow - firstRow + 1) * size * 3)
        image.pixels.withUnsafeBufferPointer { pixels in
            for r in firstRow...lastRow {
                let source = (r * image.width) * 3, target = (r - firstRow) * size * 3
                for (x, xTaps) in columns.enumerated() {
                    var red = 0.0, green = 0.0, blue = 0.0
                    for tap in xTaps {
                        let p = source + tap.index * 3
                        red += tap.weight * Double(pixels[p])
                        green += tap.weight * Double(pixels[p + 1])
                        blue += tap.weight * Double(pixels[p + 2])
                    }
                    resampled[target + x * 3] = red
                    resampled[target + x * 3 + 1] = green
                    resampled[target + x * 3 + 2] = blue
                }
            }
        }
        // Columns pass, into planes.
        let plane = size * size
        for (y, yTaps) in rows.enumerated() {
            for x in 0..<size {
                for c in 0..<3 {
                    var value = 0.0
                    for tap in yTaps { value += tap.weight * resampled[((tap.index - firstRow) * size + x) * 3 + c] }
                    planes[c * plane + y * size + x] = UInt8(min(255, max(0, (value + 0.5).rounded(.down))))
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
