import XBMKernels
// Batch normalisation over channel-last rows: x (m, C) with m = n·H·W for BN2d on NHWC
// activations and m = n for BN1d, so one kernel serves both.
//
// Training (PyTorch semantics, eps 1e-5, momentum 0.1), with M the global row count
// (Σ of m over ranks when synchronised) and sums over the global batch:
//   μ = Σx / M,  σ² = Σx² / M − μ² (biased),  r = 1/√(σ² + eps),  x̂ = (x − μ)·r,
//   y = γ·x̂ + β;   running μ ← 0.9·running μ + 0.1·μ,  running σ² ← 0.9·running σ² + 0.1·σ²·M/(M−1).
// Backward, with g = dL/dy:
//   dβ += Σ_local g,  dγ += Σ_local g·x̂   (local: the trainer allreduces all gradients later),
//   dx  = γ·r·( g − Σ_global g / M − x̂ · Σ_global g·x̂ / M )   (written, not added: the
//         activation feeds only this layer; parameter gradients are always added).
// Fused ReLU (`relu: true` / `reluOutput:`): the forward writes max(0, y) and the backward
// treats g as 0 where that output is 0 — exactly BN followed by the ReLU layer, one pass
// over the activations fewer each way.
// Sums are accumulated in Double (from 64-row Float partial sums) so Σx² − Mμ² does not
// cancel badly.

extension BatchNormSync {
    /// Turns this rank's sums — `chunks` rows of `width` at `sums` — into the global batch's,
    /// in the first row: nothing for `.local` (one chunk), the reducer's allreduce for
    /// `.synchronized`, the ordered combination of every rank's chunks for `.chunked`.
    func combine(_ sums: UnsafeMutablePointer<Double>, chunks: Int, width: Int) throws {
        switch self {
        case .local: break
        case let .synchronized(reducer): try reducer(UnsafeMutableBufferPointer(start: sums, count: width))
        case let .chunked(_, combine): try combine(UnsafeMutableBufferPointer(start: sums, count: chunks * width), width)
        }
    }
}

/// Failures of a layer call that depend on data, not on programming errors.
public enum LayerError: Error, CustomStringConvertible, Equatable {
    /// Training-mode batch norm needs at least two values per channel (over all ranks).
    case batchNormNeedsTwoValues(layer: String, count: Int)

    public var description: String {
        switch self {
        case let .batchNormNeedsTwoValues(layer, count):
            return "batch norm \(layer) in training mode needs at least 2 values per channel, got \(count) (use a batch of 2 or more)"
        }
    }
}

public let batchNormEpsilon: Float = 1e-5
public let batchNormMomentum: Float = 0.1

/// Training-mode forward. Workspaces: `sums` 2C + 1 Doubles, `coefficients` 2C Floats (on
/// return the affine a, b of y = a·x + b); `mean` and `inverseStd` (C each) are saved for the
/// backward. Returns M, the global row count.
@inline(never)
func batchNormForwardTraining(output: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                              inverseStd: UnsafeMutablePointer<Float>,
                              runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
                              sums: UnsafeMutablePointer<Double>, coefficients: UnsafeMutablePointer<Float>,
                              input: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                              rows m: Int, channels: Int, relu: Bool = false, sync: BatchNormSync,
                              name: String) throws -> Int {
    let total = try batchNormTrainingStatistics(
        mean: mean, inverseStd: inverseStd, runningMean: runningMean, runningVariance: runningVariance,
        sums: sums, coefficients: coefficients, input: input, scale: scale, shift: shift,
        rows: m, channels: channels, sync: sync, name: name)
    batchNormAffine(output: output, input: input, coefficients: coefficients, rows: m, channels: channels, relu: relu)
    return total
}

