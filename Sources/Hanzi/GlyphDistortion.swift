import Foundation
import XBMKernels

// Distortion of one rendered glyph into a 32×32 image (Docs/data.md). Pure Swift, no FreeType.
//
// Letters: S = 64 (working canvas side, pixels), O = 32 (output side), G = 6 (elastic control
// points per axis). The glyph's ink box (w × h, from FreeType at 64 px) is centred on the canvas
// and mapped by the affine  p = M·u + t,  M = base · R(θ) · [[1, k], [0, 1]] · diag(sx, sy),
// u = glyph coordinates relative to the ink-box centre. Then every canvas pixel q takes the
// coverage at  M⁻¹(q + D(q) − t)  (bilinear), D being a smooth elastic field: a uniform cubic
// B-spline over a G×G grid of displacements in [−A, A], so |D| ≤ A everywhere (B-spline
// weights are non-negative and sum to 1). Strokes are then thickened (blend towards a 3×3 grey
// dilation) or thinned (blend towards a 3×3 erosion), and the canvas is averaged 2×2 to O×O.

/// The random parameters of one glyph's distortion.
public struct GlyphDistortion: Sendable, Equatable {
    public static let canvas = 64
    public static let output = 32
    public static let controlPoints = 6
    /// Canvas scale of an undistorted glyph: a 56 px ink box becomes 45 px (22 output px).
    public static let baseScale: Float = 0.8
    public static let rotationRange: ClosedRange<Float> = -12 ... 12  // degrees
    public static let shearRange: ClosedRange<Float> = -0.25 ... 0.25
    public static let scaleRange: ClosedRange<Float> = 0.75 ... 1.1
    public static let shiftRange: ClosedRange<Float> = -8 ... 8  // canvas px = ±4 output px
    public static let elasticAmplitude: Float = 3  // canvas px = 1.5 output px
    public static let strokeRange: ClosedRange<Float> = -1 ... 1
    /// Thinning blends at most this far towards the erosion (full erosion erases thin faces).
    public static let maximumThinning: Float = 0.6

    public var rotationDegrees: Float = 0
    public var shear: Float = 0
    public var scaleX: Float = 1
    public var scaleY: Float = 1
    /// Shift in canvas pixels (output pixels × 2).
    public var shiftX: Float = 0
    public var shiftY: Float = 0
    /// (G, G, 2) control displacements in canvas pixels, row major, (dx, dy) pairs.
    public var elastic: [Float] = [Float](repeating: 0, count: 2 * controlPoints * controlPoints)
    /// > 0 thickens, < 0 thins, 0 leaves strokes as rendered.
    public var stroke: Float = 0

    public init() {}

    public static let identity = GlyphDistortion()

    /// Draws every parameter uniformly in its range.
    public static func random(using random: inout RandomSource) -> GlyphDistortion {
        func uniform(_ range: ClosedRange<Float>) -> Float {
            range.lowerBound + (range.upperBound - range.lowerBound) * random.nextUniform()
        }
        var d = GlyphDistortion()
        d.rotationDegrees = uniform(rotationRange)
        d.shear = uniform(shearRange)
        d.scaleX = uniform(scaleRange)
        d.scaleY = uniform(scaleRange)
        d.shiftX = uniform(shiftRange)
        d.shiftY = uniform(shiftRange)
        for i in d.elastic.indices { d.elastic[i] = uniform(-elasticAmplitude ... elasticAmplitude) }
        d.stroke = uniform(strokeRange)
        return d
    }

    /// The 2×2 linear part M (row major: m00, m01, m10, m11), shrunk if needed so that the
    /// ink box of half-size (hw, hh), moved by the shift, stays within the canvas.
    func linearMap(halfWidth hw: Float, halfHeight hh: Float) -> (Float, Float, Float, Float) {
        let theta = rotationDegrees * Float.pi / 180
        let c = cosf(theta), s = sinf(theta)
        // R · Sh · diag(sx, sy) · base
        var m00 = Self.baseScale * c * scaleX
        var m01 = Self.baseScale * (c * shear - s) * scaleY
        var m10 = Self.baseScale * s * scaleX
        var m11 = Self.baseScale * (s * shear + c) * scaleY
        let extentX = abs(m00) * hw + abs(m01) * hh
        let extentY = abs(m10) * hw + abs(m11) * hh
        let limit = Float(Self.canvas) / 2 - 1
        let fit = min(1, (limit - abs(shiftX)) / max(extentX, 1e-6), (limit - abs(shiftY)) / max(extentY, 1e-6))
        if fit < 1 { m00 *= fit; m01 *= fit; m10 *= fit; m11 *= fit }
        return (m00, m01, m10, m11)
    }
}

/// Glyph coverage cropped to its ink: (height, width) uint8, row major.
public struct GlyphBitmap: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height, "glyph of \(width)×\(height) with \(pixels.count) pixels")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Reusable scratch for `composeGlyph` (one per thread).
public final class GlyphWorkspace {
    let canvasA = FlatBuffer<Float>(count: GlyphDistortion.canvas * GlyphDistortion.canvas)
    let canvasB = FlatBuffer<Float>(count: GlyphDistortion.canvas * GlyphDistortion.canvas)
    /// (G, S, 2): the elastic field interpolated along x for each control row.
    let rowField = FlatBuffer<Float>(count: GlyphDistortion.controlPoints * GlyphDistortion.canvas * 2)
    public init() {}
}

