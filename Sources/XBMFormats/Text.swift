// Text helpers of every layer that reads files or prints numbers.

/// Text taken from an input file, made fit to quote in a one-line error message: line breaks,
/// control and invisible format characters become escapes (`\n`, `\u{C}`) and text past `limit`
/// characters is cut with "…", so that no file can split the `error: …` line or bury it.
/// (Every parser of untrusted files quotes through this: .npy headers, configs, checkpoints.)
package func printable(_ text: some StringProtocol, limit: Int = 80) -> String {
    var result = ""
    for (index, character) in text.enumerated() {
        guard index < limit else { result += "…"; break }
        for scalar in character.unicodeScalars {
            switch (scalar, scalar.properties.generalCategory) {
            case ("\n", _): result += "\\n"
            case ("\r", _): result += "\\r"
            case ("\t", _): result += "\\t"
            case (_, .control), (_, .format), (_, .lineSeparator), (_, .paragraphSeparator), (_, .privateUse), (_, .unassigned):
                result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default:
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result
}

/// Fixed-point rendering without Foundation's locale-dependent formatting.
package func formatted(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled - Double(whole) * scale)
    var text = (negative && scaled > 0 ? "-" : "") + String(whole)
    if decimals > 0 {
        let digits = String(fraction)
        text += "." + String(repeating: "0", count: decimals - digits.count) + digits
    }
    return text
}

/// One line for a JSON decoding error: which key, what was expected.
package func describe(_ error: DecodingError) -> String {
    switch error {
    case let .typeMismatch(type, context), let .valueNotFound(type, context):
        return "key \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" should be \(type)"
    case let .dataCorrupted(context), let .keyNotFound(_, context):
        let key = context.codingPath.map(\.stringValue).joined(separator: ".")
        // The description may quote the file (IterationPoint's "got …").
        return (key.isEmpty ? "" : "key \"\(key)\": ") + printable(context.debugDescription, limit: 200)
    @unknown default:
        return printable("\(error)", limit: 200)
    }
}
