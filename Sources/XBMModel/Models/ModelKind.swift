import XBMKernels
/// The networks `--model` can name (Docs/numerics.md).
public enum ModelKind: String, Sendable, CaseIterable, Codable {
    /// Convolutional network for C×H×W images, glyphs (C = 1) or colour (C = 3) (the default for images).
    case glyphnet
    /// Two-layer perceptron for feature vectors (the default for features).
    case mlp
}

/// A model that cannot be built for the data it was asked to embed.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unsupportedInput(model: ModelKind, shape: [Int], expected: String)
    case invalidSize(model: ModelKind, name: String, value: Int, expected: String)

    public var description: String {
        switch self {
        case let .unsupportedInput(model, shape, expected):
            return "model \(model.rawValue) cannot take samples of shape \(shape): expected \(expected)"
        case let .invalidSize(model, name, value, expected):
            return "model \(model.rawValue): \(name) is \(value), expected \(expected)"
        }
    }
}

/// Builds the network `kind` for samples of `inputShape` ([C, H, W] images or [D] features).
/// glyphnet takes [C, H, W] with H, W positive multiples of 8 (1×32×32 for hanzi, 3×64×64 for
/// photos); mlp takes [D] and uses `hiddenSize`.
public func makeNetwork(kind: ModelKind, inputShape: [Int], embeddingSize: Int, hiddenSize: Int = 512,
                        maxBatch: Int, batchNorm: BatchNormSync) throws -> EmbeddingNetwork {
    guard embeddingSize >= 1 else {
        throw ModelError.invalidSize(model: kind, name: "embedding size", value: embeddingSize, expected: "at least 1")
    }
    guard maxBatch >= 1 else {
        throw ModelError.invalidSize(model: kind, name: "batch", value: maxBatch, expected: "at least 1")
    }
    switch kind {
    case .glyphnet:
        guard inputShape.count == 3 else {
            throw ModelError.unsupportedInput(model: kind, shape: inputShape,
                                              expected: "images [C, H, W] (e.g. [1, 32, 32] or [3, 64, 64]); use --model mlp for feature vectors")
        }
        let (channels, height, width) = (inputShape[0], inputShape[1], inputShape[2])
        guard channels >= 1, height >= 8, height % 8 == 0, width >= 8, width % 8 == 0 else {
            // Three 2×2 poolings halve the size three times, so each side must divide by 8.
            let rounded = [height, width].map { max(8, $0 / 8 * 8) }
            throw ModelError.unsupportedInput(model: kind, shape: inputShape,
                                              expected: "height and width multiples of 8 (three 2×2 poolings halve them); "
                                                  + "resize or crop the images to \(rounded[0])×\(rounded[1]) when building the dataset")
        }
        return GlyphNet(embeddingSize: embeddingSize, maxBatch: maxBatch, batchNorm: batchNorm,
                        inputChannels: channels, height: height, width: width)
    case .mlp:
        guard inputShape.count == 1, inputShape[0] >= 1 else {
            throw ModelError.unsupportedInput(model: kind, shape: inputShape,
                                              expected: "feature vectors [D]; use --model glyphnet for images")
        }
        guard hiddenSize >= 1 else {
            throw ModelError.invalidSize(model: kind, name: "hidden size", value: hiddenSize, expected: "at least 1")
        }
        return MLP(inputSize: inputShape[0], hiddenSize: hiddenSize, embeddingSize: embeddingSize,
                   maxBatch: maxBatch, batchNorm: batchNorm)
    }
}

/// PyTorch's default initialisation of `Conv2d` and `Linear` (He et al.'s uniform with
/// a = √5, as torch.nn.init.kaiming_uniform_): every tensor marked `decays` (the weights;
/// first dimension = outputs, fanIn = count / shape[0]) gets U(−1/√fanIn, 1/√fanIn), i.e.
/// standard deviation 1/√(3·fanIn); a bias "X.bias" gets U(−1/√fanIn, 1/√fanIn) with the fanIn
/// of "X.weight"; tensors named "*.scale" get 1, all others (batch-norm shifts) 0. Draws in
/// layout order.
///
/// Why not Kaiming-normal N(0, 2/fanIn): every weight here is followed by batch norm or by the
/// L2 normalisation, so its scale does not change the function, only the step that Adam's
/// per-coordinate update of fixed size makes relative to it. Weights √6 ≈ 2.4× larger make that
/// relative step ~2.4× smaller and its angular effect ~6× smaller: the same learning rate then
/// trains markedly slower (Docs/results.md measures it against the PyTorch reference).
func initializeLikePyTorch(layout: ParameterLayout, parameters: UnsafeMutablePointer<Float>,
                           random: inout RandomSource) {
    for entry in layout.entries {
        let slice = parameters + entry.offset
        let fanIn: Int?
        if entry.decays {
            fanIn = entry.count / entry.shape[0]
        } else if entry.name.hasSuffix(".bias"), let weight = layout[String(entry.name.dropLast(5)) + ".weight"] {
            fanIn = weight.count / weight.shape[0]
        } else {
            fanIn = nil
        }
        guard let fanIn else {
            slice.update(repeating: entry.name.hasSuffix(".scale") ? 1 : 0, count: entry.count)
            continue
        }
        let bound = 1 / Double(fanIn).squareRoot()
        for i in 0..<entry.count { slice[i] = Float(bound * (2 * random.nextUniformDouble() - 1)) }
    }
}

/// Batch-norm running statistics: mean 0, variance 1 ("*.runningVariance").
func initializeBatchNormState(layout: ParameterLayout, state: UnsafeMutablePointer<Float>) {
    for entry in layout.entries {
        (state + entry.offset).update(repeating: entry.name.hasSuffix(".runningVariance") ? 1 : 0, count: entry.count)
    }
}
