import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import XBMTraining

/// curves.svg from a metrics.jsonl with pair diagnostics: two more panels (hardest negative
/// similarity, active negatives per anchor; batch against memory) and a dashed line where the
/// memory term starts.
final class DiagnosticsPlotTests: XCTestCase {
    func parse(_ svg: String) -> SVGDocument { SVGDocument.parse(svg) }

    /// Iterations 1, 10, …, 50; memory from the line of 30; R@1 at 50.
    let log = """
    {"iter":1,"loss":9.0,"batch_active_neg":20,"batch_hardest_neg":0.9,"memory_count":0}
    {"iter":10,"loss":1.0,"batch_active_neg":10,"batch_hardest_neg":0.7,"memory_count":0}
    {"iter":20,"loss":0.8,"batch_active_neg":8,"batch_hardest_neg":0.6,"memory_count":0}
    {"iter":30,"loss":0.9,"batch_active_neg":2,"batch_hardest_neg":0.5,"memory_count":64,"memory_active_neg":40,"memory_hardest_neg":0.8}
    {"iter":40,"loss":0.7,"batch_active_neg":1,"batch_hardest_neg":0.45,"memory_count":128,"memory_active_neg":30,"memory_hardest_neg":0.75}
    not json
    {"drift":0.1}
    {"iter":50,"loss":0.6,"batch_active_neg":1,"batch_hardest_neg":0.4,"memory_count":128,"memory_active_neg":20,"memory_hardest_neg":0.7}
    {"iter":50,"R@1":55.5,"eval_seconds":1}
    """

    func testReadsTheLog() {
        let plot = TrainingPlot(title: "t", metricsLog: log)
        XCTAssertEqual(plot.loss.map(\.iteration), [1, 10, 20, 30, 40, 50], "every series from its first line")
        XCTAssertEqual(plot.recallAtOne, [TrainingPlot.Point(iteration: 50, value: 55.5)])
        let d = plot.diagnostics
        XCTAssertEqual(d.batchActiveNegatives.map(\.iteration), [1, 10, 20, 30, 40, 50], "diagnostics keep iteration 1")
        XCTAssertEqual(d.batchHardestNegative.map(\.value), [0.9, 0.7, 0.6, 0.5, 0.45, 0.4])
        XCTAssertEqual(d.memoryActiveNegatives.map(\.value), [40, 30, 20])
        XCTAssertEqual(d.memoryHardestNegative.map(\.iteration), [30, 40, 50])
        XCTAssertEqual(d.memoryStart, 30)
    }

    func testFourPanelsAndTheMemoryStartLine() {
        let svg = TrainingPlot(title: "t", metricsLog: log).svg()
        let document = parse(svg)
        let root = document.elements[0].attributes
        XCTAssertEqual(root["height"], "1080")
        let polylines = document.elements.filter { $0.name == "polyline" }
        // loss, recall, then batch and memory in each diagnostics panel.
        XCTAssertEqual(polylines.count, 6)
        func points(_ element: (name: String, attributes: [String: String])) -> [(x: Double, y: Double)] {
            element.attributes["points"]!.split(separator: " ").map { pair in
                let xy = pair.split(separator: ",").map { Double($0)! }
                return (xy[0], xy[1])
            }
        }
        let batchHardest = points(polylines[2]), memoryHardest = points(polylines[3])
        let batchActive = points(polylines[4]), memoryActive = points(polylines[5])
        XCTAssertEqual([batchHardest.count, memoryHardest.count, batchActive.count, memoryActive.count], [6, 3, 6, 3])
        // Stacked below the recall panel, in order; in the hardest-negative panel the memory's
        // 0.8 is drawn above the batch's 0.5 at iteration 30.
        XCTAssertLessThan(points(polylines[1]).map(\.y).max()!, batchHardest.map(\.y).min()!)
        XCTAssertLessThan(max(batchHardest.map(\.y).max()!, memoryHardest.map(\.y).max()!),
                          min(batchActive.map(\.y).min()!, memoryActive.map(\.y).min()!))
        XCTAssertLessThan(memoryHardest[0].y, batchHardest[3].y)
        XCTAssertEqual(memoryHardest[0].x, batchHardest[3].x, accuracy: 0.01)

        // One dashed vertical line per panel at the memory's first iteration (x of iteration 30).
        let dashed = document.elements.filter { $0.name == "line" && $0.attributes["stroke-dasharray"] != nil }
        XCTAssertEqual(dashed.count, 4)
        for line in dashed {
            XCTAssertEqual(line.attributes["x1"], line.attributes["x2"])
            XCTAssertEqual(Double(line.attributes["x1"]!)!, memoryHardest[0].x, accuracy: 0.01)
        }
        for label in ["hardest negative similarity", "active negatives / anchor", "batch", "memory", "memory on"] {
            XCTAssertTrue(document.text.contains(label), label)
        }
    }

