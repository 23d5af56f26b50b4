import Foundation
import XBMEval
import XBMFormats

/// The run directory's training curves (README.md): a standalone SVG with stacked panels
/// sharing the iteration axis, the loss above (with its batch and memory terms once the
/// memory is on) and Recall@1 (%) below, each with ticks, grid, axis labels and a legend.
/// With pair diagnostics (Docs/losses.md, Diagnostics) two more panels follow: the hardest
/// negative's similarity and the active negatives per anchor, batch against memory; with
/// drift measurements a last panel shows the feature drift. A dashed vertical line marks
/// where the memory term starts, a dotted one each drop of the learning rate.
/// Non-finite values are left out; an empty panel shows "no data yet"; series of up to 60
/// points also get a marker per point, so a single point is visible.
public struct TrainingPlot: Sendable {
    public struct Point: Sendable, Equatable {
        public var iteration: Int
        public var value: Double
        public init(iteration: Int, value: Double) { self.iteration = iteration; self.value = value }
    }

    /// The per-iteration pair diagnostics drawn below the loss and recall.
    public struct Diagnostics: Sendable, Equatable {
        /// `batch_hardest_neg`, `memory_hardest_neg`
        public var batchHardestNegative: [Point] = []
        public var memoryHardestNegative: [Point] = []
        /// `batch_active_neg`, `memory_active_neg`
        public var batchActiveNegatives: [Point] = []
        public var memoryActiveNegatives: [Point] = []
        /// The first logged iteration with the memory term (the vertical line).
        public var memoryStart: Int?
        /// `batch_loss`, `memory_loss` (the memory's only while it is on).
        public var batchTerm: [Point] = []
        public var memoryTerm: [Point] = []
        /// `drift`: D(t, Δ) of the drift probe.
        public var drift: [Point] = []
        /// `memory_drift`, `memory_drift_compensated`: stored (and compensated) memory rows
        /// against the current model's embeddings of their samples.
        public var memoryDrift: [Point] = []
        public var memoryDriftCompensated: [Point] = []
        /// Logged iterations whose `lr` is at most half the previous logged one (a step of the
        /// schedule, not the slow slope of cosine), with the factor.
        public var rateDrops: [(iteration: Int, factor: Double)] = []

        public init() {}

        public static func == (a: Diagnostics, b: Diagnostics) -> Bool {
            a.batchHardestNegative == b.batchHardestNegative && a.memoryHardestNegative == b.memoryHardestNegative
                && a.batchActiveNegatives == b.batchActiveNegatives && a.memoryActiveNegatives == b.memoryActiveNegatives
                && a.memoryStart == b.memoryStart && a.batchTerm == b.batchTerm && a.memoryTerm == b.memoryTerm
                && a.drift == b.drift && a.memoryDrift == b.memoryDrift
                && a.memoryDriftCompensated == b.memoryDriftCompensated && a.rateDrops.map(\.iteration) == b.rateDrops.map(\.iteration)
                && a.rateDrops.map(\.factor) == b.rateDrops.map(\.factor)
        }

        public var isEmpty: Bool {
            batchHardestNegative.isEmpty && memoryHardestNegative.isEmpty
                && batchActiveNegatives.isEmpty && memoryActiveNegatives.isEmpty
        }
    }

    public var title: String
    public var loss: [Point]
    /// Recall@1 in percent.
    public var recallAtOne: [Point]
    /// Every Recall@K the log holds (`R@K` keys), in percent, by increasing K; when present the
    /// recall panel draws them all.
    public var recallAtK: [(k: Int, points: [Point])] = []
    /// Empty: only the two panels of loss and recall.
    public var diagnostics = Diagnostics()

    public init(title: String, loss: [Point], recallAtOne: [Point]) {
        self.title = title
        self.loss = loss
        self.recallAtOne = recallAtOne
    }

    public init(title: String, loss: [(iteration: Int, value: Double)], recallAtOne: [(iteration: Int, value: Double)]) {
        self.init(title: title, loss: loss.map { Point(iteration: $0.iteration, value: $0.value) },
                  recallAtOne: recallAtOne.map { Point(iteration: $0.iteration, value: $0.value) })
    }