/// The statistics half of the training forward: batch mean and variance over the ranks of
/// `sync`, the running statistics' update, and the affine a = γ·r, b = β − μ·a written as
/// Floats to coefficients[0..<C] and coefficients[C..<2C]. Returns M.
func batchNormTrainingStatistics(mean: UnsafeMutablePointer<Float>, inverseStd: UnsafeMutablePointer<Float>,
                                 runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
                                 sums: UnsafeMutablePointer<Double>, coefficients: UnsafeMutablePointer<Float>,
                                 input: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                 rows m: Int, channels: Int, sync: BatchNormSync, name: String) throws -> Int {
    // Per chunk of whole samples (one chunk but with `.chunked`): Σx, Σx², rows.
    let chunks = sync.chunks, width = 2 * channels + 1
    precondition(m % chunks == 0, "batch norm \(name): \(m) rows are not \(chunks) equal chunks")
    channelSums(sumFirst: sums, sumProduct: sums + channels, first: input, second: input, rows: m, channels: channels,
                chunks: chunks, chunkStride: width)
    for j in 0..<chunks { sums[j * width + 2 * channels] = Double(m / chunks) }
    try sync.combine(sums, chunks: chunks, width: width)
    let sumX = sums, sumXX = sums + channels
    let total = Int(sums[2 * channels].rounded())
    guard total >= 2 else { throw LayerError.batchNormNeedsTwoValues(layer: name, count: total) }
    let count = Double(total)
    for c in 0..<channels {
        let mu = sumX[c] / count
        let variance = max(sumXX[c] / count - mu * mu, 0)
        mean[c] = Float(mu)
        inverseStd[c] = Float(1 / (variance + Double(batchNormEpsilon)).squareRoot())
        runningMean[c] = (1 - batchNormMomentum) * runningMean[c] + batchNormMomentum * Float(mu)
        runningVariance[c] = (1 - batchNormMomentum) * runningVariance[c]
            + batchNormMomentum * Float(variance * count / (count - 1))
        let a = Double(scale[c]) * Double(inverseStd[c])
        coefficients[c] = Float(a)
        coefficients[channels + c] = Float(Double(shift[c]) - mu * a)
    }
    return total
}

/// Inference-mode forward with the running statistics: y = γ·(x − running μ)/√(running σ² + eps) + β.
/// `coefficients` (2C) receives the affine a, b.
@inline(never)
func batchNormForwardInference(output: UnsafeMutablePointer<Float>, coefficients: UnsafeMutablePointer<Float>,
                               input: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                               runningMean: UnsafePointer<Float>, runningVariance: UnsafePointer<Float>,
                               rows m: Int, channels: Int, relu: Bool = false) {
    batchNormInferenceCoefficients(coefficients: coefficients, scale: scale, shift: shift, runningMean: runningMean,
                                   runningVariance: runningVariance, channels: channels)
    batchNormAffine(output: output, input: input, coefficients: coefficients, rows: m, channels: channels, relu: relu)
}

/// The affine of the inference forward: a = γ/√(running σ² + eps), b = β − running μ·a, as
/// Floats to coefficients[0..<C] and coefficients[C..<2C].
func batchNormInferenceCoefficients(coefficients: UnsafeMutablePointer<Float>, scale: UnsafePointer<Float>,
                                    shift: UnsafePointer<Float>, runningMean: UnsafePointer<Float>,
                                    runningVariance: UnsafePointer<Float>, channels: Int) {
    for c in 0..<channels {
        let a = Double(scale[c]) / (Double(runningVariance[c]) + Double(batchNormEpsilon)).squareRoot()
        coefficients[c] = Float(a)
        coefficients[channels + c] = Float(Double(shift[c]) - Double(runningMean[c]) * a)
    }
}

