import CPNG
import Foundation

/// PNG through libpng's simplified API (`png_image`), which converts any colour type and
/// bit depth to the requested 8-bit RGB: palette and grey are expanded, 16-bit samples are
/// reduced to 8 bits (v/257 rounded; a 16-bit file without gamma information is taken as
/// sRGB like an 8-bit one, not as libpng's default linear), and alpha is composited onto
/// `background` (white: the backdrop of the product photographs these datasets hold).
enum PNGDecoder {
    static let background = png_color(red: 255, green: 255, blue: 255)

    static func decode(_ data: Data) throws -> RGBImage {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        func failure() -> ImageDecoder.Failure {
            let message = withUnsafeBytes(of: image.message) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return ImageDecoder.Failure("PNG: " + message)
        }
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw failure() }
        image.flags |= png_uint_32(PNG_IMAGE_FLAG_16BIT_sRGB)
        image.format = png_uint_32(PNG_FORMAT_RGB)
        let (w, h) = (Int(image.width), Int(image.height))
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        var backdrop = background
        let finished = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, &backdrop, $0.baseAddress, png_int_32(w * 3), nil) }
        guard finished != 0 else { throw failure() }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}
