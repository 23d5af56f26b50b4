import CFreeType
import Foundation

// The only file that sees FreeType (Docs/architecture.md). A renderer owns one FT_Library and the faces it
// opened; FreeType objects are not thread safe, so each thread makes its own renderer.

/// Renders characters of a few `HanziFace`s at 64 px and crops them to their ink.
public final class HanziRenderer {
    public static let pixelSize = 64
    public let faces: [HanziFace]
    private var library: FT_Library?
    private var handles: [FT_Face?] = []

    /// Opens `faces` under `fontDirectory`: the file at `face.file` (or, when absent, a file of
    /// the same name anywhere below `fontDirectory`), then the face inside it whose FreeType
    /// family and style names equal `face.family` and `face.style`.
    public init(faces: [HanziFace], fontDirectory: URL = HanziFace.defaultFontDirectory) throws {
        self.faces = faces
        let status = FT_Init_FreeType(&library)
        guard status == 0 else { throw HanziError.freeType(call: "FT_Init_FreeType", code: status, detail: "library") }
        for face in faces { handles.append(try Self.open(face, library: library, fontDirectory: fontDirectory)) }
    }

    deinit {
        for handle in handles { FT_Done_Face(handle) }
        FT_Done_FreeType(library)
    }

    /// Where `face`'s file is, or nil.
    public static func locate(_ face: HanziFace, fontDirectory: URL = HanziFace.defaultFontDirectory) -> URL? {
        let expected = fontDirectory.appendingPathComponent(face.file)
        if FileManager.default.fileExists(atPath: expected.path) { return expected }
        let fileName = (face.file as NSString).lastPathComponent
        guard let walker = FileManager.default.enumerator(atPath: fontDirectory.path) else { return nil }
        while let relative = walker.nextObject() as? String {
            if (relative as NSString).lastPathComponent == fileName { return fontDirectory.appendingPathComponent(relative) }
        }
        return nil
    }

    private static func open(_ face: HanziFace, library: FT_Library?, fontDirectory: URL) throws -> FT_Face? {
        guard let url = locate(face, fontDirectory: fontDirectory) else {
            throw HanziError.missingFont(face: face.name, path: fontDirectory.appendingPathComponent(face.file).path, package: face.package)
        }
        var probe: FT_Face?
        var status = FT_New_Face(library, url.path, -1, &probe)
        guard status == 0, let probe else { throw HanziError.freeType(call: "FT_New_Face", code: status, detail: url.path) }
        let count = probe.pointee.num_faces
        FT_Done_Face(probe)
        var found: [String] = []
        for index in 0..<count {
            var handle: FT_Face?
            status = FT_New_Face(library, url.path, index, &handle)
            guard status == 0, let handle else { throw HanziError.freeType(call: "FT_New_Face", code: status, detail: "\(url.path) face \(index)") }
            let family = handle.pointee.family_name.map { String(cString: $0) } ?? ""
            let style = handle.pointee.style_name.map { String(cString: $0) } ?? ""
            if family == face.family && style == face.style {
                status = FT_Set_Pixel_Sizes(handle, 0, FT_UInt(pixelSize))
                guard status == 0 else { throw HanziError.freeType(call: "FT_Set_Pixel_Sizes", code: status, detail: face.name) }
                return handle
            }
            found.append("\(family) \(style)")
            FT_Done_Face(handle)
        }
        throw HanziError.faceNotInFile(face: face.name, path: url.path, found: found)
    }

    /// The coverage of `character` in face `faceIndex` at 64 px, cropped to its ink (a glyph
    /// without ink, such as a space, gives a 1×1 empty bitmap).
    public func glyph(_ character: Unicode.Scalar, faceIndex: Int) throws -> GlyphBitmap {
        precondition(faceIndex >= 0 && faceIndex < handles.count, "face index \(faceIndex) outside 0..<\(handles.count)")
        let handle = handles[faceIndex]
        let glyphIndex = FT_Get_Char_Index(handle, FT_ULong(character.value))
        guard glyphIndex != 0 else { throw HanziError.missingGlyph(face: faces[faceIndex].name, character: String(character)) }
        // No hinting: the image is distorted afterwards, and unhinted outlines keep each face's shapes.
        let status = FT_Load_Glyph(handle, glyphIndex, Int32(FT_LOAD_NO_HINTING | FT_LOAD_RENDER))
        guard status == 0 else { throw HanziError.freeType(call: "FT_Load_Glyph", code: status, detail: "\(faces[faceIndex].name) \(character)") }
        let bitmap = handle!.pointee.glyph.pointee.bitmap
        let rows = Int(bitmap.rows), width = Int(bitmap.width), pitch = Int(bitmap.pitch)
        guard rows > 0, width > 0, let buffer = bitmap.buffer, bitmap.pixel_mode == UInt8(FT_PIXEL_MODE_GRAY.rawValue) else {
            return GlyphBitmap(width: 1, height: 1, pixels: [0])
        }
        func pixel(_ x: Int, _ y: Int) -> UInt8 { buffer[y * pitch + x] }
        var top = rows, bottom = -1, left = width, right = -1
        for y in 0..<rows {
            for x in 0..<width where pixel(x, y) != 0 {
                top = min(top, y); bottom = max(bottom, y); left = min(left, x); right = max(right, x)
            }
        }
        guard bottom >= 0 else { return GlyphBitmap(width: 1, height: 1, pixels: [0]) }
        let w = right - left + 1, h = bottom - top + 1
        var pixels = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h { for x in 0..<w { pixels[y * w + x] = pixel(left + x, top + y) } }
        return GlyphBitmap(width: w, height: h, pixels: pixels)
    }
}