/// y[row, c] = a[c]·x[row, c] + b[c] (then max(0, ·) with `relu`), a = coefficients[0..<C],
/// b = coefficients[C..<2C].
private func batchNormAffine(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                             coefficients: UnsafePointer<Float>, rows m: Int, channels: Int, relu: Bool) {
    let a = coefficients, b = coefficients + channels
    parallelChunks(m, minimumChunk: max(1, 16384 / channels)) { rows in
        for row in rows {
            let x = input + row * channels, y = output + row * channels
            var c = 0
            if relu {
                while c + vectorWidth <= channels {
                    storeVector(batchNormReLU(loadVector(x + c), loadVector(a + c), loadVector(b + c)), y + c)
                    c += vectorWidth
                }
                while c < channels { y[c] = max(0, a[c] * x[c] + b[c]); c += 1 }
            } else {
                while c + vectorWidth <= channels {
                    storeVector(loadVector(a + c) * loadVector(x + c) + loadVector(b + c), y + c)
                    c += vectorWidth
                }
                while c < channels { y[c] = a[c] * x[c] + b[c]; c += 1 }
            }
        }
    }
}

/// max(0, a·x + b) lane-wise: the one expression of the fused BN–ReLU, so every kernel that
/// recomputes an activation (the fused pool's backward) gets the forward's exact bits.
@inline(__always)
func batchNormReLU(_ x: FloatVector, _ a: FloatVector, _ b: FloatVector) -> FloatVector {
    lanewiseMax(a * x + b, .zero)
}

/// Gradients of the training-mode forward (adds dγ, dβ; writes dx) (formulas at the top of the file).
/// `mean`, `inverseStd` and `globalCount` are what that forward saved and returned.
@inline(never)
func batchNormBackward(inputGradient: UnsafeMutablePointer<Float>, scaleGradient: UnsafeMutablePointer<Float>,
                       shiftGradient: UnsafeMutablePointer<Float>,
                       sums: UnsafeMutablePointer<Double>, coefficients: UnsafeMutablePointer<Float>,
                       outputGradient: UnsafePointer<Float>, input: UnsafePointer<Float>,
                       scale: UnsafePointer<Float>, mean: UnsafePointer<Float>, inverseStd: UnsafePointer<Float>,
                       reluOutput: UnsafePointer<Float>? = nil,
                       globalCount: Int, rows m: Int, channels: Int, sync: BatchNormSync,
                       gradientChunks: GradientChunks = .whole) throws {
    let chunks = sync.chunks
    precondition(m % chunks == 0 && gradientChunks.count == chunks, "batch norm backward: \(m) rows in \(chunks) chunks")
    channelSums(sumFirst: sums, sumProduct: sums + channels, first: outputGradient, second: input, mask: reluOutput,
                rows: m, channels: channels, chunks: chunks, chunkStride: 2 * channels)
    try batchNormBackwardCoefficients(scaleGradient: scaleGradient, shiftGradient: shiftGradient, sums: sums,
                                      coefficients: coefficients, scale: scale, mean: mean, inverseStd: inverseStd,
                                      globalCount: globalCount, channels: channels, sync: sync, gradientChunks: gradientChunks)
    let k = coefficients, u = k + channels, v = u + channels
    parallelChunks(m, minimumChunk: max(1, 16384 / channels)) { rows in
        for row in rows {
            let g = outputGradient + row * channels, x = input + row * channels
            let dx = inputGradient + row * channels
            let y = reluOutput.map { $0 + row * channels }
            var c = 0
            while c + vectorWidth <= channels {
                var gradient = loadVector(g + c)
                if let y { gradient.replace(with: 0, where: loadVector(y + c) .<= 0) }
                storeVector(loadVector(k + c) * gradient + loadVector(u + c) * loadVector(x + c) + loadVector(v + c), dx + c)
                c += vectorWidth
            }
            while c < channels {
                let gradient = y.map { $0[c] > 0 ? g[c] : 0 } ?? g[c]
                dx[c] = k[c] * gradient + u[c] * x[c] + v[c]
                c += 1
            }
        }
    }
}

