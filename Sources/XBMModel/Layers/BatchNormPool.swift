import XBMKernels
// Batch norm, ReLU and 2×2 max pooling in one pass each way: the pooled glyphnet blocks.
// Letters as in Pooling.swift: n samples, H×W the conv output's size (even), C channels; x is
// the conv output (n, H, W, C), a and b the batch norm's per-channel affine (BatchNorm.swift),
// so the activation is z = max(0, a·x + b) and the block's output
//   p[i, y, x, c] = max over the 2×2 window (2y+dy, 2x+dx) of z.
// The forward writes p only: z is never stored. The backward recomputes z from x with the
// same expression (`batchNormReLU`), so it finds the forward's window maximum bit for bit, and
// routes the gradient g of p as the separate layers do: to the first of the window's four
// positions (order (0,0), (0,1), (1,0), (1,1)) equal to the maximum, and to none when the
// maximum is 0 (ReLU clipped all four). With dy that routed gradient, batch norm's backward
// needs Σ dy and Σ dy·x per channel, in which only winners appear, and then
//   dx = k·dy + u·x + v   at all four positions (k, u, v as in BatchNorm.swift).
// So the backward reads x twice and g twice, and writes dx once; the separate layers wrote and
// read back z, its gradient and BN's input three more times over the block's largest tensors.

/// Calls `body(window base offset in x, window's offset in p)` for the 2×2 windows of output
/// row `outputRow` (= i·H/2 + y) in order.
@inline(__always)
private func forEachWindow(outputRow: Int, height: Int, width: Int, channels: Int, _ body: (Int, Int) -> Void) {
    let outHeight = height / 2, outWidth = width / 2
    let i = outputRow / outHeight, y = outputRow % outHeight
    for x in 0..<outWidth {
        body(((i * height + 2 * y) * width + 2 * x) * channels, ((i * outHeight + y) * outWidth + x) * channels)
    }
}

/// pooled = maxpool2×2(max(0, a·x + b)) with a = affine[0..<C], b = affine[C..<2C].
@inline(never)
func batchNormReLUPoolForward(pooled: UnsafeMutablePointer<Float>, input x: UnsafePointer<Float>,
                              affine: UnsafePointer<Float>, count n: Int, height: Int, width: Int, channels: Int) {
    precondition(height % 2 == 0 && width % 2 == 0, "max pool needs even sizes, got \(height)×\(width)")
    let a = affine, b = affine + channels, rowStride = width * channels
    parallelChunks(n * height / 2, minimumChunk: max(1, 8192 / rowStride)) { outputRows in
        for outputRow in outputRows {
            forEachWindow(outputRow: outputRow, height: height, width: width, channels: channels) { corner, out in
                let x0 = x + corner, x1 = x0 + channels, x2 = x0 + rowStride, x3 = x2 + channels
                forEachVectorSlice(channels) { c, lanes in
                    let ac = loadVector(a + c, lanes: lanes), bc = loadVector(b + c, lanes: lanes)
                    let top = lanewiseMax(batchNormReLU(loadVector(x0 + c, lanes: lanes), ac, bc),
                                          batchNormReLU(loadVector(x1 + c, lanes: lanes), ac, bc))
                    let bottom = lanewiseMax(batchNormReLU(loadVector(x2 + c, lanes: lanes), ac, bc),
                                             batchNormReLU(loadVector(x3 + c, lanes: lanes), ac, bc))
                    storeVector(lanewiseMax(top, bottom), pooled + out + c, lanes: lanes)
                }
            }
        }
    }
}

/// The routed gradient of one window and channel slice: dy at each of the four positions
/// (g at the winner, 0 elsewhere), from x, a, b and the window's g.
@_transparent
private func routedGradient(_ x0: FloatVector, _ x1: FloatVector, _ x2: FloatVector, _ x3: FloatVector,
                            a: FloatVector, b: FloatVector, g: FloatVector)
    -> (FloatVector, FloatVector, FloatVector, FloatVector) {
    let z0 = batchNormReLU(x0, a, b), z1 = batchNormReLU(x1, a, b)
    let z2 = batchNormReLU(x2, a, b), z3 = batchNormReLU(x3, a, b)
    let best = lanewiseMax(lanewiseMax(z0, z1), lanewiseMax(z2, z3))
    let clipped = best .<= 0
    let wins0 = (z0 .== best) .& .!clipped
    let taken1 = clipped .| wins0
    let wins1 = (z1 .== best) .& .!taken1
    let taken2 = taken1 .| wins1
    let wins2 = (z2 .== best) .& .!taken2
    let wins3 = (z3 .== best) .& .!(taken2 .| wins2)
    return (FloatVector.zero.replacing(with: g, where: wins0), FloatVector.zero.replacing(with: g, where: wins1),
            FloatVector.zero.replacing(with: g, where: wins2), FloatVector.zero.replacing(with: g, where: wins3))
}

