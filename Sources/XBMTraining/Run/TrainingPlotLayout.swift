import Foundation
import XBMFormats

// The geometry of curves.svg's panels: axes with "nice" ticks, linear or logarithmic, and the
// placement of text where it covers no curve (TrainingPlot.swift draws with them).

/// An axis range widened to "nice" tick values. Linear: 1, 2 or 5 × 10ⁿ apart, about 5 ticks.
/// Logarithmic (positive data spanning more than a decade): the range runs between values
/// of the sequence 1, 2, 5, 10, 20, 50, … and every such value in it is a tick.
struct Axis {
    let low: Double, high: Double
    let logarithmic: Bool
    let ticks: [Double]
    /// Decimals of a linear axis' labels (a logarithmic one gives each tick its own).
    private let decimals: Int

    init(low dataLow: Double, high dataHigh: Double, integral: Bool) {
        var low = dataLow, high = dataHigh
        if high - low < max(abs(high), 1) * 1e-9 {                // one value: open a window around it
            let half = integral ? 1 : max(abs(low) * 0.1, 0.5)
            low -= half; high += half
        }
        let rough = (high - low) / 5
        let magnitude = pow(10, floor(log10(rough)))
        var step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        if integral { step = max(1, step.rounded()) }
        let first = floor(low / step) * step, last = ceil(high / step) * step
        self.low = first
        self.high = last
        logarithmic = false
        ticks = (0...Int(((last - first) / step).rounded())).map { first + Double($0) * step }
        decimals = integral || step >= 1 ? 0 : max(0, Int(-floor(log10(step))))
    }

    /// A logarithmic axis over positive data from `dataLow` to `dataHigh`.
    init(logarithmicFrom dataLow: Double, to dataHigh: Double) {
        precondition(dataLow > 0 && dataHigh > dataLow, "a logarithmic axis needs 0 < low < high, got \(dataLow) … \(dataHigh)")
        // The 1-2-5 values around the data: the largest at or below its low, the smallest at or above its high.
        func sequence(_ value: Double, rounding up: Bool) -> Double {
            let decade = pow(10, floor(log10(value)))
            let candidates = [1.0, 2, 5, 10].map { $0 * decade }
            return up ? candidates.first { $0 >= value * (1 - 1e-12) }! : candidates.last { $0 <= value * (1 + 1e-12) }!
        }
        low = sequence(dataLow, rounding: false)
        high = sequence(dataHigh, rounding: true)
        logarithmic = true
        var ticks: [Double] = []
        var decade = pow(10, floor(log10(low)))
        while decade <= high {
            for factor in [1.0, 2, 5] where decade * factor >= low * (1 - 1e-12) && decade * factor <= high * (1 + 1e-12) {
                ticks.append(decade * factor)
            }
            decade *= 10
        }
        self.ticks = ticks
        decimals = 0
    }

    /// The linear axis of `values`, or the logarithmic one when `allowLogarithmic`, every value
    /// is positive and they span more than a decade (a loss that falls tenfold at the start).
    static func fitting(_ values: [Double], allowLogarithmic: Bool) -> Axis {
        let low = values.min() ?? 0, high = values.max() ?? 1
        if allowLogarithmic, low > 0, high > 10 * low { return Axis(logarithmicFrom: low, to: high) }
        return Axis(low: low, high: high, integral: false)
    }

    /// Where `value` lies between low (0) and high (1).
    func fraction(_ value: Double) -> Double {
        logarithmic ? log(value / low) / log(high / low) : (value - low) / (high - low)
    }

    func label(_ value: Double) -> String {
        formatted(value, decimals: logarithmic ? max(0, Int(-floor(log10(value) + 1e-9))) : decimals)
    }
}

/// A rectangle of the canvas, in pixels (y grows downwards).
struct PlotBox {
    var left: Double, top: Double, right: Double, bottom: Double

    func contains(_ point: PlotPoint) -> Bool {
        point.x >= left && point.x <= right && point.y >= top && point.y <= bottom
    }

    func intersects(_ other: PlotBox) -> Bool {
        left < other.right && other.left < right && top < other.bottom && other.top < bottom
    }
}

struct PlotPoint { var x: Double, y: Double }

/// The extent of the 12-pixel sans-serif text of the plot, estimated on the wide side: 0.65 em
/// per character (DejaVu Sans and Helvetica average under 0.6 em) and 2 pixels of margin.
enum PlotText {
    static let characterWidth = 7.8
    static let margin = 2.0

    static func width(_ text: String) -> Double { characterWidth * Double(text.count) }

    /// The box of `text` starting at x (or ending there, `endingAt`), vertically centred on y.
    static func box(_ text: String, x: Double, centredOn y: Double, endingAt: Bool = false) -> PlotBox {
        let width = width(text)
        let left = endingAt ? x - width : x
        return PlotBox(left: left - margin, top: y - 7 - margin, right: left + width + margin, bottom: y + 7 + margin)
    }
}

/// Points along polylines, one per pixel of their length, for counting what a box would cover.
struct CurveSamples {
    private(set) var points: [PlotPoint] = []

    mutating func addPolyline(_ line: [PlotPoint]) {
        points += line
        for (a, b) in zip(line, line.dropFirst()) {
            let steps = max(1, Int(max(abs(b.x - a.x), abs(b.y - a.y)).rounded(.up)))
            for s in 1..<steps {
                let t = Double(s) / Double(steps)
                points.append(PlotPoint(x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y)))
            }
        }
    }

    /// A marker of radius r: its centre and the corners of its bounding square.
    mutating func addMarker(_ centre: PlotPoint, radius r: Double) {
        for (dx, dy) in [(0.0, 0.0), (-r, -r), (r, -r), (-r, r), (r, r)] {
            points.append(PlotPoint(x: centre.x + dx, y: centre.y + dy))
        }
    }

    func count(in box: PlotBox) -> Int { points.reduce(0) { $0 + (box.contains($1) ? 1 : 0) } }
}

/// A label beside a vertical line of a panel ("memory on", "lr ×0.10"), placed inside `frame`
/// where its box covers the fewest curve points and no box already taken: every height from the
/// top down in 4-pixel steps, right of the line then left of it; among equal counts the first.
/// Returns the label's anchor (start or end of the text, vertically centred) and its box.
func placeLabel(_ text: String, lineX: Double, frame: PlotBox, samples: CurveSamples,
                taken: [PlotBox]) -> (x: Double, y: Double, endsAtX: Bool, box: PlotBox) {
    var best: (x: Double, y: Double, endsAtX: Bool, box: PlotBox)?
    var bestCount = Int.max
    var y = frame.top + 12
    while y <= frame.bottom - 12 {
        for endsAtX in [false, true] {
            let x = endsAtX ? lineX - 4 : lineX + 4
            let box = PlotText.box(text, x: x, centredOn: y, endingAt: endsAtX)
            guard box.left >= frame.left, box.right <= frame.right, !taken.contains(where: { $0.intersects(box) }) else { continue }
            let count = samples.count(in: box)
            if count < bestCount { best = (x, y, endsAtX, box); bestCount = count }
        }
        if bestCount == 0 { break }
        y += 4
    }
    // A frame too small for the text: right of the line, at the top.
    return best ?? (lineX + 4, frame.top + 12, false, PlotText.box(text, x: lineX + 4, centredOn: frame.top + 12))
}

func number(_ value: Double) -> String { formatted(value, decimals: 2) }

func escaped(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(character)
        }
    }
    return out
}