/// From the local Σg (sums[0..<C]) and Σg·x (sums[C..<2C]): adds dβ = Σg and dγ = Σg·x̂ with
/// Σg·x̂ = r·(Σg·x − μ·Σg), sums both over the ranks of `sync`, and writes the coefficients of
/// dx = k·g + u·x + v to coefficients[0..<3C]: k = γr, u = −k·r·B, v = −k·A + k·r·B·μ with
/// A = Σg/M, B = Σg·x̂/M. With `.chunked` sync, `sums` holds one row of 2C per chunk, and each
/// chunk's dβ and dγ are written to that chunk's gradient.
func batchNormBackwardCoefficients(scaleGradient: UnsafeMutablePointer<Float>, shiftGradient: UnsafeMutablePointer<Float>,
                                   sums: UnsafeMutablePointer<Double>, coefficients: UnsafeMutablePointer<Float>,
                                   scale: UnsafePointer<Float>, mean: UnsafePointer<Float>, inverseStd: UnsafePointer<Float>,
                                   globalCount: Int, channels: Int, sync: BatchNormSync,
                                   gradientChunks: GradientChunks = .whole) throws {
    for j in 0..<sync.chunks {
        let sumG = sums + j * 2 * channels, sumGX = sumG + channels
        let dShift = shiftGradient + j * gradientChunks.stride, dScale = scaleGradient + j * gradientChunks.stride
        for c in 0..<channels {
            sumGX[c] = Double(inverseStd[c]) * (sumGX[c] - Double(mean[c]) * sumG[c])
            dShift[c] = (gradientChunks.writes ? 0 : dShift[c]) + Float(sumG[c])
            dScale[c] = (gradientChunks.writes ? 0 : dScale[c]) + Float(sumGX[c])
        }
    }
    try sync.combine(sums, chunks: sync.chunks, width: 2 * channels)
    let sumG = sums, sumGX = sums + channels
    let count = Double(globalCount)
    let k = coefficients, u = k + channels, v = u + channels
    for c in 0..<channels {
        let r = Double(inverseStd[c]), kc = Double(scale[c]) * r
        let a = sumG[c] / count, b = sumGX[c] / count
        k[c] = Float(kc)
        u[c] = Float(-kc * r * b)
        v[c] = Float(-kc * a + kc * r * b * Double(mean[c]))
    }
}

/// sumFirst[c] = Σ_rows f[row, c] and sumProduct[c] = Σ_rows f[row, c]·second[row, c] over
/// (m, C) rows, with f = first, or first where mask > 0 and 0 elsewhere when a mask is given.
/// The rows are cut into blocks of 64; each block's Float vector sums (a contiguous 64·C
/// floats, so threads read disjoint memory) go to a scratch, and the blocks' sums are then
/// added into the Double totals in row order. Rounding stays that of 64-term Float sums, and
/// the result does not depend on the thread count. With several `chunks` the rows are that
/// many equal chunks, blocks never straddle two, and chunk j's sums go to
/// sumFirst/sumProduct + j · `chunkStride`.
@inline(__always)
func channelSums(sumFirst: UnsafeMutablePointer<Double>, sumProduct: UnsafeMutablePointer<Double>,
                 first: UnsafePointer<Float>, second: UnsafePointer<Float>, mask: UnsafePointer<Float>? = nil,
                 rows m: Int, channels: Int, chunks: Int = 1, chunkStride: Int = 0) {
    precondition(m % chunks == 0, "channel sums: \(m) rows are not \(chunks) equal chunks")
    let blockRows = 64, chunkRows = m / chunks
    let blocksPerChunk = (chunkRows + blockRows - 1) / blockRows, blocks = chunks * blocksPerChunk
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: max(1, blocks * 2 * channels))
    defer { partials.deallocate() }
    parallelChunks(blocks, minimumChunk: max(1, 16384 / (blockRows * channels))) { blockRange in
        for block in blockRange {
            let chunkStart = block / blocksPerChunk * chunkRows
            let start = chunkStart + block % blocksPerChunk * blockRows, end = min(start + blockRows, chunkStart + chunkRows)
            let s1Out = partials + block * 2 * channels, s2Out = s1Out + channels
            var c0 = 0
            while c0 < channels {
                let lanes = min(vectorWidth, channels - c0)
                var s1 = FloatVector.zero, s2 = FloatVector.zero
                if lanes == vectorWidth {
                    for row in start..<end {
                        var a = loadVector(first + row * channels + c0)
                        if let mask { a.replace(with: 0, where: loadVector(mask + row * channels + c0) .<= 0) }
                        let b = loadVector(second + row * channels + c0)
                        s1 += a
                        s2 += a * b
                    }
                } else {
                    for row in start..<end {
                        for lane in 0..<lanes {
                            let index = row * channels + c0 + lane
                            let a = mask.map { $0[index] > 0 ? first[index] : 0 } ?? first[index], b = second[index]
                            s1[lane] += a
                            s2[lane] += a * b
                        }
                    }
                }
                storeVector(s1, s1Out + c0, lanes: lanes)
                storeVector(s2, s2Out + c0, lanes: lanes)
                c0 += lanes
            }
        }
    }
    for j in 0..<chunks {
        addInOrder(blocksPerChunk, partialsOf: 2 * channels, partials + j * blocksPerChunk * 2 * channels,
                   into: sumFirst + j * chunkStride, sumProduct + j * chunkStride)
    }
}

