import Foundation
import XBMKernels

// Photo augmentation (Docs/data.md): torchvision's RandomResizedCrop with its default scale and
// ratio ranges, resized back to the dataset's H×W by bilinear interpolation, then a horizontal
// flip with probability ½.
//
// Seeding: the crop of row r of the global batch at iteration t comes from its own generator,
// RandomSource derived from (seed, t·B + r). A rank draws only the rows it embeds, and the
// global batch's rows are the same on every rank count, so N ranks see the images one rank
// sees; a resumed run needs no state beyond the iteration. (The glyph shifts come from the
// sampler's one generator instead; they are drawn before this existed and stay as they are.)

/// Where to cut one image and whether to mirror it: rows top..<top+height, columns
/// left..<left+width of the source, in source pixels.
public struct PhotoCrop: Equatable, Sendable {
    public var top: Int, left: Int, height: Int, width: Int
    public var flip: Bool

    public init(top: Int, left: Int, height: Int, width: Int, flip: Bool) {
        (self.top, self.left, self.height, self.width, self.flip) = (top, left, height, width, flip)
    }

    /// The whole image, not mirrored.
    public static func whole(height: Int, width: Int) -> PhotoCrop {
        PhotoCrop(top: 0, left: 0, height: height, width: width, flip: false)
    }
}

public enum PhotoAugmentation {
    /// Share of the image area a crop covers (torchvision's default).
    public static let scale = 0.08...1.0
    /// Width / height of a crop before resizing (torchvision's default), drawn log-uniformly.
    public static let ratio = (3.0 / 4)...(4.0 / 3)

    /// The generator of global sample `sample` = t·B + r of a run seeded `seed`; a stream of
    /// its own, apart from the other uses of the seed (initialisation, sampler, drift probe).
    public static func random(seed: UInt64, sample: UInt64) -> RandomSource {
        var purpose = RandomSource.derived(seed: seed, stream: 0x5048_4F54_4F)  // "PHOTO"
        return RandomSource.derived(seed: purpose.next(), stream: sample)
    }

    /// The crops of rows `rows` of the global batch of iteration `iteration` (`batchSize` B),
    /// written to `crops[0 ..< rows.count]`.
    public static func drawCrops(into crops: UnsafeMutableBufferPointer<PhotoCrop>, seed: UInt64, iteration: Int,
                                 batchSize: Int, rows: Range<Int>, height: Int, width: Int) {
        precondition(crops.count >= rows.count, "drawCrops: \(crops.count) slots for \(rows.count) rows")
        for (slot, row) in rows.enumerated() {
            var generator = random(seed: seed, sample: UInt64(iteration) * UInt64(batchSize) + UInt64(row))
            crops[slot] = drawCrop(height: height, width: width, random: &generator)
        }
    }