    /// The curves of a run's `metrics.jsonl` text: `loss` (without iteration 1, the random
    /// network's, when later points follow: it would flatten the curve), `R@1`, and the
    /// diagnostics. Lines that are not JSON objects with an `iter` are skipped.
    public init(title: String, metricsLog: String) {
        var loss: [Point] = [], recall: [Point] = [], diagnostics = Diagnostics()
        var lastRate: Double?
        var recalls: [Int: [Point]] = [:]
        for record in MetricsRecord.records(inLog: metricsLog) {
            let iteration = record.iteration
            func add(_ value: Double?, to series: inout [Point]) {
                if let value { series.append(Point(iteration: iteration, value: value)) }
            }
            add(record.loss, to: &loss)
            add(record.recall[1], to: &recall)
            for (k, value) in record.recall { recalls[k, default: []].append(Point(iteration: iteration, value: value)) }
            add(record.batch.hardestNegative, to: &diagnostics.batchHardestNegative)
            add(record.memory.hardestNegative, to: &diagnostics.memoryHardestNegative)
            add(record.batch.activeNegatives, to: &diagnostics.batchActiveNegatives)
            add(record.memory.activeNegatives, to: &diagnostics.memoryActiveNegatives)
            let memoryRan = record.memory.activeNegatives != nil
            if diagnostics.memoryStart == nil, memoryRan { diagnostics.memoryStart = iteration }
            add(record.batchLoss, to: &diagnostics.batchTerm)
            if memoryRan { add(record.memoryLoss, to: &diagnostics.memoryTerm) }
            add(record.drift, to: &diagnostics.drift)
            add(record.memoryDrift, to: &diagnostics.memoryDrift)
            add(record.memoryDriftCompensated, to: &diagnostics.memoryDriftCompensated)
            if let rate = record.learningRate {
                if let lastRate, lastRate > 0, rate <= lastRate / 2 {
                    diagnostics.rateDrops.append((iteration, rate / lastRate))
                }
                lastRate = rate
            }
        }
        if loss.count > 1, loss[0].iteration == 1 { loss.removeFirst() }
        self.init(title: title, loss: loss, recallAtOne: recall)
        self.diagnostics = diagnostics
        recallAtK = recalls.keys.sorted().map { ($0, recalls[$0]!) }
    }

    // Canvas (pixels): every panel spans x ∈ [left, width − right].
    static let width = 720.0, left = 78.0, right = 24.0
    static let panels: [(top: Double, bottom: Double)] = [(60, 270), (320, 510), (560, 770), (820, 1030), (1080, 1290)]

    private struct Series {
        var points: [Point]
        var name: String
        var color: String
        /// Noisy per-iteration values: drawn faint, under their smoothed line.
        var smoothed = false
    }

    /// Series longer than this are smoothed when marked so.
    static let smoothingMinimum = 30

    /// TensorBoard's smoothing: an exponential moving average with weight w = 0.9, debiased
    /// for its start, s_t = m_t / (1 − w^t) with m_t = w·m_{t−1} + (1 − w)·v_t, m_0 = 0.
    public static func smooth(_ points: [Point], weight: Double = 0.9) -> [Point] {
        var average = 0.0, correction = 1.0
        return points.map { point in
            average = weight * average + (1 - weight) * point.value
            correction *= weight
            return Point(iteration: point.iteration, value: average / (1 - correction))
        }
    }

