/// The plain-text lists of the published layouts: one record per line, fields separated by
/// blanks. Pure functions over the file's text, so the parsers are tested without images.
enum ListText {
    /// A non-blank line: its 1-based number, its fields and the line itself (for messages).
    struct Line {
        var number: Int
        var fields: [Substring]
        var text: Substring
    }

    /// The non-blank lines of `text`; blank lines are skipped but counted. Line ends are LF or
    /// CRLF (which Swift reads as one Character, so splitting on "\n" alone would miss it).
    static func lines(_ text: String) -> [Line] {
        var result: [Line] = []
        var number = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if !fields.isEmpty { result.append(Line(number: number, fields: fields, text: line)) }
        }
        return result
    }

    /// The line shortened for an error message.
    static func quoted(_ line: Line) -> String {
        let text = line.text.count > 80 ? line.text.prefix(77) + "..." : line.text
        return "'\(text)'"
    }

    /// A non-negative integer field, or nil.
    static func integer(_ field: Substring) -> Int? {
        guard !field.isEmpty, field.allSatisfy(\.isASCII), field.allSatisfy(\.isNumber) else { return nil }
        return Int(field)
    }
}
