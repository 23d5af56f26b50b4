import Foundation

/// One of the 27 font faces of the hanzi benchmark (Docs/data.md), located by file and by the
/// family and style names FreeType reports (which select the face inside a .ttc collection).
public struct HanziFace: Sendable, Equatable {
    /// Name as written in Docs/data.md.
    public let name: String
    /// Debian package that installs it.
    public let package: String
    /// Path under the font directory (default /usr/share/fonts).
    public let file: String
    public let family: String
    public let style: String

    public init(name: String, package: String, file: String, family: String, style: String) {
        self.name = name
        self.package = package
        self.file = file
        self.family = family
        self.style = style
    }

    public static let defaultFontDirectory = URL(fileURLWithPath: "/usr/share/fonts")

    /// The 27 faces, in label-independent but fixed order (the order of the samples of a class).
    public static let all: [HanziFace] = {
        let noto = "opentype/noto/"
        var faces: [HanziFace] = []
        for style in ["Thin", "Light", "DemiLight", "Regular", "Medium", "Bold", "Black"] {
            faces.append(HanziFace(name: "Noto Sans CJK SC \(style)", package: style == "Regular" || style == "Bold" ? "fonts-noto-cjk" : "fonts-noto-cjk-extra",
                                   file: noto + "NotoSansCJK-\(style).ttc", family: "Noto Sans CJK SC", style: style))
        }
        for style in ["ExtraLight", "Light", "Regular", "Medium", "SemiBold", "Bold", "Black"] {
            faces.append(HanziFace(name: "Noto Serif CJK SC \(style)", package: style == "Regular" || style == "Bold" ? "fonts-noto-cjk" : "fonts-noto-cjk-extra",
                                   file: noto + "NotoSerifCJK-\(style).ttc", family: "Noto Serif CJK SC", style: style))
        }
        let truetype = "truetype/"
        faces += [
            HanziFace(name: "AR PL SungtiL GB", package: "fonts-arphic-gbsn00lp", file: truetype + "arphic-gbsn00lp/gbsn00lp.ttf", family: "AR PL SungtiL GB", style: "Regular"),
            HanziFace(name: "AR PL KaitiM GB", package: "fonts-arphic-gkai00mp", file: truetype + "arphic-gkai00mp/gkai00mp.ttf", family: "AR PL KaitiM GB", style: "Regular"),
            HanziFace(name: "AR PL UKai CN", package: "fonts-arphic-ukai", file: truetype + "arphic/ukai.ttc", family: "AR PL UKai CN", style: "Book"),
            HanziFace(name: "AR PL UMing CN", package: "fonts-arphic-uming", file: truetype + "arphic/uming.ttc", family: "AR PL UMing CN", style: "Light"),
            HanziFace(name: "BabelStone Han", package: "fonts-babelstone-han", file: truetype + "babelstone/BabelStoneHan.ttf", family: "BabelStone Han", style: "Regular"),
            HanziFace(name: "Droid Sans Fallback", package: "fonts-droid-fallback", file: truetype + "droid/DroidSansFallbackFull.ttf", family: "Droid Sans Fallback", style: "Regular"),
            HanziFace(name: "HanaMinA", package: "fonts-hanazono", file: truetype + "hanazono/HanaMinA.ttf", family: "HanaMinA", style: "Regular"),
            HanziFace(name: "LXGW WenKai Light", package: "fonts-lxgw-wenkai", file: truetype + "lxgw-wenkai/LXGWWenKai-Light.ttf", family: "LXGW WenKai", style: "Light"),
            HanziFace(name: "LXGW WenKai Regular", package: "fonts-lxgw-wenkai", file: truetype + "lxgw-wenkai/LXGWWenKai-Regular.ttf", family: "LXGW WenKai", style: "Regular"),
            HanziFace(name: "LXGW WenKai Bold", package: "fonts-lxgw-wenkai", file: truetype + "lxgw-wenkai/LXGWWenKai-Bold.ttf", family: "LXGW WenKai", style: "Bold"),
            HanziFace(name: "SetoFont", package: "fonts-seto", file: truetype + "seto/setofont.ttf", family: "SetoFont", style: "Regular"),
            HanziFace(name: "WenQuanYi Micro Hei", package: "fonts-wqy-microhei", file: truetype + "wqy/wqy-microhei.ttc", family: "WenQuanYi Micro Hei", style: "Regular"),
            HanziFace(name: "WenQuanYi Zen Hei", package: "fonts-wqy-zenhei", file: truetype + "wqy/wqy-zenhei.ttc", family: "WenQuanYi Zen Hei", style: "Regular"),
        ]
        return faces
    }()

    public static func named(_ name: String) -> HanziFace? { all.first { $0.name == name } }

    /// The Debian packages that install the 27 faces, each once, in face order.
    public static var packages: [String] {
        var seen = Set<String>()
        return all.map(\.package).filter { seen.insert($0).inserted }
    }

