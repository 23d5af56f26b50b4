import Foundation

/// The three fields of a `.npy` header dict, parsed from (and formatted as) its Python literal.
struct NpyHeader: Equatable {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// Python literal with the keys in numpy's order, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }`.
    var literal: String {
        let dims: String
        switch shape.count {
        case 0: dims = "()"
        case 1: dims = "(\(shape[0]),)"
        default: dims = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        return "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(dims), }"
    }

    private enum Value { case string(String), bool(Bool), tuple([Int]) }

    /// Parses the dict literal; every deviation is a `badHeader` naming what was found.
    static func parse(_ text: String, file: String) throws -> NpyHeader {
        var scanner = Scanner(Array(text.unicodeScalars), file: file)
        var entries: [String: Value] = [:]
        scanner.skipSpace()
        try scanner.expect("{")
        while true {
            scanner.skipSpace()
            if scanner.peek == "}" { scanner.advance(); break }
            guard case let .string(key) = try scanner.value() else { throw scanner.fail("a quoted key") }
            scanner.skipSpace()
            try scanner.expect(":")
            scanner.skipSpace()
            guard entries[key] == nil else { throw NpyError.badHeader(file: file, detail: "key '\(printable(key))' appears twice") }
            entries[key] = try scanner.value()
            scanner.skipSpace()
            if scanner.peek == "," { scanner.advance(); continue }
            scanner.skipSpace()
            try scanner.expect("}")
            break
        }
        scanner.skipSpace()
        guard scanner.atEnd else { throw scanner.fail("end of header after '}'") }
        for key in entries.keys.sorted() where !["descr", "fortran_order", "shape"].contains(key) {
            throw NpyError.badHeader(file: file, detail: "unexpected key '\(printable(key))'")
        }
        guard case let .string(descr)? = entries["descr"] else {
            throw NpyError.badHeader(file: file, detail: "missing or non-string 'descr'")
        }
        guard case let .bool(fortran)? = entries["fortran_order"] else {
            throw NpyError.badHeader(file: file, detail: "missing or non-boolean 'fortran_order'")
        }
        guard case let .tuple(shape)? = entries["shape"] else {
            throw NpyError.badHeader(file: file, detail: "missing or non-tuple 'shape'")
        }
        return NpyHeader(descr: descr, fortranOrder: fortran, shape: shape)
    }

    private struct Scanner {
        let chars: [Unicode.Scalar]
        let file: String
        var position = 0

        init(_ chars: [Unicode.Scalar], file: String) { self.chars = chars; self.file = file }

        var atEnd: Bool { position >= chars.count }
        var peek: Unicode.Scalar? { atEnd ? nil : chars[position] }
        mutating func advance() { position += 1 }
        mutating func skipSpace() { while let c = peek, c == " " || c == "\n" || c == "\t" || c == "\r" { advance() } }

        func fail(_ expected: String) -> NpyError {
            let found = peek.map { "'\(printable(String($0)))'" } ?? "end of header"
            return .badHeader(file: file, detail: "expected \(expected) at character \(position), found \(found)")
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            guard peek == c else { throw fail("'\(c)'") }
            advance()
        }

        mutating func value() throws -> Value {
            switch peek {
            case "'", "\"":
                let quote = peek!
                advance()
                var s = String.UnicodeScalarView()
                while let c = peek, c != quote { s.append(c); advance() }
                try expect(quote)
                return .string(String(s))
            case "(":
                advance()
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if peek == ")" { advance(); break }
                    var digits = ""
                    while let c = peek, ("0"..."9").contains(c) { digits.unicodeScalars.append(c); advance() }
                    if let c = peek, c == "L" { advance() }  // Python 2 long suffix
                    guard let n = Int(digits) else { throw fail("a non-negative integer in 'shape'") }
                    dims.append(n)
                    skipSpace()
                    if peek == "," { advance(); continue }
                    try expect(")")
                    break
                }
                return .tuple(dims)
            default:
                for (word, flag) in [("True", true), ("False", false)] {
                    let w = Array(word.unicodeScalars)
                    if position + w.count <= chars.count, Array(chars[position..<(position + w.count)]) == w {
                        position += w.count
                        return .bool(flag)
                    }
                }
                throw fail("a string, tuple, True or False")
            }
        }
    }
}

/// Writing `.npy` files.
public enum Npy {
    /// The header bytes (magic through padding) for `dtype` and `shape`; `version` 1, 2 or 3
    /// (nil: 1.0 unless the header needs more than 65,535 bytes). The payload starts at a multiple of 64.
    public static func header(dtype: NpyDType, shape: [Int], version: Int? = nil) -> [UInt8] {
        let literal = Array(NpyHeader(descr: dtype.rawValue, fortranOrder: false, shape: shape).literal.utf8)
        func build(_ major: Int) -> [UInt8] {
            let lengthBytes = major == 1 ? 2 : 4
            let unpadded = 8 + lengthBytes + literal.count + 1
            let padding = (64 - unpadded % 64) % 64
            let headerLength = literal.count + padding + 1
            var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, UInt8(major), 0]
            for i in 0..<lengthBytes { out.append(UInt8(truncatingIfNeeded: headerLength >> (8 * i))) }
            out += literal
            out += [UInt8](repeating: 0x20, count: padding)
            out.append(0x0A)
            return out
        }
        let major = version ?? (literal.count + 75 > 65_535 ? 2 : 1)
        precondition([1, 2, 3].contains(major), ".npy version must be 1, 2 or 3, got \(major)")
        return build(major)
    }

    /// Writes `count * dtype.itemSize` raw bytes from `payload` as an array of `shape`.
    public static func write(to url: URL, dtype: NpyDType, shape: [Int], payload: UnsafeRawBufferPointer, version: Int? = nil) throws {
        let expected = shape.reduce(1, *) * dtype.itemSize
        precondition(payload.count == expected, "payload of \(payload.count) bytes for shape \(shape) of \(dtype.rawValue) (needs \(expected))")
        let head = header(dtype: dtype, shape: shape, version: version)
        guard let file = fopen(url.path, "wb") else {
            throw NpyError.unreadable(file: url.path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        let wroteHeader = head.withUnsafeBytes { fwrite($0.baseAddress!, 1, $0.count, file) }
        let wrotePayload = payload.count == 0 ? 0 : fwrite(payload.baseAddress!, 1, payload.count, file)
        guard wroteHeader == head.count, wrotePayload == payload.count, fflush(file) == 0 else {
            throw NpyError.unreadable(file: url.path, reason: "short write: " + String(cString: strerror(errno)))
        }
    }

    /// Writes `values` (C order) as an array of `shape`.
    public static func write<T: NpyElement>(_ values: [T], shape: [Int], to url: URL, version: Int? = nil) throws {
        try values.withUnsafeBytes { try write(to: url, dtype: T.npyDType, shape: shape, payload: $0, version: version) }
    }
}
