import CJPEG
import Foundation

/// JPEG through libjpeg-turbo (`xbm_jpeg_decode_rgb` in Sources/CJPEG/shim.h, which turns
/// libjpeg's fatal errors into a message): RGB and grey pictures as libjpeg converts them,
/// CMYK/YCCK ones by the shim's ink formula.
enum JPEGDecoder {
    static func decode(_ data: Data) throws -> RGBImage {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { bytes in
            xbm_jpeg_decode_rgb(bytes.bindMemory(to: UInt8.self).baseAddress, UInt(bytes.count),
                                &pixels, &width, &height, &message, message.count)
        }
        guard status == 0, let pixels else {
            throw ImageDecoder.Failure("JPEG: " + String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { free(pixels) }
        let (w, h) = (Int(width), Int(height))
        guard w > 0, h > 0 else { throw ImageDecoder.Failure("JPEG: empty picture (\(w)×\(h))") }
        return RGBImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: pixels, count: w * h * 3)))
    }
}
