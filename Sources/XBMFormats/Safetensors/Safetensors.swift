import Foundation

/// The safetensors file format (Hugging Face; what `safetensors.torch.load_file` reads):
///
///     [8 bytes: N, little-endian u64] [N bytes: JSON header] [tensor bytes]
///
/// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} with
/// offsets relative to the first tensor byte, plus an optional "__metadata__" object of string
/// values. Tensors are little-endian and C-contiguous; the header is padded with spaces so the
/// data starts on an 8-byte boundary.
public struct SafetensorsFile {
    public enum DType: String, Sendable {
        case float32 = "F32", int64 = "I64"
    }

    public struct Tensor {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let bytes: [UInt8]
    }

    public private(set) var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        precondition(floats.count == shape.reduce(1, *), "tensor \(name): \(floats.count) values for shape \(shape)")
        tensors.append(Tensor(name: name, dtype: .float32, shape: shape,
                              bytes: floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }))
    }

    public mutating func add(_ name: String, shape: [Int], integers: [Int64]) {
        precondition(integers.count == shape.reduce(1, *), "tensor \(name): \(integers.count) values for shape \(shape)")
        tensors.append(Tensor(name: name, dtype: .int64, shape: shape,
                              bytes: integers.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }))
    }

    /// The file's bytes.
    public func encoded() throws -> [UInt8] {
        var header: [String: Any] = [:]
        var offset = 0
        for tensor in tensors {
            header[tensor.name] = ["dtype": tensor.dtype.rawValue, "shape": tensor.shape,
                                   "data_offsets": [offset, offset + tensor.bytes.count]]
            offset += tensor.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        var file = withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json
        file.reserveCapacity(file.count + offset)
        for tensor in tensors { file += tensor.bytes }
        return file
    }

    public func write(to url: URL) throws {
        do { try Data(try encoded()).write(to: url, options: .atomic) } catch {
            throw ExportError("cannot write \(url.path): \(error.localizedDescription)")
        }
    }
}

/// Why a model could not be exported; one line.
public struct ExportError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
