import Foundation
import FuzzSupport
import XBMFormats

/// One input is one `.npy` file image. `NpyArray.decode` runs the same parser as
/// `NpyArray.read(contentsOf:)`, which only adds the memory mapping. An accepted array must be
/// self-consistent and survive a round trip through the package's own writer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNpy(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Data(bytes: data, count: size)
    expectParsesOrRejects {
        let array = try NpyArray.decode(image, name: "fuzz.npy")
        require(array.bytes.count == array.count * array.dtype.itemSize,
                "payload of \(array.bytes.count) bytes for shape \(array.shape) of \(array.dtype)")
        let rewritten = Npy.header(dtype: array.dtype, shape: array.shape) + Array(array.bytes)
        let again = try NpyArray.decode(Data(rewritten), name: "fuzz-rewritten.npy")
        require(again.dtype == array.dtype && again.shape == array.shape && again.bytes.elementsEqual(array.bytes),
                "round trip changed the array (\(array.dtype) \(array.shape))")
    }
    return 0
}