    /// The SVG document.
    public func svg() -> String {
        func finite(_ points: [Point]) -> [Point] { points.filter { $0.value.isFinite } }
        let batchColor = "#ff7f0e", memoryColor = "#9467bd"
        let d = diagnostics
        var lossSeries = [Series(points: finite(loss), name: "loss", color: "#1f77b4", smoothed: true)]
        if !d.memoryTerm.isEmpty {
            lossSeries.append(Series(points: finite(d.batchTerm), name: "batch term", color: "#ff7f0e", smoothed: true))
            lossSeries.append(Series(points: finite(d.memoryTerm), name: "memory term", color: "#9467bd", smoothed: true))
        }
        let recallColors = ["#d62728", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        let recallSeries = recallAtK.count > 1
            ? recallAtK.enumerated().map { Series(points: finite($1.points), name: "R@\($1.k)", color: recallColors[$0 % recallColors.count]) }
            : [Series(points: finite(recallAtOne), name: "Recall@1 (%)", color: "#d62728")]
        var panels: [(name: String, series: [Series])] = [
            ("loss", lossSeries),
            (recallAtK.count > 1 ? "Recall@K (%)" : "Recall@1 (%)", recallSeries),
        ]
        if !d.isEmpty {
            panels.append(("hardest negative similarity", [
                Series(points: finite(d.batchHardestNegative), name: "batch", color: batchColor),
                Series(points: finite(d.memoryHardestNegative), name: "memory", color: memoryColor)]))
            panels.append(("active negatives / anchor", [
                Series(points: finite(d.batchActiveNegatives), name: "batch", color: batchColor),
                Series(points: finite(d.memoryActiveNegatives), name: "memory", color: memoryColor)]))
        }
        if !d.drift.isEmpty || !d.memoryDrift.isEmpty {
            var series = [Series(points: finite(d.drift), name: "drift of the probe", color: "#2ca02c")]
            if !d.memoryDrift.isEmpty {
                series.append(Series(points: finite(d.memoryDrift), name: "memory rows as stored", color: "#d62728"))
            }
            if !d.memoryDriftCompensated.isEmpty {
                series.append(Series(points: finite(d.memoryDriftCompensated), name: "memory rows compensated", color: "#9467bd"))
            }
            panels.append(("feature drift", series))
        }
        let height = Self.panels[panels.count - 1].bottom + 50
        var iterations = panels.flatMap { $0.series.flatMap { $0.points.map { Double($0.iteration) } } }
        if let start = d.memoryStart { iterations.append(Double(start)) }
        iterations += d.rateDrops.map { Double($0.iteration) }
        let xAxis = Axis(low: iterations.min() ?? 0, high: iterations.max() ?? 1, integral: true)
        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(Self.width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(number(Self.width / 2))" y="30" text-anchor="middle" font-size="16" font-weight="bold">\(escaped(title))</text>

        """
        for (index, panel) in panels.enumerated() {
            svg += self.panel(series: panel.series, name: panel.name, xAxis: xAxis, frame: Self.panels[index],
                              showsIterationLabel: index == panels.count - 1,
                              memoryStart: d.isEmpty ? nil : d.memoryStart, rateDrops: d.rateDrops, labels: index == 0)
        }
        return svg + "</svg>\n"
    }

    /// Writes `svg()` to `url` (replacing it).
    public func write(to url: URL) throws {
        try Data(svg().utf8).write(to: url, options: .atomic)
    }

    private func panel(series: [Series], name: String, xAxis: Axis, frame: (top: Double, bottom: Double),
                       showsIterationLabel: Bool, memoryStart: Int?, rateDrops: [(iteration: Int, factor: Double)],
                       labels: Bool) -> String {
        let (left, right) = (Self.left, Self.width - Self.right)
        let values = series.flatMap { $0.points.map(\.value) }
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
        if let memoryStart {
            let mx = number(x(Double(memoryStart)))
            out += "<line x1=\"\(mx)\" y1=\"\(number(frame.top))\" x2=\"\(mx)\" y2=\"\(number(frame.bottom))\" stroke=\"#606060\" stroke-dasharray=\"4 3\"/>\n"
            if labels {
                out += "<text x=\"\(number(x(Double(memoryStart)) + 4))\" y=\"\(number(frame.top + 14))\" fill=\"#606060\">memory on</text>\n"
            }
        }
        for drop in rateDrops {
            let dx = number(x(Double(drop.iteration)))
            out += "<line x1=\"\(dx)\" y1=\"\(number(frame.top))\" x2=\"\(dx)\" y2=\"\(number(frame.bottom))\" stroke=\"#2ca02c\" stroke-dasharray=\"1 3\"/>\n"
            if labels {
                out += "<text x=\"\(number(x(Double(drop.iteration)) + 4))\" y=\"\(number(frame.top + 30))\" fill=\"#2ca02c\">lr ×\(formatted(drop.factor, decimals: 2))</text>\n"
            }
        }
        if series.allSatisfy({ $0.points.isEmpty }) {
            out += "<text x=\"\(number((left + right) / 2))\" y=\"\(middle)\" text-anchor=\"middle\" fill=\"#808080\">no data yet</text>\n"
        }
        func polyline(_ points: [Point], _ color: String, _ attributes: String) -> String {
            let coordinates = points.map { "\(number(x(Double($0.iteration)))),\(number(y($0.value)))" }
            return "<polyline fill=\"none\" stroke=\"\(color)\" \(attributes) points=\"\(coordinates.joined(separator: " "))\"/>\n"
        }
        for line in series where !line.points.isEmpty {
            if line.smoothed && line.points.count > Self.smoothingMinimum {
                out += polyline(line.points, line.color, "stroke-width=\"1\" stroke-opacity=\"0.3\"")
                out += polyline(Self.smooth(line.points), line.color, "stroke-width=\"1.8\"")
                continue
            }
            out += polyline(line.points, line.color, "stroke-width=\"1.5\"")
            if line.points.count <= 60 {
                for point in line.points {
                    out += "<circle cx=\"\(number(x(Double(point.iteration))))\" cy=\"\(number(y(point.value)))\" r=\"3\" fill=\"\(line.color)\"/>\n"
                }
            }
        }
        // Legend: a sample of each line and its name, top right inside the panel.
        for (index, line) in series.enumerated() {
            let legendY = number(frame.top + 16 + 16 * Double(index))
            out += "<line x1=\"\(number(right - 130))\" y1=\"\(legendY)\" x2=\"\(number(right - 108))\" y2=\"\(legendY)\" stroke=\"\(line.color)\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(number(right - 102))\" y=\"\(legendY)\" dominant-baseline=\"middle\">\(escaped(line.name))</text>\n"
        }
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
