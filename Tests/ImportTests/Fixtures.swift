import CJPEG
import CMatio
import CPNG
import Foundation
import XCTest
@testable import DatasetImport

/// libpng's simplified-API formats (its composite macros do not import into Swift).
enum PNGFormat {
    static let grey = UInt32(0)
    static let greyAlpha = UInt32(PNG_FORMAT_FLAG_ALPHA)
    static let rgb = UInt32(PNG_FORMAT_FLAG_COLOR)
    static let rgba = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
    static let paletteRGB = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP)
}

/// Writers of the files the importers read, through the same C libraries: JPEG in three
/// colour spaces, PNG in several colour types and bit depths, and a Cars196-style .mat.
enum Fixtures {
    /// A fresh temporary directory, removed when the test ends.
    static func directory(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("import-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Writes `text` to `root/path`, creating folders.
    static func write(_ text: String, to path: String, in root: URL) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    /// Writes `data` to `root/path`, creating folders.
    static func write(_ data: Data, to path: String, in root: URL) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    /// A w × h RGB picture of one colour per pixel from `colour(x, y)`.
    static func pixels(width: Int, height: Int, components: Int = 3, _ colour: (Int, Int) -> [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(width * height * components)
        for y in 0..<height { for x in 0..<width { let c = colour(x, y); precondition(c.count == components); out += c } }
        return out
    }

    /// JPEG bytes of `pixels` with 1 (grey), 3 (RGB) or 4 (CMYK, Adobe's inverted ink) components,
    /// at quality 100 without chroma subsampling.
    static func jpeg(_ pixels: [UInt8], width: Int, height: Int, components: Int) -> Data {
        var buffer: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = xbm_jpeg_encode(pixels, Int32(width), Int32(height), Int32(components), 100, &buffer, &size, &message, message.count)
        precondition(status == 0 && buffer != nil, "JPEG encoding failed: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        defer { free(buffer) }
        return Data(bytes: buffer!, count: Int(size))
    }

    /// PNG bytes through libpng's simplified writer in a `PNGFormat`; a palette format takes
    /// an index per pixel into `colormap` (entries of 3 bytes).
    static func png(_ pixels: [UInt8], width: Int, height: Int, format: UInt32, colormap: [UInt8] = []) -> Data {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        image.width = png_uint_32(width)
        image.height = png_uint_32(height)
        image.format = format
        let entryChannels = Int(format & 3) + 1
        let isMapped = (format & UInt32(PNG_FORMAT_FLAG_COLORMAP)) != 0
        if isMapped { image.colormap_entries = png_uint_32(colormap.count / entryChannels) }
        let stride = png_int_32(width * (isMapped ? 1 : entryChannels))
        var size = 0
        let written: [UInt8] = pixels.withUnsafeBytes { source in
            colormap.withUnsafeBytes { map in
                let colours = isMapped ? map.baseAddress : nil
                precondition(png_image_write_to_memory(&image, nil, &size, 0, source.baseAddress, stride, colours) != 0, "PNG size failed")
                var out = [UInt8](repeating: 0, count: size)
                precondition(out.withUnsafeMutableBytes {
                    png_image_write_to_memory(&image, $0.baseAddress, &size, 0, source.baseAddress, stride, colours)
                } != 0, "PNG writing failed")
                return Array(out.prefix(size))
            }
        }
        return Data(written)
    }

    /// A 16-bit RGB PNG without gamma information, written with libpng's low-level API:
    /// `samples` are 3 per pixel, 0...65535.
    static func png16(_ samples: [UInt16], width: Int, height: Int, in directory: URL, name: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        guard let file = fopen(url.path, "wb") else { throw CocoaError(.fileWriteUnknown) }
        defer { fclose(file) }
        var png = PNG_LIBPNG_VER_STRING.withCString { png_create_write_struct($0, nil, nil, nil) }
        var info = png_create_info_struct(png)
        defer { png_destroy_write_struct(&png, &info) }
        png_init_io(png, file)
        png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 16, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT)
        png_write_info(png, info)
        for y in 0..<height {
            var row = [UInt8]()
            for v in samples[(y * width * 3)..<((y + 1) * width * 3)] { row += [UInt8(v >> 8), UInt8(v & 0xFF)] }  // big endian
            png_write_row(png, row)
        }
        png_write_end(png, nil)
        return url
    }

    /// A Cars196-style `cars_annos.mat`: `annotations`, a 1 × n struct array with fields
    /// relative_im_path (char), bbox_x1, bbox_y1, bbox_x2, bbox_y2 (uint16), class and test (uint8).
    static func carsAnnotations(_ records: [(path: String, classNumber: UInt8, test: UInt8)], to url: URL) {
        let mat = Mat_CreateVer(url.path, nil, MAT_FT_MAT5)!
        defer { Mat_Close(mat) }
        let names = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
        var dims: [Int] = [1, records.count]
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var fieldPointers = cNames.map { UnsafePointer<CChar>($0) }
        let annotations = Mat_VarCreateStruct("annotations", 2, &dims, &fieldPointers, UInt32(names.count))!
        defer { Mat_VarFree(annotations) }
        for (i, record) in records.enumerated() {
            var pathBytes = Array(record.path.utf8)
            var pathDims: [Int] = [1, pathBytes.count]
            let path = Mat_VarCreate(nil, MAT_C_CHAR, MAT_T_UINT8, 2, &pathDims, &pathBytes, 0)
            Mat_VarSetStructFieldByName(annotations, "relative_im_path", i, path)
            for (name, value) in [("bbox_x1", UInt16(1)), ("bbox_y1", 2), ("bbox_x2", 30), ("bbox_y2", 40)] {
                var v = value
                var one: [Int] = [1, 1]
                Mat_VarSetStructFieldByName(annotations, name, i, Mat_VarCreate(nil, MAT_C_UINT16, MAT_T_UINT16, 2, &one, &v, 0))
            }
            for (name, value) in [("class", record.classNumber), ("test", record.test)] {
                var v = value
                var one: [Int] = [1, 1]
                Mat_VarSetStructFieldByName(annotations, name, i, Mat_VarCreate(nil, MAT_C_UINT8, MAT_T_UINT8, 2, &one, &v, 0))
            }
        }
        precondition(Mat_VarWrite(mat, annotations, MAT_COMPRESSION_NONE) == 0, "writing the .mat failed")
    }
}