    /// torchvision's `RandomResizedCrop.get_params` and a flip: up to ten tries of an area
    /// share a ~ U(scale) and an aspect ρ = exp(U(log 3/4, log 4/3)), giving
    /// w = round(√(a·H·W·ρ)), h = round(√(a·H·W/ρ)) (round half to even, as Python's round);
    /// the first that fits is placed uniformly. If none fits, `centralCrop`. Then flip when
    /// U(0, 1) < ½.
    public static func drawCrop(height: Int, width: Int, random: inout RandomSource) -> PhotoCrop {
        let area = Double(height * width)
        let logRatio = (log(ratio.lowerBound), log(ratio.upperBound))
        var crop: PhotoCrop?
        for _ in 0..<10 {
            let target = area * uniform(scale.lowerBound, scale.upperBound, &random)
            let aspect = exp(uniform(logRatio.0, logRatio.1, &random))
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = random.nextInt(below: height - h + 1), left = random.nextInt(below: width - w + 1)
                crop = PhotoCrop(top: top, left: left, height: h, width: w, flip: false)
                break
            }
        }
        var result = crop ?? centralCrop(height: height, width: width)
        result.flip = random.nextUniform() < 0.5
        return result
    }

    /// torchvision's fallback: the largest centred crop whose aspect lies in `ratio`
    /// (the whole image when its own aspect does).
    public static func centralCrop(height: Int, width: Int) -> PhotoCrop {
        let aspect = Double(width) / Double(height)
        var h = height, w = width
        if aspect < ratio.lowerBound {
            h = Int((Double(w) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if aspect > ratio.upperBound {
            w = Int((Double(h) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        return PhotoCrop(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w, flip: false)
    }

    private static func uniform(_ low: Double, _ high: Double, _ random: inout RandomSource) -> Double {
        low + (high - low) * random.nextUniformDouble()
    }

    /// One output coordinate's two source coordinates (crop-relative) and the weight of the
    /// second, as PyTorch's bilinear interpolation with align_corners False:
    /// s = max((o + ½)·in/out − ½, 0), s0 = ⌊s⌋, s1 = min(s0 + 1, in − 1), λ = s − s0.
    @inline(__always)
    static func sourceCoordinate(_ o: Int, input: Int, output: Int) -> (Int, Int, Float) {
        let s = max((Double(o) + 0.5) * Double(input) / Double(output) - 0.5, 0)
        let s0 = min(Int(s), input - 1)
        return (s0, min(s0 + 1, input - 1), Float(s - Double(s0)))
    }

    /// Resizes the crop of `image` (C, H, W) uint8 to (C, H, W) floats in [0, 1]:
    ///   out[c, y, x'] = ((1−λy)((1−λx)·p00 + λx·p01) + λy((1−λx)·p10 + λx·p11)) / 255
    /// with the source rows and columns of `sourceCoordinate` offset by the crop's top and left,
    /// and x' = W − 1 − x when the crop flips (x' = x otherwise).
    static func resample(_ crop: PhotoCrop, image: UnsafePointer<UInt8>, channels: Int, height: Int, width: Int,
                         into output: UnsafeMutablePointer<Float>) {
        precondition(crop.top >= 0 && crop.left >= 0 && crop.height >= 1 && crop.width >= 1
                     && crop.top + crop.height <= height && crop.left + crop.width <= width,
                     "crop \(crop) outside a \(height)×\(width) image")
        for c in 0..<channels {
            let plane = image + c * height * width, outPlane = output + c * height * width
            for y in 0..<height {
                let (y0, y1, ly) = sourceCoordinate(y, input: crop.height, output: height)
                let row0 = plane + (crop.top + y0) * width + crop.left, row1 = plane + (crop.top + y1) * width + crop.left
                let outRow = outPlane + y * width
                for x in 0..<width {
                    let (x0, x1, lx) = sourceCoordinate(x, input: crop.width, output: width)
                    let top = (1 - lx) * Float(row0[x0]) + lx * Float(row0[x1])
                    let bottom = (1 - lx) * Float(row1[x0]) + lx * Float(row1[x1])
                    outRow[crop.flip ? width - 1 - x : x] = ((1 - ly) * top + ly * bottom) / 255
                }
            }
        }
    }
}

extension Dataset {
    /// Writes images `indices` (n) as floats into `output` (n, C, H, W), image i cut and
    /// resized by `crops[i]` (`PhotoAugmentation.resample`). Allocates nothing.
    public func fill(indices: UnsafeBufferPointer<Int32>, crops: UnsafeBufferPointer<PhotoCrop>,
                     into output: UnsafeMutablePointer<Float>) {
        guard case let .images(channels, height, width) = kind else {
            preconditionFailure("fill(crops:): \(name) holds features; photo augmentation needs images")
        }
        precondition(crops.count >= indices.count, "fill: \(crops.count) crops for \(indices.count) samples")
        let source = rawSamples.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for (row, index) in indices.enumerated() {
            precondition(index >= 0 && Int(index) < count, "fill: index \(index) outside 0..<\(count)")
            PhotoAugmentation.resample(crops[row], image: source + Int(index) * sampleSize, channels: channels,
                                       height: height, width: width, into: output + row * sampleSize)
        }
    }
}
