import Foundation

/// The run directory's training curves (SPEC §9): a standalone SVG with two stacked panels
/// sharing the iteration axis, the loss above and Recall@1 (%) below, each with ticks,
/// grid, axis labels and a legend. Non-finite values are left out; an empty series shows
/// "no data yet"; series of up to 60 points also get a marker per point, so a single point
/// is visible.
public struct TrainingPlot: Sendable {
    public struct Point: Sendable, Equatable {
        public var iteration: Int
        public var value: Double
        public init(iteration: Int, value: Double) { self.iteration = iteration; self.value = value }
    }

    public var title: String
    public var loss: [Point]
    /// Recall@1 in percent.
    public var recallAtOne: [Point]

    public init(title: String, loss: [Point], recallAtOne: [Point]) {
        self.title = title
        self.loss = loss
        self.recallAtOne = recallAtOne
    }

    public init(title: String, loss: [(iteration: Int, value: Double)], recallAtOne: [(iteration: Int, value: Double)]) {
        self.init(title: title, loss: loss.map { Point(iteration: $0.iteration, value: $0.value) },
                  recallAtOne: recallAtOne.map { Point(iteration: $0.iteration, value: $0.value) })
    }

    // Canvas (pixels): both panels span x ∈ [left, width − right].
    static let width = 720.0, height = 560.0, left = 78.0, right = 24.0
    static let panels: [(top: Double, bottom: Double)] = [(60, 270), (320, 510)]

    /// The SVG document.
    public func svg() -> String {
        let loss = self.loss.filter { $0.value.isFinite }, recall = recallAtOne.filter { $0.value.isFinite }
        let iterations = (loss + recall).map { Double($0.iteration) }
        let xAxis = Axis(low: iterations.min() ?? 0, high: iterations.max() ?? 1, integral: true)
        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(Self.height))" \
        viewBox="0 0 \(Int(Self.width)) \(Int(Self.height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(number(Self.width / 2))" y="30" text-anchor="middle" font-size="16" font-weight="bold">\(escaped(title))</text>

        """
        let series = [(loss, "loss", "#1f77b4"), (recall, "Recall@1 (%)", "#d62728")]
        for (panel, (points, name, color)) in series.enumerated() {
            svg += self.panel(points: points, name: name, color: color, xAxis: xAxis, frame: Self.panels[panel],
                              showsIterationLabel: panel == Self.panels.count - 1)
        }
        return svg + "</svg>\n"
    }

    /// Writes `svg()` to `url` (replacing it).
    public func write(to url: URL) throws {
        try Data(svg().utf8).write(to: url, options: .atomic)
    }

    private func panel(points: [Point], name: String, color: String, xAxis: Axis,
                       frame: (top: Double, bottom: Double), showsIterationLabel: Bool) -> String {
        let (left, right) = (Self.left, Self.width - Self.right)
        let values = points.map(\.value)
        let yAxis = Axis(low: values.min() ?? 0, high: values.max() ?? 1, integral: false)
        func x(_ iteration: Double) -> Double { left + (iteration - xAxis.low) / (xAxis.high - xAxis.low) * (right - left) }
        func y(_ value: Double) -> Double { frame.bottom - (value - yAxis.low) / (yAxis.high - yAxis.low) * (frame.bottom - frame.top) }

        var out = "<g>\n"
        for tick in yAxis.ticks {
            let ty = number(y(tick))
            out += "<line x1=\"\(number(left))\" y1=\"\(ty)\" x2=\"\(number(right))\" y2=\"\(ty)\" stroke=\"#e0e0e0\"/>\n"
            out += "<text x=\"\(number(left - 6))\" y=\"\(ty)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(yAxis.label(tick))</text>\n"
        }
        for tick in xAxis.ticks {
            let tx = number(x(tick))
            out += "<line x1=\"\(tx)\" y1=\"\(number(frame.bottom))\" x2=\"\(tx)\" y2=\"\(number(frame.bottom + 5))\" stroke=\"black\"/>\n"
            out += "<text x=\"\(tx)\" y=\"\(number(frame.bottom + 18))\" text-anchor=\"middle\">\(xAxis.label(tick))</text>\n"
        }
        out += "<rect x=\"\(number(left))\" y=\"\(number(frame.top))\" width=\"\(number(right - left))\" height=\"\(number(frame.bottom - frame.top))\" fill=\"none\" stroke=\"black\"/>\n"
        let middle = number((frame.top + frame.bottom) / 2)
        out += "<text x=\"18\" y=\"\(middle)\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(middle))\">\(escaped(name))</text>\n"
        if showsIterationLabel {
            out += "<text x=\"\(number((left + right) / 2))\" y=\"\(number(frame.bottom + 40))\" text-anchor=\"middle\">iteration</text>\n"
        }
        if points.isEmpty {
            out += "<text x=\"\(number((left + right) / 2))\" y=\"\(middle)\" text-anchor=\"middle\" fill=\"#808080\">no data yet</text>\n"
        } else {
            let coordinates = points.map { "\(number(x(Double($0.iteration)))),\(number(y($0.value)))" }
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(coordinates.joined(separator: " "))\"/>\n"
            if points.count <= 60 {
                for point in points {
                    out += "<circle cx=\"\(number(x(Double(point.iteration))))\" cy=\"\(number(y(point.value)))\" r=\"3\" fill=\"\(color)\"/>\n"
                }
            }
        }
        // Legend: a sample of the line and the series name, top right inside the panel.
        let legendY = frame.top + 16
        out += "<line x1=\"\(number(right - 130))\" y1=\"\(number(legendY))\" x2=\"\(number(right - 108))\" y2=\"\(number(legendY))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
        out += "<text x=\"\(number(right - 102))\" y=\"\(number(legendY))\" dominant-baseline=\"middle\">\(escaped(name))</text>\n"
        return out + "</g>\n"
    }
}

/// An axis range widened to "nice" tick values (1, 2 or 5 × 10ⁿ apart, about 5 ticks).
private struct Axis {
    let low: Double, high: Double, step: Double
    let integral: Bool

    init(low dataLow: Double, high dataHigh: Double, integral: Bool) {
        var low = dataLow, high = dataHigh
        if high - low < max(abs(high), 1) * 1e-9 {                // one value: open a window around it
            let half = integral ? 1 : max(abs(low) * 0.1, 0.5)
            low -= half; high += half
        }
        let rough = (high - low) / 5
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        self.step = integral ? max(1, step.rounded()) : step
        self.low = floor(low / self.step) * self.step
        self.high = ceil(high / self.step) * self.step
        self.integral = integral
    }

    var ticks: [Double] {
        let count = Int(((high - low) / step).rounded())
        return (0...count).map { low + Double($0) * step }
    }

    func label(_ value: Double) -> String {
        if integral || step >= 1 { return formatted(value, decimals: 0) }
        return formatted(value, decimals: max(0, Int(-floor(log10(step)))))
    }
}

private func number(_ value: Double) -> String { formatted(value, decimals: 2) }

private func escaped(_ text: String) -> String {
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
