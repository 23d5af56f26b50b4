import XBMKernels
/// How batch normalisation gets its batch statistics in training mode.
public enum BatchNormSync {
    /// Per-rank statistics (`--bn local`).
    case local
    /// Statistics over the global batch (Docs/distributed.md, like PyTorch's SyncBatchNorm): the reducer
    /// sums a buffer of per-channel partial sums over all ranks, in place. It is called in
    /// forward (Σx, Σx², count) and in backward (Σdy, Σdy·x̂), the same number of times on
    /// every rank.
    case synchronized(reducer: (UnsafeMutableBufferPointer<Double>) throws -> Void)
    /// Statistics over the global batch that do not depend on how it is split over ranks or
    /// threads (`--deterministic`, Docs/distributed.md): this rank's samples are cut into
    /// `chunks` equal chunks, every sum is taken per chunk (in row order), and `combine` gets
    /// this rank's chunk sums — `chunks` rows of `width` Doubles at the start of the buffer — and
    /// leaves in the first row the sums over every chunk of the global batch, added in chunk
    /// order. The backward's parameter gradients then come per chunk too (`GradientChunks`).
    case chunked(chunks: Int, combine: (_ rows: UnsafeMutableBufferPointer<Double>, _ width: Int) throws -> Void)

    /// Chunks of the local batch that sums are taken over: 1 unless `.chunked`.
    public var chunks: Int {
        if case let .chunked(chunks, _) = self { chunks } else { 1 }
    }
}

/// How a backward lays out the parameter gradients: one gradient of the whole local batch,
/// added into the buffer (`whole`), or one per chunk of consecutive samples, chunk j's at
/// `j · stride` floats from the first, each *written* — every parameter of every chunk, so the
/// buffer needs no zeroing (`BatchNormSync.chunked`, `--deterministic`). Chunks are equal and
/// hold whole samples.
public struct GradientChunks: Sendable, Equatable {
    /// Chunks of the local batch.
    public var count: Int
    /// Floats from one chunk's gradient to the next's (the parameter count).
    public var stride: Int
    /// True: each chunk's gradient is written over whatever the buffer held; false: added.
    public var writes: Bool

    public init(count: Int, stride: Int, writes: Bool) {
        precondition(count >= 1 && (count == 1 || stride >= 0), "GradientChunks needs count ≥ 1, got \(count)")
        self.count = count
        self.stride = stride
        self.writes = writes
    }

    public static let whole = GradientChunks(count: 1, stride: 0, writes: false)

    /// β of a product into a chunk's gradient: 0 writes it, 1 adds to it.
    var beta: Float { writes ? 0 : 1 }

    /// Chunk j's samples (or rows, given `count` of them) among `total`.
    @inline(__always) func range(_ j: Int, of total: Int) -> Range<Int> {
        let size = total / count
        return j * size..<(j + 1) * size
    }
}

public enum ForwardMode: Sendable {
    /// Batch statistics; running statistics updated; activations kept for `backward`.
    case training
    /// Running statistics; nothing kept.
    case inference
}

/// A network that maps samples to L2-normalised embeddings, with a hand-written backward.
///
/// Buffers are owned by the caller and passed to every call: `parameters` and `gradients`
/// follow `parameterLayout`; `state` (batch-norm running statistics, not trained) follows
/// `stateLayout`. Activations live inside the network, allocated once for `maxBatch` samples,
/// so the steady-state step allocates nothing.
public protocol EmbeddingNetwork: AnyObject {
    var parameterLayout: ParameterLayout { get }
    var stateLayout: ParameterLayout { get }
    /// Shape of one input sample: [C, H, W] for images, [D] for feature vectors.
    var inputShape: [Int] { get }
    /// d, the embedding size.
    var embeddingSize: Int { get }
    /// The largest `count` that `forward` accepts.
    var maxBatch: Int { get }
    /// Where training-mode batch norm takes its statistics (and, `.chunked`, how the backward
    /// lays out the gradients).
    var batchNorm: BatchNormSync { get }
    /// The parameters of the embedding head, the last linear layer (`--redraw-head` draws
    /// them afresh when a run starts from trained weights).
    var headParameterNames: [String] { get }

    /// Seeded initialisation as PyTorch's defaults: weights and biases U(−1/√fanIn, 1/√fanIn),
    /// batch norm scale 1 and shift 0, running mean 0 and variance 1.
    func initialize(parameters: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>,
                    random: inout RandomSource)

    /// Embeds `count` samples, (count, inputShape...) → (count, d) rows of unit length.
    /// The result points into the network's own storage and stays valid until the next call.
    func forward(input: UnsafePointer<Float>, count: Int, parameters: UnsafePointer<Float>,
                 state: UnsafeMutablePointer<Float>, mode: ForwardMode) throws -> UnsafePointer<Float>

    /// Backward of the last `.training` forward: given dL/d(embeddings) (count, d), *adds*
    /// dL/dθ into `gradients`. With `.chunked` batch norm, it *writes* one gradient per chunk of
    /// the batch into `gradients` (`gradientChunks`), each summed over that chunk's samples only.
    ///
    /// `gradientsFinal`, when given, is called each time the backward has finished with the
    /// gradients at flat offsets `offset..<parameterLayout.count`, with decreasing offsets
    /// (parameters are laid out in forward order and their gradients complete in reverse).
    /// The distributed step starts their allreduce then, while the backward goes on
    /// (Docs/distributed.md, Overlap). A network may call it less often, or never: what it
    /// has not reported is final when `backward` returns.
    func backward(outputGradient: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                  gradients: UnsafeMutablePointer<Float>, gradientsFinal: ((_ offset: Int) throws -> Void)?) throws
}

extension EmbeddingNetwork {
    /// The layout of the gradients `backward` leaves: written per chunk with `.chunked` batch
    /// norm, else added whole.
    public func gradientChunks(batchNorm: BatchNormSync) -> GradientChunks {
        if case .chunked = batchNorm {
            return GradientChunks(count: batchNorm.chunks, stride: parameterLayout.count, writes: true)
        }
        return .whole
    }

    /// The backward without notifications.
    public func backward(outputGradient: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>) throws {
        try backward(outputGradient: outputGradient, parameters: parameters, gradients: gradients, gradientsFinal: nil)
    }
}