/// Gradients of `batchNormReLUPoolForward` after a training-mode batch-norm forward whose
/// `saved` statistics and affine are still in place: adds dγ, dβ; writes dx (n, H, W, C) from
/// the pooled output's gradient (n, H/2, W/2, C). Σ dy and Σ dy·x are summed per output row of
/// windows in Float, then the rows in order in Double: the result does not depend on the
/// thread count.
@inline(never)
func batchNormReLUPoolBackward(inputGradient: UnsafeMutablePointer<Float>, scaleGradient: UnsafeMutablePointer<Float>,
                               shiftGradient: UnsafeMutablePointer<Float>, pooledGradient: UnsafePointer<Float>,
                               input x: UnsafePointer<Float>, scale: UnsafePointer<Float>, saved: BatchNormSaved,
                               count n: Int, height: Int, width: Int, sync: BatchNormSync,
                               gradientChunks: GradientChunks = .whole) throws {
    let channels = saved.channels, rowStride = width * channels, outputRows = n * height / 2
    let a = UnsafePointer(saved.affine), b = a + channels
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: outputRows * 2 * channels)
    defer { partials.deallocate() }
    let minimumChunk = max(1, 8192 / rowStride)
    parallelChunks(outputRows, minimumChunk: minimumChunk) { rows in
        for outputRow in rows {
            let sumG = partials + outputRow * 2 * channels, sumGX = sumG + channels
            forEachVectorSlice(channels) { c, lanes in
                let ac = loadVector(a + c, lanes: lanes), bc = loadVector(b + c, lanes: lanes)
                var s1 = FloatVector.zero, s2 = FloatVector.zero
                forEachWindow(outputRow: outputRow, height: height, width: width, channels: channels) { corner, out in
                    let p0 = x + corner + c, p1 = p0 + channels, p2 = p0 + rowStride, p3 = p2 + channels
                    let v0 = loadVector(p0, lanes: lanes), v1 = loadVector(p1, lanes: lanes)
                    let v2 = loadVector(p2, lanes: lanes), v3 = loadVector(p3, lanes: lanes)
                    let (d0, d1, d2, d3) = routedGradient(v0, v1, v2, v3, a: ac, b: bc,
                                                          g: loadVector(pooledGradient + out + c, lanes: lanes))
                    s1 += (d0 + d1) + (d2 + d3)
                    s2 += (d0 * v0 + d1 * v1) + (d2 * v2 + d3 * v3)
                }
                storeVector(s1, sumG + c, lanes: lanes)
                storeVector(s2, sumGX + c, lanes: lanes)
            }
        }
    }
    // The rows of each chunk of whole images (one chunk unless `.chunked`) in order.
    let sums = saved.sums.pointer, chunks = sync.chunks, chunkRows = outputRows / chunks
    precondition(n % chunks == 0 && gradientChunks.count == chunks, "pooled batch norm backward: \(n) images in \(chunks) chunks")
    for j in 0..<chunks {
        let chunkSums = sums + j * 2 * channels
        addInOrder(chunkRows, partialsOf: 2 * channels, partials + j * chunkRows * 2 * channels,
                   into: chunkSums, chunkSums + channels)
    }
    let coefficients = saved.backwardCoefficients
    try batchNormBackwardCoefficients(scaleGradient: scaleGradient, shiftGradient: shiftGradient, sums: sums,
                                      coefficients: coefficients, scale: scale, mean: saved.mean.pointer,
                                      inverseStd: saved.inverseStd.pointer, globalCount: saved.globalCount,
                                      channels: channels, sync: sync, gradientChunks: gradientChunks)
    let k = UnsafePointer(coefficients), u = k + channels, v = u + channels
    parallelChunks(outputRows, minimumChunk: minimumChunk) { rows in
        for outputRow in rows {
            forEachWindow(outputRow: outputRow, height: height, width: width, channels: channels) { corner, out in
                forEachVectorSlice(channels) { c, lanes in
                    let offsets = (corner + c, corner + c + channels, corner + c + rowStride, corner + c + rowStride + channels)
                    let v0 = loadVector(x + offsets.0, lanes: lanes), v1 = loadVector(x + offsets.1, lanes: lanes)
                    let v2 = loadVector(x + offsets.2, lanes: lanes), v3 = loadVector(x + offsets.3, lanes: lanes)
                    let (d0, d1, d2, d3) = routedGradient(v0, v1, v2, v3, a: loadVector(a + c, lanes: lanes),
                                                          b: loadVector(b + c, lanes: lanes),
                                                          g: loadVector(pooledGradient + out + c, lanes: lanes))
                    let kc = loadVector(k + c, lanes: lanes), uc = loadVector(u + c, lanes: lanes)
                    let vc = loadVector(v + c, lanes: lanes)
                    storeVector(kc * d0 + uc * v0 + vc, inputGradient + offsets.0, lanes: lanes)
                    storeVector(kc * d1 + uc * v1 + vc, inputGradient + offsets.1, lanes: lanes)
                    storeVector(kc * d2 + uc * v2 + vc, inputGradient + offsets.2, lanes: lanes)
                    storeVector(kc * d3 + uc * v3 + vc, inputGradient + offsets.3, lanes: lanes)
                }
            }
        }
    }
}

extension BatchNormSaved {
    /// Batch norm, ReLU and 2×2 max pool of the conv output `input` (n, H, W, C) into `pooled`
    /// (n, H/2, W/2, C), in either mode as `forward(mode:…)`; the affine stays in `affine` for
    /// `batchNormReLUPoolBackward`.
    func forwardPooled(mode: ForwardMode, pooled: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                       scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                       runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
                       count n: Int, height: Int, width: Int, sync: BatchNormSync) throws {
        switch mode {
        case .training:
            globalCount = try batchNormTrainingStatistics(
                mean: mean.pointer, inverseStd: inverseStd.pointer, runningMean: runningMean, runningVariance: runningVariance,
                sums: sums.pointer, coefficients: affine, input: input, scale: scale, shift: shift,
                rows: n * height * width, channels: channels, sync: sync, name: name)
        case .inference:
            batchNormInferenceCoefficients(coefficients: affine, scale: scale, shift: shift, runningMean: runningMean,
                                           runningVariance: runningVariance, channels: channels)
        }
        batchNormReLUPoolForward(pooled: pooled, input: input, affine: affine, count: n, height: height, width: width,
                                 channels: channels)
    }
}
