import Foundation
import XBMKernels
import XBMFormats
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

    /// One tensor under its PyTorch name and layout.
    static func torchTensor(_ entry: ParameterLayout.Entry, _ values: [Float]) -> (String, [Int], [Float]) {
        let renamed = entry.name
            .replacingOccurrences(of: ".scale", with: ".weight").replacingOccurrences(of: ".shift", with: ".bias")
            .replacingOccurrences(of: ".runningMean", with: ".running_mean")
            .replacingOccurrences(of: ".runningVariance", with: ".running_var")
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
}
