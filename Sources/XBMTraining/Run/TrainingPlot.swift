import Foundation
import XBMEval
import XBMFormats

/// The run directory's training curves (README.md): a standalone SVG with stacked panels
/// sharing the iteration axis, the loss above (with its batch and memory terms once the
/// memory is on) and Recall@1 (%) below, each with ticks, grid, axis labels and a legend.
/// With pair diagnostics (Docs/losses.md, Diagnostics) two more panels follow: the hardest
/// negative's similarity and the active negatives per anchor, batch against memory; with
/// drift measurements a last panel shows the feature drift. A dashed vertical line marks
/// where the memory term starts, a dotted one each drop of the learning rate; their labels
/// go where they cover the fewest curve points, and each legend is a row above its panel, so
/// neither hides data. Every series starts at its first logged iteration; long noisy ones are
/// drawn faint under their smoothed line (`smooth`); a loss that falls more than tenfold gets
/// a logarithmic axis. Non-finite values are left out; an empty panel shows "no data yet";
/// series of up to 60 points also get a marker per point, so a single point is visible.
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

    /// The curves of a run's `metrics.jsonl` text: `loss`, `R@1`, and the diagnostics, each
    /// from its first line on. Lines that are not JSON objects with an `iter` are skipped.
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
        self.init(title: title, loss: loss, recallAtOne: recall)
        self.diagnostics = diagnostics
        recallAtK = recalls.keys.sorted().map { ($0, recalls[$0]!) }
    }

    // Canvas (pixels): every panel spans x ∈ [left, width − right]; its legend is a row above
    // its frame (in the band between the title or the previous panel's tick labels and it).
    static let width = 720.0, left = 78.0, right = 24.0
    static let panels: [(top: Double, bottom: Double)] = [(60, 270), (320, 510), (560, 770), (820, 1030), (1080, 1290)]

    private struct Series {
        var points: [Point]
        var name: String
        var color: String
        /// Noisy per-iteration values: drawn faint, under their smoothed line.
        var smoothed = false
    }

    private struct Panel {
        var name: String
        var series: [Series]
        /// Positive values spanning more than a decade get a logarithmic axis (the loss).
        var allowsLogarithmicAxis = false
    }

    /// A vertical line across every panel: where the memory starts, a drop of the rate.
    private struct Marker {
        var iteration: Int
        var color: String
        var dashes: String
        /// Written beside the line in the first panel.
        var label: String
    }

    /// Series longer than this are smoothed when marked so.
    static let smoothingMinimum = 30

    /// TensorBoard's smoothing, an exponential moving average debiased for its start, taken
    /// over iterations instead of logged points. With Δ the series' usual spacing (the median
    /// gap between its iterations), t_j the iteration of point j and h_j = min(t_j − t_{j−1}, Δ)
    /// (t_0 = 0, at least 1) the iterations point j stands for,
    ///
    ///     s_i = Σ_{j≤i} w^((t_i − t_j)/Δ) · h_j · v_j  /  Σ_{j≤i} w^((t_i − t_j)/Δ) · h_j.
    ///
    /// So s_1 = v_1, and on a uniform grid (every h_j = Δ) s_i = (1 − w) Σ_j w^(i−j) v_j / (1 − wⁱ),
    /// TensorBoard's debiased average. A run logs iteration 1 (the random network's loss, often
    /// ten times the rest), then every Δ: that point stands for one iteration and weighs 1/Δ of
    /// a regular one, where an average over points would hold the curve up for about
    /// 1/(1 − w) = 10 points.
    public static func smooth(_ points: [Point], weight w: Double = 0.9) -> [Point] {
        let gaps = zip(points.dropFirst(), points).map { $0.iteration - $1.iteration }.sorted()
        let spacing = Double(max(1, gaps.isEmpty ? 1 : gaps[gaps.count / 2]))
        var weightedSum = 0.0, totalWeight = 0.0, previous = 0
        return points.map { point in
            let gap = Double(point.iteration - previous)
            let decay = pow(w, max(gap, 0) / spacing)
            let standsFor = min(max(gap, 1), spacing)
            weightedSum = decay * weightedSum + standsFor * point.value
            totalWeight = decay * totalWeight + standsFor
            previous = point.iteration
            return Point(iteration: point.iteration, value: weightedSum / totalWeight)
        }
    }

    /// The SVG document.
    public func svg() -> String {
        func finite(_ points: [Point]) -> [Point] { points.filter { $0.value.isFinite } }
        let batchColor = "#ff7f0e", memoryColor = "#9467bd"
        let d = diagnostics
        var lossSeries = [Series(points: finite(loss), name: "loss", color: "#1f77b4", smoothed: true)]
        if !d.memoryTerm.isEmpty {
            lossSeries.append(Series(points: finite(d.batchTerm), name: "batch term", color: batchColor, smoothed: true))
            lossSeries.append(Series(points: finite(d.memoryTerm), name: "memory term", color: memoryColor, smoothed: true))
        }
        let recallColors = ["#d62728", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        let recallSeries = recallAtK.count > 1
            ? recallAtK.enumerated().map { Series(points: finite($1.points), name: "R@\($1.k)", color: recallColors[$0 % recallColors.count]) }
            : [Series(points: finite(recallAtOne), name: "Recall@1 (%)", color: "#d62728")]
        var panels = [Panel(name: "loss", series: lossSeries, allowsLogarithmicAxis: true),
                      Panel(name: recallAtK.count > 1 ? "Recall@K (%)" : "Recall@1 (%)", series: recallSeries)]
        if !d.isEmpty {
            panels.append(Panel(name: "hardest negative similarity", series: [
                Series(points: finite(d.batchHardestNegative), name: "batch", color: batchColor),
                Series(points: finite(d.memoryHardestNegative), name: "memory", color: memoryColor)]))
            panels.append(Panel(name: "active negatives / anchor", series: [
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
            panels.append(Panel(name: "feature drift", series: series))
        }
        var markers: [Marker] = []
        if !d.isEmpty, let start = d.memoryStart {
            markers.append(Marker(iteration: start, color: "#606060", dashes: "4 3", label: "memory on"))
        }
        markers += d.rateDrops.map { Marker(iteration: $0.iteration, color: "#2ca02c", dashes: "1 3",
                                            label: "lr ×\(formatted($0.factor, decimals: 2))") }
        let height = Self.panels[panels.count - 1].bottom + 50
        var iterations = panels.flatMap { $0.series.flatMap { $0.points.map { Double($0.iteration) } } }
        iterations += markers.map { Double($0.iteration) }
        let xAxis = Axis(low: iterations.min() ?? 0, high: iterations.max() ?? 1, integral: true)
        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(Self.width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(number(Self.width / 2))" y="30" text-anchor="middle" font-size="16" font-weight="bold">\(escaped(title))</text>

        """
        for (index, panel) in panels.enumerated() {
            svg += self.panel(panel, xAxis: xAxis, frame: Self.panels[index], showsIterationLabel: index == panels.count - 1,
                              markers: markers, labelsMarkers: index == 0)
        }
        return svg + "</svg>\n"
    }

    /// Writes `svg()` to `url` (replacing it).
    public func write(to url: URL) throws {
        try Data(svg().utf8).write(to: url, options: .atomic)
    }

    /// One panel: grid and ticks, the markers' lines, the curves, the markers' labels where they
    /// cover the fewest curve points (`placeLabel`), and the legend as a row above the frame.
    private func panel(_ panel: Panel, xAxis: Axis, frame: (top: Double, bottom: Double),
                       showsIterationLabel: Bool, markers: [Marker], labelsMarkers: Bool) -> String {
        let (left, right) = (Self.left, Self.width - Self.right)
        let yAxis = Axis.fitting(panel.series.flatMap { $0.points.map(\.value) }, allowLogarithmic: panel.allowsLogarithmicAxis)
        func x(_ iteration: Int) -> Double { left + xAxis.fraction(Double(iteration)) * (right - left) }
        func y(_ value: Double) -> Double { frame.bottom - yAxis.fraction(value) * (frame.bottom - frame.top) }
        func pixels(_ points: [Point]) -> [PlotPoint] { points.map { PlotPoint(x: x($0.iteration), y: y($0.value)) } }

        var out = "<g>\n"
        for tick in yAxis.ticks {
            let ty = number(y(tick))
            out += "<line x1=\"\(number(left))\" y1=\"\(ty)\" x2=\"\(number(right))\" y2=\"\(ty)\" stroke=\"#e0e0e0\"/>\n"
            out += "<text x=\"\(number(left - 6))\" y=\"\(ty)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(yAxis.label(tick))</text>\n"
        }
        for tick in xAxis.ticks {
            let tx = number(left + xAxis.fraction(tick) * (right - left))
            out += "<line x1=\"\(tx)\" y1=\"\(number(frame.bottom))\" x2=\"\(tx)\" y2=\"\(number(frame.bottom + 5))\" stroke=\"black\"/>\n"
            out += "<text x=\"\(tx)\" y=\"\(number(frame.bottom + 18))\" text-anchor=\"middle\">\(xAxis.label(tick))</text>\n"
        }
        out += "<rect x=\"\(number(left))\" y=\"\(number(frame.top))\" width=\"\(number(right - left))\" height=\"\(number(frame.bottom - frame.top))\" fill=\"none\" stroke=\"black\"/>\n"
        let middle = number((frame.top + frame.bottom) / 2)
        let axisName = panel.name + (yAxis.logarithmic ? " (log scale)" : "")
        out += "<text x=\"18\" y=\"\(middle)\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(middle))\">\(escaped(axisName))</text>\n"
        if showsIterationLabel {
            out += "<text x=\"\(number((left + right) / 2))\" y=\"\(number(frame.bottom + 40))\" text-anchor=\"middle\">iteration</text>\n"
        }
        for marker in markers {
            let mx = number(x(marker.iteration))
            out += "<line x1=\"\(mx)\" y1=\"\(number(frame.top))\" x2=\"\(mx)\" y2=\"\(number(frame.bottom))\" stroke=\"\(marker.color)\" stroke-dasharray=\"\(marker.dashes)\"/>\n"
        }
        if panel.series.allSatisfy({ $0.points.isEmpty }) {
            out += "<text x=\"\(number((left + right) / 2))\" y=\"\(middle)\" text-anchor=\"middle\" fill=\"#808080\">no data yet</text>\n"
        }

        var samples = CurveSamples()
        func polyline(_ line: [PlotPoint], _ color: String, _ attributes: String) -> String {
            samples.addPolyline(line)
            let coordinates = line.map { "\(number($0.x)),\(number($0.y))" }
            return "<polyline fill=\"none\" stroke=\"\(color)\" \(attributes) points=\"\(coordinates.joined(separator: " "))\"/>\n"
        }
        for line in panel.series where !line.points.isEmpty {
            if line.smoothed && line.points.count > Self.smoothingMinimum {
                out += polyline(pixels(line.points), line.color, "stroke-width=\"1\" stroke-opacity=\"0.3\"")
                out += polyline(pixels(Self.smooth(line.points)), line.color, "stroke-width=\"1.8\"")
                continue
            }
            out += polyline(pixels(line.points), line.color, "stroke-width=\"1.5\"")
            if line.points.count <= 60 {
                for point in pixels(line.points) {
                    samples.addMarker(point, radius: 3)
                    out += "<circle cx=\"\(number(point.x))\" cy=\"\(number(point.y))\" r=\"3\" fill=\"\(line.color)\"/>\n"
                }
            }
        }

        if labelsMarkers {
            let box = PlotBox(left: left, top: frame.top, right: right, bottom: frame.bottom)
            var taken: [PlotBox] = []
            for marker in markers {
                let place = placeLabel(marker.label, lineX: x(marker.iteration), frame: box, samples: samples, taken: taken)
                taken.append(place.box)
                out += "<text x=\"\(number(place.x))\" y=\"\(number(place.y))\" text-anchor=\"\(place.endsAtX ? "end" : "start")\" "
                    + "dominant-baseline=\"middle\" fill=\"\(marker.color)\">\(escaped(marker.label))</text>\n"
            }
        }

        // Legend: a sample of each line with data and its name, in a row ending at the frame's right edge.
        let legendY = number(frame.top - 10)
        var entryRight = right
        for line in panel.series.reversed() where !line.points.isEmpty {
            let textLeft = entryRight - PlotText.width(line.name)
            out += "<line x1=\"\(number(textLeft - 28))\" y1=\"\(legendY)\" x2=\"\(number(textLeft - 6))\" y2=\"\(legendY)\" stroke=\"\(line.color)\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(number(textLeft))\" y=\"\(legendY)\" dominant-baseline=\"middle\">\(escaped(line.name))</text>\n"
            entryRight = textLeft - 28 - 16
        }
        return out + "</g>\n"
    }
}

