/// The networks `--model` can name (SPEC §6).
public enum ModelKind: String, Sendable, CaseIterable, Codable {
    /// Convolutional network for 1×H×W glyph images (the default for images).
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
/// glyphnet takes [1, H, W] with H, W positive multiples of 8 (32×32 for hanzi); mlp takes [D]
/// and uses `hiddenSize`.
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
        guard inputShape.count == 3, inputShape[0] == 1,
              inputShape[1] >= 8, inputShape[1] % 8 == 0, inputShape[2] >= 8, inputShape[2] % 8 == 0 else {
            throw ModelError.unsupportedInput(model: kind, shape: inputShape,
                                              expected: "one-channel images [1, H, W] with H and W multiples of 8 (e.g. [1, 32, 32]); use --model mlp for feature vectors")
        }
        return GlyphNet(embeddingSize: embeddingSize, maxBatch: maxBatch, batchNorm: batchNorm,
                        height: inputShape[1], width: inputShape[2])
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

/// Kaiming-normal initialisation (fan-in, ReLU gain): every tensor marked `decays` (the
/// weights; first dimension = outputs) gets N(0, 2/fanIn) with fanIn = count / shape[0];
/// tensors named "*.scale" get 1, all others (biases, shifts) 0. Draws in layout order.
func initializeKaimingNormal(layout: ParameterLayout, parameters: UnsafeMutablePointer<Float>,
                             random: inout RandomSource) {
    for entry in layout.entries {
        let slice = parameters + entry.offset
        if entry.decays {
            let fanIn = entry.count / entry.shape[0]
            let standardDeviation = (2.0 / Double(fanIn)).squareRoot()
            for i in 0..<entry.count { slice[i] = Float(standardDeviation * random.nextNormal()) }
        } else {
            slice.update(repeating: entry.name.hasSuffix(".scale") ? 1 : 0, count: entry.count)
        }
    }
}

/// Batch-norm running statistics: mean 0, variance 1 ("*.runningVariance").
func initializeBatchNormState(layout: ParameterLayout, state: UnsafeMutablePointer<Float>) {
    for entry in layout.entries {
        (state + entry.offset).update(repeating: entry.name.hasSuffix(".runningVariance") ? 1 : 0, count: entry.count)
    }
}