/// Cubic B-spline weights of the 4 control points around canvas coordinate `position`, and
/// the index of the first: the canvas [0, S) spans the G − 3 middle segments.
@inline(__always)
func splineWeights(_ position: Float) -> (Int, Float, Float, Float, Float) {
    let segments = Float(GlyphDistortion.controlPoints - 3)
    let t = min(max(position / Float(GlyphDistortion.canvas) * segments, 0), segments - 1e-4)
    let i = Int(t)
    let u = t - Float(i)
    let u2 = u * u, u3 = u2 * u
    return (i, (1 - u) * (1 - u) * (1 - u) / 6, (3 * u3 - 6 * u2 + 4) / 6, (-3 * u3 + 3 * u2 + 3 * u + 1) / 6, u3 / 6)
}

/// Draws `glyph` distorted by `distortion` into `output` (O×O uint8, ink 255 on 0).
public func composeGlyph(_ glyph: GlyphBitmap, distortion d: GlyphDistortion, workspace: GlyphWorkspace,
                         output: UnsafeMutablePointer<UInt8>) {
    let S = GlyphDistortion.canvas, G = GlyphDistortion.controlPoints
    precondition(d.elastic.count == 2 * G * G, "elastic field needs \(2 * G * G) values, got \(d.elastic.count)")
    let (m00, m01, m10, m11) = d.linearMap(halfWidth: Float(glyph.width) / 2, halfHeight: Float(glyph.height) / 2)
    let det = m00 * m11 - m01 * m10
    let (i00, i01, i10, i11) = (m11 / det, -m01 / det, -m10 / det, m00 / det)  // M⁻¹
    let centre = Float(S) / 2
    let glyphCentreX = Float(glyph.width) / 2 - 0.5, glyphCentreY = Float(glyph.height) / 2 - 0.5

    // Elastic field along x for each control row: rowField[g, x, :] = Σ_j w_j(x) · c[g, i+j, :].
    let rowField = workspace.rowField.pointer
    d.elastic.withUnsafeBufferPointer { control in
        for x in 0..<S {
            let (i, w0, w1, w2, w3) = splineWeights(Float(x) + 0.5)
            for g in 0..<G {
                for k in 0..<2 {
                    let base = (g * G + i) * 2 + k
                    rowField[(g * S + x) * 2 + k] = w0 * control[base] + w1 * control[base + 2] + w2 * control[base + 4] + w3 * control[base + 6]
                }
            }
        }
    }

    let canvas = workspace.canvasA.pointer
    glyph.pixels.withUnsafeBufferPointer { source in
        let gw = glyph.width, gh = glyph.height
        @inline(__always) func at(_ x: Int, _ y: Int) -> Float {
            (x >= 0 && x < gw && y >= 0 && y < gh) ? Float(source[y * gw + x]) : 0
        }
        for y in 0..<S {
            let (i, w0, w1, w2, w3) = splineWeights(Float(y) + 0.5)
            let qy = Float(y) + 0.5 - centre
            for x in 0..<S {
                let r = (i * S + x) * 2, step = S * 2
                let dx = w0 * rowField[r] + w1 * rowField[r + step] + w2 * rowField[r + 2 * step] + w3 * rowField[r + 3 * step]
                let dy = w0 * rowField[r + 1] + w1 * rowField[r + 1 + step] + w2 * rowField[r + 1 + 2 * step] + w3 * rowField[r + 1 + 3 * step]
                let px = Float(x) + 0.5 - centre + dx - d.shiftX
                let py = qy + dy - d.shiftY
                let u = i00 * px + i01 * py + glyphCentreX
                let v = i10 * px + i11 * py + glyphCentreY
                let fu = u.rounded(.down), fv = v.rounded(.down)
                let ax = u - fu, ay = v - fv
                let x0 = Int(fu), y0 = Int(fv)
                if x0 < -1 || y0 < -1 || x0 >= gw || y0 >= gh { canvas[y * S + x] = 0; continue }
                let top = at(x0, y0) * (1 - ax) + at(x0 + 1, y0) * ax
                let bottom = at(x0, y0 + 1) * (1 - ax) + at(x0 + 1, y0 + 1) * ax
                canvas[y * S + x] = (top * (1 - ay) + bottom * ay) * (1.0 / 255.0)
            }
        }
    }

    // Stroke: blend towards the 3×3 grey dilation (s > 0) or erosion (s < 0).
    let strokeWeight = d.stroke > 0 ? d.stroke : -d.stroke * GlyphDistortion.maximumThinning
    if strokeWeight > 0 {
        let morph = workspace.canvasB.pointer
        let dilate = d.stroke > 0
        for y in 0..<S {
            for x in 0..<S {
                var m: Float = dilate ? 0 : 1
                for yy in max(y - 1, 0)...min(y + 1, S - 1) {
                    for xx in max(x - 1, 0)...min(x + 1, S - 1) {
                        let c = canvas[yy * S + xx]
                        m = dilate ? max(m, c) : min(m, c)
                    }
                }
                morph[y * S + x] = m
            }
        }
        for p in 0..<(S * S) { canvas[p] += strokeWeight * (morph[p] - canvas[p]) }
    }

    // 2×2 box average to O×O.
    let O = GlyphDistortion.output
    for y in 0..<O {
        for x in 0..<O {
            let p = 2 * y * S + 2 * x
            let mean = (canvas[p] + canvas[p + 1] + canvas[p + S] + canvas[p + S + 1]) * 0.25
            output[y * O + x] = UInt8(min(max(mean * 255 + 0.5, 0), 255))
        }
    }
}
