import Foundation
import TestSupport
import XBMTraining
import XCTest

/// curves.svg of a run shaped like Launch/demo's: the random network's loss at iteration 1 is
/// ten times the rest, the memory and a drop of the rate start together at 75% of the run, and the
/// memory's active negatives run along the top of their panel. The smoothed curves must start
/// at the raw value and follow it from the next point on; every series starts at its first
/// logged iteration; no legend entry or label covers a curve or another label.
final class PlotArtefactTests: XCTestCase {
    /// Iteration 1 (loss 50), then every 25 iterations to 3,000; the memory and the rate's
    /// step (×0.1) at 2,250. Raw values after the start stay in 2.5 … 3.5 (batch term) and
    /// 3.5 … 4.5 (memory term).
    static let log: String = {
        var lines: [String] = []
        for iteration in [1] + Array(stride(from: 25, through: 3000, by: 25)) {
            let wiggle = sin(Double(iteration) / 70)
            let memoryOn = iteration >= 2250
            let batch = iteration == 1 ? 50 : 3 + 0.5 * wiggle
            let memory = memoryOn ? 4 + 0.5 * wiggle : 0
            var fields = [#""iter":\#(iteration)"#, #""loss":\#(batch + memory)"#, #""batch_loss":\#(batch)"#,
                          #""memory_loss":\#(memory)"#, #""lr":\#(memoryOn ? 1e-4 : 1e-3)"#,
                          #""batch_active_neg":\#(iteration == 1 ? 20 : 3 + wiggle)"#,
                          #""batch_hardest_neg":\#(iteration == 1 ? 0.95 : 0.6 + 0.02 * wiggle)"#]
            if memoryOn {
                fields += [#""memory_active_neg":\#(36 + 4 * wiggle)"#, #""memory_hardest_neg":\#(0.8 + 0.02 * wiggle)"#]
            }
            lines.append("{" + fields.joined(separator: ",") + "}")
        }
        lines.append(#"{"iter":3000,"R@1":80.0}"#)
        return lines.joined(separator: "\n")
    }()

    let plot = TrainingPlot(title: "demo-like", metricsLog: PlotArtefactTests.log)

    func testEverySeriesStartsAtItsFirstLoggedIteration() {
        XCTAssertEqual(plot.loss.first?.iteration, 1, "the loss was logged at iteration 1")
        XCTAssertEqual(plot.diagnostics.batchTerm.first?.iteration, 1)
        XCTAssertEqual(plot.diagnostics.memoryTerm.first?.iteration, 2250)
    }

    /// The smoothed line starts at the first raw value, and the start-up value cannot hold it
    /// up afterwards: iteration 1 stands for one iteration and iteration 25 for 24, so at
    /// iteration 25 its share of the average is at most 1/25, and the smoothed value exceeds
    /// the largest raw value seen since by at most (50 − 2.5)/25 < 2.
    func testTheSmoothedStartFollowsTheRawValues() {
        let raw = plot.diagnostics.batchTerm
        let smoothed = TrainingPlot.smooth(raw)
        XCTAssertEqual(smoothed.map(\.iteration), raw.map(\.iteration))
        XCTAssertEqual(smoothed[0].value, raw[0].value, accuracy: 1e-12, "starts at the raw value")
        for i in 1..<raw.count {
            let seen = raw[1...i].map(\.value)
            XCTAssertLessThanOrEqual(smoothed[i].value, seen.max()! + 2, "iteration \(raw[i].iteration)")
            XCTAssertGreaterThanOrEqual(smoothed[i].value, seen.min()!, "iteration \(raw[i].iteration)")
        }
    }

    /// On a uniform grid the smoothing is TensorBoard's debiased average,
    /// s_i = (1 − w) Σ_{j≤i} w^(i−j) v_j / (1 − wⁱ), written out here as that sum.
    func testOnAUniformGridTheSmoothingIsTensorBoards() {
        let values = [5.0, 1, 3, 2, 4, 0.5, 7]
        let points = values.enumerated().map { TrainingPlot.Point(iteration: 10 * ($0.offset + 1), value: $0.element) }
        let smoothed = TrainingPlot.smooth(points, weight: 0.8)
        for i in values.indices {
            let sum = (0...i).reduce(0.0) { $0 + pow(0.8, Double(i - $1)) * values[$1] }
            XCTAssertEqual(smoothed[i].value, 0.2 * sum / (1 - pow(0.8, Double(i + 1))), accuracy: 1e-12)
        }
    }

    /// In the SVG, each smoothed line starts on the first point of its faint raw line, and the
    /// loss and its batch term start at the same x.
    func testTheDrawnLinesStartTogether() {
        let document = SVGDocument.parse(plot.svg())
        let raw = document.elements.filter { $0.name == "polyline" && $0.attributes["stroke-opacity"] == "0.3" }
        let lossColour = "#1f77b4", batchColour = "#ff7f0e"
        let smoothedLines = document.elements.filter {
            $0.name == "polyline" && $0.attributes["stroke-opacity"] == nil && $0.attributes["stroke-width"] == "1.8"
        }
        XCTAssertEqual(raw.count, 3, "loss, batch term, memory term")
        XCTAssertEqual(smoothedLines.count, 3)
        for (faint, line) in zip(raw, smoothedLines) {
            XCTAssertEqual(faint.attributes["stroke"], line.attributes["stroke"])
            XCTAssertEqual(points(faint.attributes["points"]).first?.x, points(line.attributes["points"]).first?.x)
            XCTAssertEqual(points(faint.attributes["points"]).first?.y, points(line.attributes["points"]).first?.y)
        }
        let loss = raw.first { $0.attributes["stroke"] == lossColour }, batch = raw.first { $0.attributes["stroke"] == batchColour }
        XCTAssertEqual(points(loss?.attributes["points"]).first?.x, points(batch?.attributes["points"]).first?.x)
    }

    /// Every legend entry and label ("memory on", "lr ×0.10") is a box that holds no point of
    /// any drawn curve and overlaps no other such box (the panels' rotated names are not
    /// legends). A box is estimated generously: 0.6 em
    /// per character of the 12-pixel font and the font's full height.
    func testLegendsAndLabelsCoverNoData() {
        let document = SVGDocument.parse(plot.svg())
        let names: Set<String> = ["loss", "batch term", "memory term", "Recall@1 (%)", "batch", "memory", "memory on", "lr ×0.10"]
        var boxes: [(name: String, box: Box)] = []
        for (element, content) in zip(document.elements, document.contents) where element.name == "text" && element.attributes["transform"] == nil && names.contains(content) {
            boxes.append((content, textBox(element.attributes, content)))
        }
        for name in names { XCTAssertTrue(boxes.contains { $0.name == name }, "\(name) is not drawn") }
        let samples = curveSamples(document)
        XCTAssertGreaterThan(samples.count, 1000)
        for (name, box) in boxes {
            let covered = samples.filter { box.contains($0) }
            XCTAssertTrue(covered.isEmpty, "\(name) at \(box) covers \(covered.count) curve points, e.g. \(covered.first!)")
            XCTAssertTrue(box.left >= 0 && box.right <= 720 && box.top >= 0, "\(name) at \(box) leaves the canvas")
        }
        for i in boxes.indices {
            for j in boxes.indices where j > i {
                XCTAssertFalse(boxes[i].box.intersects(boxes[j].box), "\(boxes[i].name) overlaps \(boxes[j].name)")
            }
        }
    }

    // MARK: geometry of the SVG

    struct Box: CustomStringConvertible {
        var left: Double, top: Double, right: Double, bottom: Double
        func contains(_ p: (x: Double, y: Double)) -> Bool { p.x >= left && p.x <= right && p.y >= top && p.y <= bottom }
        func intersects(_ o: Box) -> Bool { left < o.right && o.left < right && top < o.bottom && o.top < bottom }
        var description: String { "[\(Int(left))…\(Int(right)) × \(Int(top))…\(Int(bottom))]" }
    }

    func points(_ attribute: String?) -> [(x: Double, y: Double)] {
        (attribute ?? "").split(separator: " ").map { pair in
            let xy = pair.split(separator: ",").map { Double($0)! }
            return (xy[0], xy[1])
        }
    }

    /// The extent of a 12-pixel text: 0.6 em per character; from the baseline 11 pixels up and 3
    /// down, or ±7 around y when centred (`dominant-baseline="middle"`).
    func textBox(_ attributes: [String: String], _ content: String) -> Box {
        let x = Double(attributes["x"]!)!, y = Double(attributes["y"]!)!
        let width = 7.2 * Double(content.count)
        let left: Double
        switch attributes["text-anchor"] {
        case "end": left = x - width
        case "middle": left = x - width / 2
        default: left = x
        }
        let (top, bottom) = attributes["dominant-baseline"] == "middle" ? (y - 7, y + 7) : (y - 11, y + 3)
        return Box(left: left, top: top, right: left + width, bottom: bottom)
    }

    /// Points along every polyline, one per pixel of its length, and the markers' centres.
    func curveSamples(_ document: SVGDocument) -> [(x: Double, y: Double)] {
        var samples: [(x: Double, y: Double)] = []
        for element in document.elements {
            if element.name == "circle" {
                samples.append((Double(element.attributes["cx"]!)!, Double(element.attributes["cy"]!)!))
            }
            guard element.name == "polyline" else { continue }
            let line = points(element.attributes["points"])
            samples += line
            for (a, b) in zip(line, line.dropFirst()) {
                let steps = Int(max(abs(b.x - a.x), abs(b.y - a.y)).rounded(.up))
                for s in 0..<max(steps, 1) {
                    let t = Double(s) / Double(max(steps, 1))
                    samples.append((a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)))
                }
            }
        }
        return samples
    }
}
