import Collectives
import Foundation
import XBMFormats
import XBMKernels
import XBMModel

/// Trained weights a new run starts from (`--init-from`, Docs/finetuning.md): the parameters
/// and batch-norm running statistics of a run directory, its `checkpoint.xbm`, or a
/// `.safetensors` state dict in the layout `xbm-dist export` writes (a network trained in
/// PyTorch with python/xbm_models.py and saved with `safetensors.torch.save_file` loads too).
///
/// Only the network's tensors are taken: the optimiser's moments, the schedule's position,
/// the memory and the sampler start afresh, as in any new run.
public struct InitialWeights: Sendable {
    /// A tensor in xbm-dist's layout (convolution weights (Co, 3, 3, Ci)).
    public struct Tensor: Sendable, Equatable {
        public var shape: [Int]
        public var values: [Float]
    }

    /// By xbm-dist's names (`ParameterLayout`): `conv1.weight`, `bn1.scale`, `bn1.runningMean`, `fc.weight`, …
    public let tensors: [String: Tensor]
    /// The file read, for messages.
    public let path: String
    /// FNV-1a of the file's bytes (`init-from-checksum` in config.json).
    public let checksum: UInt64

    public init(tensors: [String: Tensor], path: String, checksum: UInt64) {
        self.tensors = tensors
        self.path = path
        self.checksum = checksum
    }

    /// Rank 0 reads the file `path` names and broadcasts its bytes; every rank parses them, so
    /// every rank fails alike. A directory stands for its `checkpoint.xbm`.
    public static func load(_ path: String, comm: Communicator) throws -> InitialWeights {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let file = isDirectory.boolValue ? URL(fileURLWithPath: path).appendingPathComponent("checkpoint.xbm").path : path
        var bytes: [UInt8] = [], problem = ""
        if comm.rank == 0 {
            if let data = FileManager.default.contents(atPath: file) {
                bytes = [UInt8](data)
            } else if !exists {
                problem = "--init-from \(path): no such file or directory; pass a run directory, its checkpoint.xbm or a .safetensors file"
            } else {
                problem = "--init-from \(path): cannot read \(file)"
                    + (isDirectory.boolValue ? " (is it the directory of a run that saved a checkpoint?)" : "")
            }
        }
        let message = try comm.broadcast(bytes: Array(problem.utf8), root: 0)
        if !message.isEmpty { throw ConfigError(String(decoding: message, as: UTF8.self)) }
        return try decode(try comm.broadcast(bytes: bytes, root: 0), path: file)
    }

    /// The weights in a checkpoint archive's or a safetensors file's bytes (told apart by the
    /// archive's magic).
    public static func decode(_ bytes: [UInt8], path: String) throws -> InitialWeights {
        var hash = FNV1a64()
        bytes.withUnsafeBytes { hash.update($0) }
        if bytes.starts(with: CheckpointArchive.magic) {
            let checkpoint = try TrainingCheckpoint.decode(bytes, path: path)
            return InitialWeights(tensors: checkpoint.modelTensors, path: path, checksum: hash.value)
        }
        let file: SafetensorsFile
        do { file = try SafetensorsFile.decode(bytes, path: path) } catch {
            throw ConfigError("--init-from: \(error); expected a run directory, a checkpoint.xbm or a .safetensors state dict")
        }
        var tensors: [String: Tensor] = [:]
        for tensor in file.tensors where !tensor.name.hasSuffix(".num_batches_tracked") {
            guard let values = tensor.floats else {
                throw ConfigError("--init-from \(path): tensor \(printable(tensor.name)) is \(tensor.dtype.rawValue); expected F32")
            }
            let (name, shape, converted) = TorchExport.xbmTensor(name: tensor.name, shape: tensor.shape, values: values)
            tensors[name] = Tensor(shape: shape, values: converted)
        }
        return InitialWeights(tensors: tensors, path: path, checksum: hash.value)
    }

    /// Copies every tensor of `layout` into `buffer` (at its offset), except those named in
    /// `keeping`, which keep their values. A tensor the source lacks, or holds with another
    /// shape, is refused by name with both shapes.
    public func apply(to buffer: UnsafeMutablePointer<Float>, layout: ParameterLayout, keeping: Set<String> = []) throws {
        for entry in layout.entries where !keeping.contains(entry.name) {
            guard let tensor = tensors[entry.name] else {
                let held = tensors.keys.sorted().prefix(8).joined(separator: ", ")
                throw ConfigError("--init-from \(path): no tensor \(entry.name) (\(TorchExport.torchName(entry.name)) in PyTorch's "
                                  + "names), which this network needs; the file holds \(held)\(tensors.count > 8 ? ", …" : ""). "
                                  + "Is it a network of the same --model?")
            }
            guard tensor.shape == entry.shape else {
                throw ConfigError("--init-from \(path): tensor \(entry.name) has shape \(tensor.shape) there; this network "
                                  + "needs \(entry.shape). Build the network the source was trained with (--model, --dim, "
                                  + "--hidden and the data's sample shape), or pass --redraw-head when only the head differs")
            }
            tensor.values.withUnsafeBufferPointer { (buffer + entry.offset).update(from: $0.baseAddress!, count: entry.count) }
        }
    }
}
