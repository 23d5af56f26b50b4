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
        let (co, kh, kw, ci) = (entry.shape[0], entry.shape[1], entry.shape[2], entry.shape[3])
        var transposed = [Float](repeating: 0, count: values.count)
        for o in 0..<co {
            for y in 0..<kh {
                for x in 0..<kw {
                    for i in 0..<ci {
                        transposed[((o * ci + i) * kh + y) * kw + x] = values[((o * kh + y) * kw + x) * ci + i]
                    }
                }
            }
        }
        return (renamed, [co, ci, kh, kw], transposed)
    }

    /// The inverse of `torchTensor`: a PyTorch state-dict tensor under xbm-dist's name and layout.
    static func xbmTensor(name: String, shape: [Int], values: [Float]) -> (String, [Int], [Float]) {
        var renamed = name
        if name.hasPrefix("bn"), let (ours, theirs) = batchNormNames.first(where: { name.hasSuffix($0.1) }) {
            renamed = String(name.dropLast(theirs.count)) + ours
        }
        guard name.hasPrefix("conv"), shape.count == 4 else { return (renamed, shape, values) }
        // (Co, Ci, kh, kw) → (Co, kh, kw, Ci)
        let (co, ci, kh, kw) = (shape[0], shape[1], shape[2], shape[3])
        var transposed = [Float](repeating: 0, count: values.count)
        for o in 0..<co {
            for i in 0..<ci {
                for y in 0..<kh {
                    for x in 0..<kw {
                        transposed[((o * kh + y) * kw + x) * ci + i] = values[((o * ci + i) * kh + y) * kw + x]
                    }
                }
            }
        }
        return (renamed, [co, kh, kw, ci], transposed)
    }
}
