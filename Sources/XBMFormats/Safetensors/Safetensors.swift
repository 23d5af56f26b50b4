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

        /// The values of a float32 tensor (little endian in the file), nil for another dtype.
        public var floats: [Float]? {
            guard dtype == .float32 else { return nil }
            return stride(from: 0, to: bytes.count, by: 4).map { i in
                Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
            }
        }
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

    /// The file at `url`; every offset and shape is checked, and errors name the file.
    public static func read(from url: URL) throws -> SafetensorsFile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ExportError("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode([UInt8](data), path: url.path)
    }

    /// Parses a file's bytes (`path` names it in errors). Float32 and int64 tensors only, as
    /// `xbm-dist export` and PyTorch's float32 state dicts hold.
    public static func decode(_ bytes: [UInt8], path: String) throws -> SafetensorsFile {
        func fail(_ detail: String) -> ExportError {
            ExportError("\(path): not a safetensors file xbm-dist can read: \(detail)")
        }
        guard bytes.count >= 8 else { throw fail("\(bytes.count) bytes, shorter than the 8-byte header length") }
        let headerLength = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw fail("the header claims \(headerLength) bytes, the file has \(bytes.count - 8) after the length")
        }
        let dataStart = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])) as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        var file = SafetensorsFile()
        var tensors: [(offset: Int, tensor: Tensor)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let metadata = value as? [String: String] else { throw fail("__metadata__ is not an object of strings") }
                file.metadata = metadata
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor \(printable(name)) lacks dtype, shape or data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("tensor \(printable(name)) is \(printable(dtypeName)); expected F32 (or I64); convert with tensor.float()")
            }
            let elementSize = dtype == .float32 ? 4 : 8
            var count: Int? = shape.allSatisfy({ $0 >= 0 }) ? 1 : nil
            for extent in shape {
                guard let c = count else { break }
                let (product, overflow) = c.multipliedReportingOverflow(by: extent)
                count = overflow ? nil : product
            }
            guard let count, count <= (bytes.count - dataStart) / elementSize,
                  offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= bytes.count - dataStart,
                  offsets[1] - offsets[0] == count * elementSize else {
                throw fail("tensor \(printable(name)): shape \(shape) and data_offsets \(offsets) do not fit the \(bytes.count - dataStart) data bytes")
            }
            let bytesOfTensor = Array(bytes[(dataStart + offsets[0])..<(dataStart + offsets[1])])
            tensors.append((offsets[0], Tensor(name: name, dtype: dtype, shape: shape, bytes: bytesOfTensor)))
        }
        file.tensors = tensors.sorted { ($0.offset, $0.tensor.name) < ($1.offset, $1.tensor.name) }.map(\.tensor)
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