    func testWithoutDiagnosticsThePlotIsUnchanged() {
        let plain = TrainingPlot(title: "t", loss: [(iteration: 10, value: 1.0), (iteration: 20, value: 0.5)], recallAtOne: [])
        let fromLog = TrainingPlot(title: "t", metricsLog: "{\"iter\":10,\"loss\":1.0}\n{\"iter\":20,\"loss\":0.5}\n")
        XCTAssertTrue(fromLog.diagnostics.isEmpty)
        XCTAssertEqual(fromLog.svg(), plain.svg())
        XCTAssertEqual(parse(plain.svg()).elements[0].attributes["height"], "560")
        XCTAssertFalse(plain.svg().contains("stroke-dasharray"))
    }

    func testBatchOnlyRunHasNoStartLine() {
        let plot = TrainingPlot(title: "t", metricsLog: """
        {"iter":10,"loss":1.0,"batch_active_neg":3,"batch_hardest_neg":0.5}
        {"iter":20,"loss":0.9,"batch_active_neg":2,"batch_hardest_neg":0.4}
        """)
        XCTAssertNil(plot.diagnostics.memoryStart)
        let document = parse(plot.svg())
        XCTAssertEqual(document.elements.filter { $0.name == "polyline" }.count, 3)   // loss and two batch series
        XCTAssertFalse(document.elements.contains { $0.attributes["stroke-dasharray"] != nil })
        XCTAssertEqual(document.text.components(separatedBy: "no data yet").count - 1, 1, "only the recall panel is empty")
    }

    /// The loss panel splits into its terms once the memory is on; a step of the rate draws a
    /// dotted line labelled with its factor (the cosine's slow slope does not); drift gets a panel.
    func testTermsRateDropsAndDrift() {
        let plot = TrainingPlot(title: "t", metricsLog: """
        {"iter":0,"drift":0.9}
        {"iter":10,"loss":1.0,"batch_loss":1.0,"memory_loss":0,"lr":0.001,"batch_active_neg":3,"batch_hardest_neg":0.5}
        {"iter":20,"loss":0.9,"batch_loss":0.5,"memory_loss":0.4,"lr":0.0009,"batch_active_neg":2,"batch_hardest_neg":0.4,"memory_active_neg":9,"memory_hardest_neg":0.6}
        {"iter":20,"drift":0.3}
        {"iter":30,"loss":0.8,"batch_loss":0.4,"memory_loss":0.4,"lr":0.00009,"batch_active_neg":2,"batch_hardest_neg":0.4,"memory_active_neg":8,"memory_hardest_neg":0.6}
        """)
        let d = plot.diagnostics
        XCTAssertEqual(d.batchTerm.map(\.value), [1.0, 0.5, 0.4])
        XCTAssertEqual(d.memoryTerm.map(\.iteration), [20, 30], "the memory term only while the memory is on")
        XCTAssertEqual(d.drift.map(\.value), [0.9, 0.3])
        XCTAssertEqual(d.rateDrops.map(\.iteration), [30])
        XCTAssertEqual(d.rateDrops.first?.factor ?? 0, 0.1, accuracy: 1e-12)
        let document = parse(plot.svg())
        XCTAssertEqual(document.elements[0].attributes["height"], "1340", "five panels")
        XCTAssertEqual(document.elements.filter { $0.name == "polyline" }.count, 3 + 2 + 2 + 1, "recall has no data")
        XCTAssertEqual(document.elements.filter { $0.attributes["stroke-dasharray"] == "1 3" }.count, 5, "a rate line per panel")
        XCTAssertTrue(document.text.contains("lr ×0.10"), document.text)
    }

    /// Long noisy series are drawn faint under TensorBoard's debiased moving average; every
    /// Recall@K of the evaluations gets a line.
    func testSmoothedLossAndEveryRecallAtK() {
        let smoothed = TrainingPlot.smooth([.init(iteration: 1, value: 1), .init(iteration: 2, value: 0)])
        XCTAssertEqual(smoothed[0].value, 1, accuracy: 1e-12, "debiased: the first value is itself")
        XCTAssertEqual(smoothed[1].value, 0.09 / 0.19, accuracy: 1e-12)   // (0.9·0.1·1 + 0.1·0) / (1 − 0.81)

        var log = (1...40).map { #"{"iter":\#($0),"loss":\#(Double($0 % 2))}"# }
        log.append(#"{"iter":40,"R@1":50.0,"R@10":80.0,"R@100":95.0}"#)
        let plot = TrainingPlot(title: "t", metricsLog: log.joined(separator: "\n"))
        XCTAssertEqual(plot.recallAtK.map(\.k), [1, 10, 100])
        let document = parse(plot.svg())
        let lines = document.elements.filter { $0.name == "polyline" }
        XCTAssertEqual(lines.filter { $0.attributes["stroke-opacity"] == "0.3" }.count, 1, "the raw loss, faint")
        XCTAssertEqual(lines.count, 2 + 3, "raw and smoothed loss, three recalls")
        XCTAssertTrue(document.text.contains("Recall@K (%)") && document.text.contains("R@100"), document.text)
    }
}
