import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
@testable import XBMTraining

final class PlotTests: XCTestCase {
    func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> SVGDocument {
        SVGDocument.parse(svg, file: file, line: line)
    }

    func points(_ attribute: String?) -> [(x: Double, y: Double)] {
        (attribute ?? "").split(separator: " ").map { pair in
            let parts = pair.split(separator: ",").map { Double($0)! }
            return (parts[0], parts[1])
        }
    }

    /// Every coordinate attribute is a finite number inside the canvas.
    func assertCoordinatesInsideCanvas(_ document: SVGDocument, file: StaticString = #filePath, line: UInt = #line) {
        for element in document.elements {
            for (name, value) in element.attributes where ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy"].contains(name) {
                guard let number = Double(value), number.isFinite, number >= 0, number <= 720 else {
                    return XCTFail("\(element.name) \(name)=\"\(value)\"", file: file, line: line)
                }
            }
            for point in points(element.attributes["points"]) {
                XCTAssertTrue(point.x.isFinite && point.y.isFinite && (0...720).contains(point.x) && (0...560).contains(point.y), file: file, line: line)
            }
        }
    }

    func testTwoPanelsWithPolylinesThatFollowTheData() {
        let loss = (0..<100).map { (iteration: $0 * 10, value: 2.0 / Double($0 + 1)) }      // falling
        let recall = [(iteration: 0, value: 10.0), (iteration: 500, value: 60.0), (iteration: 990, value: 85.0)]
        let svg = TrainingPlot(title: "hanzi <xbm> & co", loss: loss, recallAtOne: recall).svg()
        let document = parse(svg)
        let all = document.elements.filter { $0.name == "polyline" }
        XCTAssertEqual(all.filter { $0.attributes["stroke-opacity"] == "0.3" }.count, 1, "the 100 raw losses drawn faint")
        let lines = all.filter { $0.attributes["stroke-opacity"] == nil }                // the smoothed loss, the recall
        XCTAssertEqual(lines.count, 2)
        let lossPoints = points(lines[0].attributes["points"]), recallPoints = points(lines[1].attributes["points"])
        XCTAssertEqual(lossPoints.count, 100)
        XCTAssertEqual(recallPoints.count, 3)
        // Iterations grow to the right; a larger value is drawn higher (smaller SVG y).
        XCTAssertTrue(zip(lossPoints, lossPoints.dropFirst()).allSatisfy { $0.x < $1.x && $0.y <= $1.y })
        XCTAssertTrue(zip(recallPoints, recallPoints.dropFirst()).allSatisfy { $0.x < $1.x && $0.y > $1.y })
        // The panels share the iteration axis and do not overlap: loss above, recall below.
        XCTAssertEqual(lossPoints.first!.x, recallPoints.first!.x, accuracy: 0.01)
        XCTAssertLessThan(lossPoints.map(\.y).max()!, recallPoints.map(\.y).min()!)
        XCTAssertEqual(document.elements.filter { $0.name == "circle" }.count, 3)   // markers for the short series only
        XCTAssertTrue(document.text.contains("hanzi <xbm> & co"))                 // escaped, parsed back
        for label in ["loss", "Recall@1 (%)", "iteration"] { XCTAssertTrue(document.text.contains(label), label) }
        assertCoordinatesInsideCanvas(document)
    }

    func testEmptyRecallSingleLossPointAndNonFiniteValues() {
        let svg = TrainingPlot(title: "start", loss: [(iteration: 1, value: 0.7), (iteration: 2, value: .nan)],
                               recallAtOne: []).svg()
        let document = parse(svg)
        let lines = document.elements.filter { $0.name == "polyline" }
        XCTAssertEqual(lines.count, 1)
        XCTAssertEqual(points(lines[0].attributes["points"]).count, 1)           // the NaN is left out
        XCTAssertEqual(document.elements.filter { $0.name == "circle" }.count, 1)
        XCTAssertTrue(document.text.contains("no data yet"))
        assertCoordinatesInsideCanvas(document)
    }

    func testNoDataAtAllAndWriting() throws {
        let plot = TrainingPlot(title: "empty", loss: [(iteration: Int, value: Double)](), recallAtOne: [])
        let document = parse(plot.svg())
        assertCoordinatesInsideCanvas(document)
        XCTAssertEqual(document.elements.filter { $0.name == "polyline" }.count, 0)
        XCTAssertEqual(document.text.components(separatedBy: "no data yet").count - 1, 2)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xbm-plot-\(UUID().uuidString).svg")
        defer { try? FileManager.default.removeItem(at: url) }
        try plot.write(to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), plot.svg())
    }
}