/// The Double totals of per-block Float partial sums, blocks in order: `partials` holds
/// `blocks` rows of 2C floats (C first sums, then C second sums).
func addInOrder(_ blocks: Int, partialsOf width: Int, _ partials: UnsafePointer<Float>,
                into first: UnsafeMutablePointer<Double>, _ second: UnsafeMutablePointer<Double>) {
    let channels = width / 2
    for c in 0..<channels { first[c] = 0; second[c] = 0 }
    for block in 0..<blocks {
        let s1 = partials + block * width, s2 = s1 + channels
        for c in 0..<channels {
            first[c] += Double(s1[c])
            second[c] += Double(s2[c])
        }
    }
}

/// The buffers one batch-norm layer keeps from its training forward to its backward,
/// allocated once for C channels.
final class BatchNormSaved {
    let channels: Int
    let name: String
    let mean: FlatBuffer<Float>          // (C)
    let inverseStd: FlatBuffer<Float>    // (C)
    let coefficients: FlatBuffer<Float>  // (5C) the forward's affine a, b, then the backward's k, u, v
    let sums: FlatBuffer<Double>         // (chunks, 2C + 1) workspace, the buffer handed to the reducer
    var globalCount = 0

    init(channels: Int, name: String, chunks: Int = 1) {
        self.channels = channels
        self.name = name
        mean = FlatBuffer(count: channels)
        inverseStd = FlatBuffer(count: channels)
        coefficients = FlatBuffer(count: 5 * channels)
        sums = FlatBuffer(count: chunks * (2 * channels + 1))
    }

    /// The forward's y = a·x + b: a at [0, C), b at [C, 2C); kept until the next forward.
    var affine: UnsafeMutablePointer<Float> { coefficients.pointer }
    /// The backward's k, u, v (3C), after the affine.
    var backwardCoefficients: UnsafeMutablePointer<Float> { coefficients.pointer + 2 * channels }
}

extension BatchNormSaved {
    /// Batch norm (optionally followed by ReLU) in either mode, with this layer's saved
    /// statistics: `.training` normalises with the batch statistics (over the ranks of `sync`),
    /// keeps them for the backward and updates the running statistics; `.inference` uses the
    /// running statistics. (rows, C) in, (rows, C) out.
    func forward(mode: ForwardMode, output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                 scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                 runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
                 rows: Int, relu: Bool, sync: BatchNormSync) throws {
        switch mode {
        case .training:
            globalCount = try batchNormForwardTraining(
                output: output, mean: mean.pointer, inverseStd: inverseStd.pointer,
                runningMean: runningMean, runningVariance: runningVariance,
                sums: sums.pointer, coefficients: affine,
                input: input, scale: scale, shift: shift, rows: rows, channels: channels, relu: relu,
                sync: sync, name: name)
        case .inference:
            batchNormForwardInference(
                output: output, coefficients: affine,
                input: input, scale: scale, shift: shift, runningMean: runningMean, runningVariance: runningVariance,
                rows: rows, channels: channels, relu: relu)
        }
    }
}

