import Foundation
import XBMFormats
import XBMKernels
import XBMModel

/// A trained network as the state dict of the PyTorch module of the same architecture in
/// `python/xbm_models.py` (Docs/export.md), so `module.load_state_dict` takes it as it is:
///
/// | xbm-dist tensor | PyTorch tensor | layout |
/// |---|---|---|
/// | `convK.weight` (Co, 3, 3, Ci) | `convK.weight` (Co, Ci, 3, 3) | transposed |
/// | `bnK.scale`, `bnK.shift` | `bnK.weight`, `bnK.bias` | same |
/// | `bnK.runningMean`, `bnK.runningVariance` | `bnK.running_mean`, `bnK.running_var` | same |
/// | — | `bnK.num_batches_tracked` | 0 (unused with momentum 0.1) |
/// | `fc.weight` (d, F), `fc*.weight`, `fc*.bias` | the same names | same (out, in) |
///
/// The metadata names the model and its sizes so that `xbm_models.load` can build it.
public enum TorchExport {
    public static func safetensors(model kind: ModelKind, network: EmbeddingNetwork, parameters: UnsafePointer<Float>,
                                   state: UnsafePointer<Float>) -> SafetensorsFile {
        var file = SafetensorsFile()
        let sources = network.parameterLayout.entries.map { ($0, parameters) } + network.stateLayout.entries.map { ($0, state) }
        for (entry, buffer) in sources {
            let values = Array(UnsafeBufferPointer(start: buffer + entry.offset, count: entry.count))
            let (name, shape, floats) = torchTensor(entry, values)
            file.add(name, shape: shape, floats: floats)
            if entry.name.hasSuffix(".runningVariance") {
                file.add(name.replacingOccurrences(of: ".running_var", with: ".num_batches_tracked"), shape: [], integers: [0])
            }
        }
        file.metadata = [
            "format": "pt", "producer": "xbm-dist", "model": kind.rawValue,
            "input_shape": network.inputShape.map(String.init).joined(separator: ","),
            "embedding_size": "\(network.embeddingSize)",
        ]
        return file
    }

    /// Batch-norm tensor names: xbm-dist's against PyTorch's.
    private static let batchNormNames = [(".scale", ".weight"), (".shift", ".bias"), (".runningMean", ".running_mean"),
                                         (".runningVariance", ".running_var")]

    /// The PyTorch name of an xbm-dist tensor.
    static func torchName(_ name: String) -> String {
        guard let (ours, theirs) = batchNormNames.first(where: { name.hasSuffix($0.0) }) else { return name }
        return String(name.dropLast(ours.count)) + theirs
    }

    /// One tensor under its PyTorch name and layout.
    static func torchTensor(_ entry: ParameterLayout.Entry, _ values: [Float]) -> (String, [Int], [Float]) {
        let renamed = torchName(entry.name)
        guard entry.name.hasPrefix("conv"), entry.shape.count == 4 else { return (renamed, entry.shape, values) }
        // (Co, kh, kw, Ci) → (Co, Ci, kh, kw)
        let (shape, permuted) = permute(values, shape: entry.shape, axes: [0, 3, 1, 2])
        return (renamed, shape, permuted)
    }

    /// The inverse of `torchTensor`: a PyTorch state-dict tensor under xbm-dist's name and layout.
    static func xbmTensor(name: String, shape: [Int], values: [Float]) -> (String, [Int], [Float]) {
        var renamed = name
        if name.hasPrefix("bn"), let (ours, theirs) = batchNormNames.first(where: { name.hasSuffix($0.1) }) {
            renamed = String(name.dropLast(theirs.count)) + ours
        }
        guard name.hasPrefix("conv"), shape.count == 4 else { return (renamed, shape, values) }
        // (Co, Ci, kh, kw) → (Co, kh, kw, Ci)
        let (newShape, permuted) = permute(values, shape: shape, axes: [0, 2, 3, 1])
        return (renamed, newShape, permuted)
    }

    /// A 4-d row-major tensor with its axes reordered: axis k of the result is axis `axes[k]` of `shape`.
    static func permute(_ values: [Float], shape: [Int], axes: [Int]) -> ([Int], [Float]) {
        let out = axes.map { shape[$0] }
        var inStride = [Int](repeating: 1, count: 4)
        for k in stride(from: 2, through: 0, by: -1) { inStride[k] = inStride[k + 1] * shape[k + 1] }
        let stride = axes.map { inStride[$0] }     // the input stride of each output axis
        var result = [Float](repeating: 0, count: values.count)
        var n = 0
        for a in 0..<out[0] { for b in 0..<out[1] { for c in 0..<out[2] { for e in 0..<out[3] {
            result[n] = values[a * stride[0] + b * stride[1] + c * stride[2] + e * stride[3]]
            n += 1
        } } } }
        return (out, result)
    }
}
