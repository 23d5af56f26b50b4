import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// The elements and text of an SVG document, for tests of the plots: parsing fails the test
/// when the document is not well-formed XML or its root is not `svg`.
public final class SVGDocument: NSObject, XMLParserDelegate {
    public private(set) var elements: [(name: String, attributes: [String: String])] = []
    /// The characters directly inside each element of `elements` (a `text` element's label),
    /// in the same order.
    public private(set) var contents: [String] = []
    public private(set) var text = ""
    /// Indices into `elements` of the elements open at the parser's position.
    private var open: [Int] = []

    public static func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> SVGDocument {
        let parser = XMLParser(data: Data(svg.utf8))
        let document = SVGDocument()
        parser.delegate = document
        XCTAssertTrue(parser.parse(), "not well-formed: \(String(describing: parser.parserError))", file: file, line: line)
        XCTAssertEqual(document.elements.first?.name, "svg", file: file, line: line)
        return document
    }

    public func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                       attributes: [String: String]) {
        open.append(elements.count)
        elements.append((name, attributes))
        contents.append("")
    }

    public func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        open.removeLast()
    }

    public func parser(_ parser: XMLParser, foundCharacters string: String) {
        text += string
        if let innermost = open.last { contents[innermost] += string }
    }
}