    /// Whether this face's file is present under `fontDirectory`.
    public func isInstalled(fontDirectory: URL = HanziFace.defaultFontDirectory) -> Bool {
        FileManager.default.fileExists(atPath: fontDirectory.appendingPathComponent(file).path)
    }
}

/// GB2312's hanzi in code order, decoded by Foundation's GB 18030 converter (a superset of
/// GB2312) rather than a table: level 1 is 3,755 common characters ordered by reading (rows
/// 16–55, bytes 0xB0A1 … 0xD7F9), level 2 is 3,008 rarer ones ordered by radical and stroke
/// count (rows 56–87, 0xD8A1 … 0xF7FE), so neighbouring level-2 classes often share a radical.
public enum GB2312 {
    public static let levelOneCount = 3755
    public static let levelTwoCount = 3008

    public static func levelOneCharacters() throws -> [Unicode.Scalar] {
        try decode(rows: 0xB0...0xD7, lastCell: 0xF9, expected: (levelOneCount, "啊", "座"))
    }

    public static func levelTwoCharacters() throws -> [Unicode.Scalar] {
        try decode(rows: 0xD8...0xF7, lastCell: 0xFE, expected: (levelTwoCount, "亍", "齄"))
    }

    /// Every cell 0xA1…0xFE of `rows`, the last row ending at `lastCell`.
    private static func decode(rows: ClosedRange<Int>, lastCell: Int,
                               expected: (count: Int, first: Unicode.Scalar, last: Unicode.Scalar)) throws -> [Unicode.Scalar] {
        var bytes: [UInt8] = []
        for row in rows {
            for cell in 0xA1...0xFE where !(row == rows.upperBound && cell > lastCell) {
                bytes += [UInt8(row), UInt8(cell)]
            }
        }
        // kCFStringEncodingGB_18030_2000 (0x0632) as an NSStringEncoding.
        let gb18030 = String.Encoding(rawValue: 0x8000_0632)
        let range = String(format: "0x%02X%02X…0x%02X%02X", rows.lowerBound, 0xA1, rows.upperBound, lastCell)
        guard let text = String(data: Data(bytes), encoding: gb18030) else {
            throw HanziError.encoding("Foundation could not decode GB2312 bytes \(range) as GB 18030")
        }
        let scalars = Array(text.unicodeScalars)
        guard scalars.count == expected.count, scalars.first == expected.first, scalars.last == expected.last else {
            throw HanziError.encoding("decoding GB2312 \(range) gave \(scalars.count) characters from \(scalars.first.map(String.init) ?? "?") to \(scalars.last.map(String.init) ?? "?"); expected \(expected.count) from \(expected.first) to \(expected.last)")
        }
        return scalars
    }
}

/// Which characters `data hanzi --charset` renders. Each set is split by class: the first
/// ⌈n/2⌉ characters in code order train, the rest test.
public enum HanziCharset: String, CaseIterable, Sendable {
    /// GB2312 level 1: 3,755 classes (the default benchmark).
    case level1
    /// GB2312 level 2: 3,008 rarer, radical-ordered classes — a second glyph set that shares
    /// no class with level 1, for checking that a recipe tuned on level 1 carries over.
    case level2
    /// Both levels: 6,763 classes.
    case all

    public func characters() throws -> [Unicode.Scalar] {
        switch self {
        case .level1: try GB2312.levelOneCharacters()
        case .level2: try GB2312.levelTwoCharacters()
        case .all: try GB2312.levelOneCharacters() + GB2312.levelTwoCharacters()
        }
    }

    /// The dataset's name in meta.json.
    public var datasetName: String { self == .level1 ? "hanzi" : "hanzi-\(rawValue)" }
}

/// Why the hanzi benchmark could not be built; one line each.
public enum HanziError: Error, CustomStringConvertible {
    case encoding(String)
    case missingFont(face: String, path: String, package: String)
    case faceNotInFile(face: String, path: String, found: [String])
    case freeType(call: String, code: Int32, detail: String)
    case missingGlyph(face: String, character: String)
    case outputInUse(directory: String, file: String)
    case facesPerClass(requested: Int, faces: Int)

    public var description: String {
        switch self {
        case let .encoding(detail): detail
        case let .missingFont(face, path, package):
            "font face '\(face)': file \(path) not found; install the Debian package \(package)"
        case let .faceNotInFile(face, path, found):
            "font face '\(face)': \(path) holds \(found.joined(separator: ", ")), not this family and style"
        case let .freeType(call, code, detail):
            "FreeType \(call) failed with error \(code) (\(detail))"
        case let .facesPerClass(requested, faces):
            "--faces-per-class \(requested): expected 1 to \(faces), the faces each character is rendered in"
        case let .outputInUse(directory, file):
            "\(directory): holds \(file), not only dataset files; expected a new, empty or dataset-only --out directory"
        case let .missingGlyph(face, character):
            "font face '\(face)' has no glyph for \(character) (U+\(String(character.unicodeScalars.first!.value, radix: 16, uppercase: true)))"
        }
    }
}
