import Collectives
import XBMKernels
// 3×3 convolution, padding 1, stride 1, no bias, by Winograd's minimal filtering F(2×2, 3×3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Same maths and
// layouts as Convolution.swift: input (n, H, W, Ci), weight (Co, 3, 3, Ci), output (n, H, W, Co);
// here H and W must be even.
//
// Each 2×2 block of outputs ("tile" t, T = n·(H/2)·(W/2) of them) reads a 4×4 window d of the
// zero-padded input starting one row and column before it. In one dimension, with
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//   Aᵀ = [1 1 1 0; 0 1 −1 −1],
// y = Aᵀ[(G g) ⊙ (Bᵀ d)] computes y_j = Σ_k g_k d_{j+k} with 4 products instead of 6; nested
// over both dimensions, 16 instead of 36. Per tile and channel pair the forward is
//   V = Bᵀ d B (4×4),  U = G g Gᵀ (4×4),  M = Σ_ci U ⊙ V,  Y = Aᵀ M A (2×2),
// and the sum over ci at each of the 16 positions ξ of the 4×4 transform is a product:
//   M_ξ (T, Co) = V_ξ (T, Ci) · U_ξᵀ, U_ξ stored (Co, Ci)   — 16 sgemms, 2.25× fewer
//                                                  multiply-adds than the 9·Ci-long im2col product.
// The backward is the exact adjoint of these four linear steps (so it is the gradient of what
// the forward computed, rounding included up to Float sums):
//   dM = A dY Aᵀ  (4×4 from each tile's 2×2 output gradient)
//   dU_ξ (Co, Ci) = dM_ξᵀ · V_ξ,  dWeight += Gᵀ dU G  (3×3 from 4×4)
//   dV_ξ (T, Ci)  = dM_ξ · U_ξ,   dInput = Σ_tiles B dV Bᵀ added into each tile's 4×4 window.
// The transforms work on channel vectors: channels are the contiguous NHWC axis, so a tile's
// 16 window taps are 16 vector loads and its 16 transformed values 16 vector stores.
//
// Rounding: the transforms add at most four terms with coefficients ±1 or ±½, so the result
// differs from the direct sum by a few Float roundings of the window's magnitude — the same
// order as a different summation order of the im2col product (tested against the Double
// reference in WinogradTests).

/// The buffers of one Winograd convolution layer, sized for `maxBatch` samples. V keeps the
/// forward's transformed input for the weight gradient, M the backward's dM.
///
/// Two ways to spread the 16 products over threads, chosen from the sizes alone (never from
/// the thread count, so the bits do not depend on it):
/// - by groups of images, when the batch makes at least two: per group the input transform,
///   the 16 products into a scratch small enough for the core's cache, and the output
///   transform from there (the backward's dV likewise);
/// - by transform position ξ otherwise (the last blocks, a few tiles per image): each thread
///   runs whole products over all tiles into the full M (and V), so U is packed once per ξ
///   rather than once per group — with few tiles per group, packing U would cost as much as
///   the product.
/// dU always sums over all tiles per ξ, one ξ per thread.
final class WinogradWorkspace {
    let inputChannels: Int, outputChannels: Int, height: Int, width: Int, maxBatch: Int
    let tilesPerImage: Int
    /// Images per group: the group's 16 planes of products, 16·tiles·max(Ci, Co) floats,
    /// stay within `groupScratchFloats`, but a group has at least max(Ci, Co) tiles (so its
    /// own rows outweigh U's Ci·Co in each product's packing).
    let imagesPerGroup: Int
    let transformedInput: FlatBuffer<Float>   // V: (16, T, Ci)
    let products: FlatBuffer<Float>           // M (by ξ), then dM: (16, T, Co)
    let transformedWeight: FlatBuffer<Float>  // U: (16, Co, Ci)
    let transformedWeightGradient: FlatBuffer<Float>  // dU: (16, Co, Ci)

    /// 128 Ki floats (512 KiB), half the L2 of a core of the development machine; 128 Ki to
    /// 1 Mi floats measured alike there, 4 Mi (one group for the last block) was slower.
    static let groupScratchFloats = 128 * 1024

    /// Whether F(2×2, 3×3) applies: even sizes, and enough input channels for the 16
    /// products to be worth their transforms (the colour first layer, Ci = 3, keeps im2col).
    static func applies(inputChannels: Int, height: Int, width: Int) -> Bool {
        inputChannels >= 8 && height % 2 == 0 && width % 2 == 0
    }

    /// `imagesPerGroup` overrides the size rule (tests take both ways on small layers).
    init(inputChannels: Int, outputChannels: Int, height: Int, width: Int, maxBatch: Int, imagesPerGroup: Int? = nil) {
        precondition(height % 2 == 0 && width % 2 == 0, "Winograd F(2×2, 3×3) needs even sizes, got \(height)×\(width)")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.height = height
        self.width = width
        self.maxBatch = maxBatch
        tilesPerImage = (height / 2) * (width / 2)
        let widest = max(inputChannels, outputChannels)
        self.imagesPerGroup = imagesPerGroup ?? max(1, WinogradWorkspace.groupScratchFloats / (16 * tilesPerImage * widest),
                                                    (widest + tilesPerImage - 1) / tilesPerImage)
        let tiles = maxBatch * tilesPerImage
        transformedInput = FlatBuffer(count: 16 * tiles * inputChannels)
        products = FlatBuffer(count: 16 * tiles * outputChannels)
        transformedWeight = FlatBuffer(count: 16 * inputChannels * outputChannels)
        transformedWeightGradient = FlatBuffer(count: 16 * inputChannels * outputChannels)
    }

    /// Whether a batch of n images goes by groups (at least two of them) or by ξ.
    func usesGroups(_ n: Int) -> Bool { n >= 2 * imagesPerGroup }

    /// Calls `body(first image, image count)` for contiguous ranges of n images spread over
    /// the threads, for the transforms of the by-ξ way.
    func forEachImageRange(_ n: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
        parallelChunks(n, minimumChunk: 1) { images in
            body(images.lowerBound, images.count)
        }
    }

    /// Calls `body(first image, image count, scratch)` for the groups of n images, the groups
    /// spread over the threads (`parallelProducts`), each thread with a scratch of
    /// 16·tiles·max(Ci, Co) floats for its groups.
    func forEachGroup(_ n: Int, _ body: (_ first: Int, _ count: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void) {
        let groups = (n + imagesPerGroup - 1) / imagesPerGroup
        let scratchCount = 16 * imagesPerGroup * tilesPerImage * max(inputChannels, outputChannels)
        parallelProducts(groups, threads: productThreads) { groupRange in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scratch.deallocate() }
            for group in groupRange {
                let first = group * imagesPerGroup
                body(first, min(imagesPerGroup, n - first), scratch)
            }
        }
    }
}

/// output (n, H, W, Co) = input (n, H, W, Ci) ⋆ weight (Co, 3, 3, Ci), zero padding 1, as
/// `conv3x3Forward`, by groups of images or by ξ (`WinogradWorkspace`). On return the
/// workspace holds V and U for `winogradBackward`.
@inline(never)
func winogradForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                     count n: Int, workspace w: WinogradWorkspace) {
    precondition(n >= 1 && n <= w.maxBatch, "winogradForward: count \(n) outside 1...\(w.maxBatch)")
    let ci = w.inputChannels, co = w.outputChannels, tiles = n * w.tilesPerImage, pixels = w.height * w.width
    let v = w.transformedInput.pointer, u = w.transformedWeight.pointer
    winogradWeightTransform(transformed: u, weight: weight, inputChannels: ci, outputChannels: co)
    guard w.usesGroups(n) else {
        let m = w.products.pointer
        w.forEachImageRange(n) { first, images in
            winogradInputTransform(transformed: v + first * w.tilesPerImage * ci, plane: tiles * ci,
                                   input: input + first * pixels * ci, images: images,
                                   height: w.height, width: w.width, channels: ci)
        }
        parallelProducts(16, threads: productThreads) { planes in
            for xi in planes {
                gemm(.none, .transposed, m: tiles, n: co, k: ci, a: v + xi * tiles * ci, lda: ci,
                     b: u + xi * co * ci, ldb: ci, c: m + xi * tiles * co, ldc: co)
            }
        }
        w.forEachImageRange(n) { first, images in
            winogradOutputTransform(output: output + first * pixels * co, products: m + first * w.tilesPerImage * co,
                                    plane: tiles * co, images: images, height: w.height, width: w.width, channels: co)
        }
        return
    }
    w.forEachGroup(n) { first, images, m in
        let t0 = first * w.tilesPerImage, groupTiles = images * w.tilesPerImage
        winogradInputTransform(transformed: v + t0 * ci, plane: tiles * ci, input: input + first * pixels * ci,
                               images: images, height: w.height, width: w.width, channels: ci)
        for xi in 0..<16 {
            gemm(.none, .transposed, m: groupTiles, n: co, k: ci, a: v + xi * tiles * ci + t0 * ci, lda: ci,
                 b: u + xi * co * ci, ldb: ci, c: m + xi * groupTiles * co, ldc: co)
        }
        winogradOutputTransform(output: output + first * pixels * co, products: m, plane: groupTiles * co,
                                images: images, height: w.height, width: w.width, channels: co)
    }
}

/// Gradients of `winogradForward` (its workspace as the forward left it): *adds* the weight
/// gradient, *writes* the input gradient (nil skips it). dM for all tiles, then dU_ξ over all
/// tiles per ξ (each ξ on one thread, so the sum over tiles does not depend on the thread
/// count), then dV and the input transform's adjoint, by groups of images (dV in the scratch) or by ξ.
@inline(never)
func winogradBackward(inputGradient: UnsafeMutablePointer<Float>?, weightGradient: UnsafeMutablePointer<Float>,
                      outputGradient: UnsafePointer<Float>, count n: Int, workspace w: WinogradWorkspace,
                      chunks: GradientChunks = .whole) {
    precondition(n >= 1 && n <= w.maxBatch, "winogradBackward: count \(n) outside 1...\(w.maxBatch)")
    let ci = w.inputChannels, co = w.outputChannels, tiles = n * w.tilesPerImage, pixels = w.height * w.width
    let v = w.transformedInput.pointer, dm = w.products.pointer
    let u = w.transformedWeight.pointer, du = w.transformedWeightGradient.pointer
    parallelChunks(n, minimumChunk: max(1, 4096 / (pixels * co))) { images in
        let first = images.lowerBound
        winogradOutputTransformAdjoint(products: dm + first * w.tilesPerImage * co, plane: tiles * co,
                                       outputGradient: outputGradient + first * pixels * co, images: images.count,
                                       height: w.height, width: w.width, channels: co)
    }
    // dU = dMᵀ V per plane, then back to dW: over all tiles, the planes split over the threads;
    // or, with chunks, per chunk's tiles, whole chunks split over the threads (each with a dU of
    // its own, cleared by the adjoint as it reads it, so that the next chunk's products add
    // into zeros instead of BLAS clearing dU in a pass of its own).
    precondition(n % chunks.count == 0, "winogradBackward: \(n) images are not \(chunks.count) equal chunks")
    if chunks.count == 1 {
        parallelProducts(16, threads: productThreads) { planes in
            for xi in planes {
                gemm(.transposed, .none, m: co, n: ci, k: tiles, a: dm + xi * tiles * co, lda: co,
                     b: v + xi * tiles * ci, ldb: ci, c: du + xi * co * ci, ldc: ci)
            }
        }
        winogradWeightTransformAdjoint(weightGradient: weightGradient, transformed: du, inputChannels: ci, outputChannels: co,
                                       writes: chunks.writes)
    } else {
        parallelProducts(chunks.count, threads: productThreads) { chunkRange in
            let own = UnsafeMutablePointer<Float>.allocate(capacity: 16 * co * ci)
            defer { own.deallocate() }
            for j in chunkRange {
                let chunkTiles = chunks.range(j, of: tiles), beta: Float = j == chunkRange.lowerBound ? 0 : 1
                for xi in 0..<16 {
                    gemm(.transposed, .none, m: co, n: ci, k: chunkTiles.count, a: dm + xi * tiles * co + chunkTiles.lowerBound * co,
                         lda: co, b: v + xi * tiles * ci + chunkTiles.lowerBound * ci, ldb: ci, beta: beta, c: own + xi * co * ci, ldc: ci)
                }
                winogradWeightTransformAdjoint(weightGradient: weightGradient + j * chunks.stride, transformed: own,
                                               inputChannels: ci, outputChannels: co, writes: chunks.writes,
                                               clearsTransformed: j + 1 < chunkRange.upperBound)
            }
        }
    }
    guard let inputGradient else { return }
    guard w.usesGroups(n) else {
        // dV over all tiles into V, whose forward values dU no longer needs.
        parallelProducts(16, threads: productThreads) { planes in
            for xi in planes {
                gemm(.none, .none, m: tiles, n: ci, k: co, a: dm + xi * tiles * co, lda: co,
                     b: u + xi * co * ci, ldb: ci, c: v + xi * tiles * ci, ldc: ci)
            }
        }
        w.forEachImageRange(n) { first, images in
            winogradInputTransformAdjoint(inputGradient: inputGradient + first * pixels * ci,
                                          transformed: v + first * w.tilesPerImage * ci, plane: tiles * ci,
                                          images: images, height: w.height, width: w.width, channels: ci)
        }
        return
    }
    w.forEachGroup(n) { first, images, dv in
        let t0 = first * w.tilesPerImage, groupTiles = images * w.tilesPerImage
        for xi in 0..<16 {
            gemm(.none, .none, m: groupTiles, n: ci, k: co, a: dm + xi * tiles * co + t0 * co, lda: co,
                 b: u + xi * co * ci, ldb: ci, c: dv + xi * groupTiles * ci, ldc: ci)
        }
        winogradInputTransformAdjoint(inputGradient: inputGradient + first * pixels * ci, transformed: dv,
                                      plane: groupTiles * ci, images: images, height: w.height, width: w.width, channels: ci)
    }
}

// MARK: - The one-dimensional transforms, on four (or two, or three) values

/// Bᵀ d: (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
@inline(__always)
private func inputRows<V: SIMD>(_ d0: V, _ d1: V, _ d2: V, _ d3: V) -> (V, V, V, V) where V.Scalar: FloatingPoint {
    (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
}

/// B v, the adjoint of Bᵀ: (v0, v1 − v2 + v3, −v0 + v1 + v2, −v3).
@inline(__always)
private func inputRowsAdjoint<V: SIMD>(_ v0: V, _ v1: V, _ v2: V, _ v3: V) -> (V, V, V, V) where V.Scalar: FloatingPoint {
    (v0, v1 - v2 + v3, v1 + v2 - v0, V.zero - v3)
}

/// Aᵀ m: (m0 + m1 + m2, m1 − m2 − m3).
@inline(__always)
private func outputRows<V: SIMD>(_ m0: V, _ m1: V, _ m2: V, _ m3: V) -> (V, V) where V.Scalar: FloatingPoint {
    (m0 + m1 + m2, m1 - m2 - m3)
}

/// A y, the adjoint of Aᵀ: (y0, y0 + y1, y0 − y1, −y1).
@inline(__always)
private func outputRowsAdjoint<V: SIMD>(_ y0: V, _ y1: V) -> (V, V, V, V) where V.Scalar: FloatingPoint {
    (y0, y0 + y1, y0 - y1, V.zero - y1)
}

/// G g: (g0, ½(g0 + g1 + g2), ½(g0 − g1 + g2), g2).
@inline(__always)
private func weightRows(_ g0: FloatVector, _ g1: FloatVector, _ g2: FloatVector)
    -> (FloatVector, FloatVector, FloatVector, FloatVector) {
    (g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2)
}

/// Gᵀ u, the adjoint of G: (u0 + ½(u1 + u2), ½(u1 − u2), ½(u1 + u2) + u3).
@inline(__always)
private func weightRowsAdjoint(_ u0: FloatVector, _ u1: FloatVector, _ u2: FloatVector, _ u3: FloatVector)
    -> (FloatVector, FloatVector, FloatVector) {
    let half = (u1 + u2) * 0.5
    return (u0 + half, (u1 - u2) * 0.5, half + u3)
}

// MARK: - Weights
//
// One output channel per work item, 16 input channels per vector: the weight's nine taps of
// (o, ·, ·, c…c+15) and U's sixteen planes at (o, c…c+15) are contiguous runs.

/// U[ξ, o, c] = (G g Gᵀ)[ξ] with g = weight[o, ·, ·, c]; ξ = 4a + b.
@inline(never)
func winogradWeightTransform(transformed u: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>,
                             inputChannels ci: Int, outputChannels co: Int) {
    let plane = co * ci
    parallelChunks(co, minimumChunk: max(1, 4096 / (16 * ci))) { outputs in
        for o in outputs {
            let g = weight + o * 9 * ci
            forEachVectorSlice(ci) { c, lanes in
                func tap(_ k: Int) -> FloatVector { loadVector(g + k * ci + c, lanes: lanes) }
                // Along ky for each kx: column kx of G g.
                let k0 = weightRows(tap(0), tap(3), tap(6))
                let k1 = weightRows(tap(1), tap(4), tap(7))
                let k2 = weightRows(tap(2), tap(5), tap(8))
                // Then along kx for each row a of G g: U[4a + b].
                func store(_ a: Int, _ row: (FloatVector, FloatVector, FloatVector, FloatVector)) {
                    let base = u + 4 * a * plane + o * ci + c
                    storeVector(row.0, base, lanes: lanes)
                    storeVector(row.1, base + plane, lanes: lanes)
                    storeVector(row.2, base + 2 * plane, lanes: lanes)
                    storeVector(row.3, base + 3 * plane, lanes: lanes)
                }
                store(0, weightRows(k0.0, k1.0, k2.0))
                store(1, weightRows(k0.1, k1.1, k2.1))
                store(2, weightRows(k0.2, k1.2, k2.2))
                store(3, weightRows(k0.3, k1.3, k2.3))
            }
        }
    }
}

/// weightGradient[o, ky, kx, c] += (Gᵀ dU[·, o, c] G)[ky, kx] (= with `writes`), the adjoint of
/// `winogradWeightTransform`; `clearsTransformed` leaves dU zero behind it.
@inline(never)
func winogradWeightTransformAdjoint(weightGradient: UnsafeMutablePointer<Float>, transformed du: UnsafeMutablePointer<Float>,
                                    inputChannels ci: Int, outputChannels co: Int, writes: Bool = false,
                                    clearsTransformed: Bool = false) {
    let plane = co * ci
    parallelChunks(co, minimumChunk: max(1, 4096 / (16 * ci))) { outputs in
        for o in outputs {
            let g = weightGradient + o * 9 * ci
            forEachVectorSlice(ci) { c, lanes in
                let base = du + o * ci + c
                // Along b for each row a: s_a = dU[a][·] G (3 values).
                func row(_ a: Int) -> (FloatVector, FloatVector, FloatVector) {
                    weightRowsAdjoint(loadVector(base + 4 * a * plane, lanes: lanes),
                                      loadVector(base + (4 * a + 1) * plane, lanes: lanes),
                                      loadVector(base + (4 * a + 2) * plane, lanes: lanes),
                                      loadVector(base + (4 * a + 3) * plane, lanes: lanes))
                }
                let s0 = row(0), s1 = row(1), s2 = row(2), s3 = row(3)
                if clearsTransformed {
                    for xi in 0..<16 { storeVector(.zero, base + xi * plane, lanes: lanes) }
                }
                // Then along a for each kx; tap k = 3·ky + kx.
                func add(_ k: Int, _ value: FloatVector) {
                    let target = g + k * ci + c
                    storeVector(writes ? value : loadVector(target, lanes: lanes) + value, target, lanes: lanes)
                }
                let c0 = weightRowsAdjoint(s0.0, s1.0, s2.0, s3.0)
                let c1 = weightRowsAdjoint(s0.1, s1.1, s2.1, s3.1)
                let c2 = weightRowsAdjoint(s0.2, s1.2, s2.2, s3.2)
                add(0, c0.0); add(1, c1.0); add(2, c2.0)
                add(3, c0.1); add(4, c1.1); add(5, c2.1)
                add(6, c0.2); add(7, c1.2); add(8, c2.2)
            }
        }
    }
}

// MARK: - Inputs and outputs
//
// Each transform runs on one thread over `images` consecutive images, their tiles numbered
// from 0 (t = (image·H/2 + ty)·W/2 + tx) and the 16 planes of the transformed side `plane`
// floats apart. It keeps the vectors of one tile and channel slice in a stack scratch.

/// Calls `body(image, ty, tx, t, c, lanes, scratch)` for every tile of `images` images, in
/// order, and every 16-channel slice of it, with a stack scratch of `scratchVectors` vectors.
@inline(__always)
private func forEachTileSlice(images: Int, height: Int, width: Int, channels: Int, scratchVectors: Int,
                              _ body: (_ image: Int, _ ty: Int, _ tx: Int, _ t: Int, _ c: Int, _ lanes: Int,
                                       _ scratch: UnsafeMutablePointer<FloatVector>) -> Void) {
    let tileRows = height / 2, tileColumns = width / 2
    withUnsafeTemporaryAllocation(of: FloatVector.self, capacity: scratchVectors) { scratch in
        for rowOfTiles in 0..<images * tileRows {
            for tx in 0..<tileColumns {
                forEachVectorSlice(channels) { c, lanes in
                    body(rowOfTiles / tileRows, rowOfTiles % tileRows, tx, rowOfTiles * tileColumns + tx, c, lanes,
                         scratch.baseAddress!)
                }
            }
        }
    }
}

/// V[ξ, t, c] = (Bᵀ d B)[ξ] with d the 4×4 window of `input` (zero outside) at tile t.
@inline(never)
func winogradInputTransform(transformed v: UnsafeMutablePointer<Float>, plane: Int, input: UnsafePointer<Float>,
                            images: Int, height: Int, width: Int, channels: Int) {
    forEachTileSlice(images: images, height: height, width: width, channels: channels,
                     scratchVectors: 16) { i, ty, tx, t, c, lanes, d in
        let image = input + i * height * width * channels
        // d[4r + s] = input at (2ty − 1 + r, 2tx − 1 + s), zero outside.
        for r in 0..<4 {
            let y = 2 * ty - 1 + r
            for s in 0..<4 {
                let x = 2 * tx - 1 + s
                d[4 * r + s] = y >= 0 && y < height && x >= 0 && x < width
                    ? loadVector(image + (y * width + x) * channels + c, lanes: lanes) : .zero
            }
        }
        // Bᵀ along r for each column s, then along s for each row a.
        for s in 0..<4 {
            (d[s], d[4 + s], d[8 + s], d[12 + s]) = inputRows(d[s], d[4 + s], d[8 + s], d[12 + s])
        }
        for a in 0..<4 {
            let (v0, v1, v2, v3) = inputRows(d[4 * a], d[4 * a + 1], d[4 * a + 2], d[4 * a + 3])
            let base = v + 4 * a * plane + t * channels + c
            storeVector(v0, base, lanes: lanes)
            storeVector(v1, base + plane, lanes: lanes)
            storeVector(v2, base + 2 * plane, lanes: lanes)
            storeVector(v3, base + 3 * plane, lanes: lanes)
        }
    }
}

/// inputGradient = Σ_t (B dV[·, t, ·] Bᵀ) placed at tile t's window (inside the image only),
/// the adjoint of `winogradInputTransform`. Overwrites the images' `inputGradient`.
@inline(never)
func winogradInputTransformAdjoint(inputGradient: UnsafeMutablePointer<Float>, transformed dv: UnsafePointer<Float>,
                                   plane: Int, images: Int, height: Int, width: Int, channels: Int) {
    inputGradient.update(repeating: 0, count: images * height * width * channels)
    forEachTileSlice(images: images, height: height, width: width, channels: channels,
                     scratchVectors: 16) { i, ty, tx, t, c, lanes, d in
        let image = inputGradient + i * height * width * channels
        // B along b for each row a, then along a for each column s.
        for a in 0..<4 {
            let base = dv + 4 * a * plane + t * channels + c
            (d[4 * a], d[4 * a + 1], d[4 * a + 2], d[4 * a + 3]) = inputRowsAdjoint(
                loadVector(base, lanes: lanes), loadVector(base + plane, lanes: lanes),
                loadVector(base + 2 * plane, lanes: lanes), loadVector(base + 3 * plane, lanes: lanes))
        }
        for s in 0..<4 {
            (d[s], d[4 + s], d[8 + s], d[12 + s]) = inputRowsAdjoint(d[s], d[4 + s], d[8 + s], d[12 + s])
        }
        for r in 0..<4 {
            let y = 2 * ty - 1 + r
            guard y >= 0 && y < height else { continue }
            for s in 0..<4 {
                let x = 2 * tx - 1 + s
                guard x >= 0 && x < width else { continue }
                let target = image + (y * width + x) * channels + c
                storeVector(loadVector(target, lanes: lanes) + d[4 * r + s], target, lanes: lanes)
            }
        }
    }
}

/// output at tile t's 2×2 block = Aᵀ M[·, t, ·] A.
@inline(never)
func winogradOutputTransform(output: UnsafeMutablePointer<Float>, products m: UnsafePointer<Float>, plane: Int,
                             images: Int, height: Int, width: Int, channels: Int) {
    forEachTileSlice(images: images, height: height, width: width, channels: channels,
                     scratchVectors: 8) { i, ty, tx, t, c, lanes, q in
        let image = output + i * height * width * channels
        // Aᵀ along b for each row a (q[2a + j]), then along a for each output column j.
        for a in 0..<4 {
            let base = m + 4 * a * plane + t * channels + c
            (q[2 * a], q[2 * a + 1]) = outputRows(
                loadVector(base, lanes: lanes), loadVector(base + plane, lanes: lanes),
                loadVector(base + 2 * plane, lanes: lanes), loadVector(base + 3 * plane, lanes: lanes))
        }
        for j in 0..<2 {
            let (y0, y1) = outputRows(q[j], q[2 + j], q[4 + j], q[6 + j])
            storeVector(y0, image + ((2 * ty) * width + 2 * tx + j) * channels + c, lanes: lanes)
            storeVector(y1, image + ((2 * ty + 1) * width + 2 * tx + j) * channels + c, lanes: lanes)
        }
    }
}

/// dM[·, t, ·] = A dY Aᵀ with dY tile t's 2×2 block of `outputGradient`, the adjoint of
/// `winogradOutputTransform`.
@inline(never)
func winogradOutputTransformAdjoint(products dm: UnsafeMutablePointer<Float>, plane: Int, outputGradient: UnsafePointer<Float>,
                                    images: Int, height: Int, width: Int, channels: Int) {
    forEachTileSlice(images: images, height: height, width: width, channels: channels,
                     scratchVectors: 8) { i, ty, tx, t, c, lanes, p in
        let image = outputGradient + i * height * width * channels
        // A along the output row i for each column j (p[2a + j]), then along j for each a.
        for j in 0..<2 {
            let top = loadVector(image + ((2 * ty) * width + 2 * tx + j) * channels + c, lanes: lanes)
            let bottom = loadVector(image + ((2 * ty + 1) * width + 2 * tx + j) * channels + c, lanes: lanes)
            (p[j], p[2 + j], p[4 + j], p[6 + j]) = outputRowsAdjoint(top, bottom)
        }
        for a in 0..<4 {
            let (m0, m1, m2, m3) = outputRowsAdjoint(p[2 * a], p[2 * a + 1])
            let base = dm + 4 * a * plane + t * channels + c
            storeVector(m0, base, lanes: lanes)
            storeVector(m1, base + plane, lanes: lanes)
            storeVector(m2, base + 2 * plane, lanes: lanes)
            storeVector(m3, base + 3 * plane, lanes: lanes)
        }
    }
}

/// The threads independent products (Winograd's planes, the chunks of `--deterministic`) may
/// split over: OpenBLAS' whole budget, or 1 while simulated ranks share this process
/// (`parallelProducts` switches OpenBLAS' process-wide thread count; Docs/numerics.md).
var productThreads: Int { SimulatedRanks.activeRanks <= 1 ? BLASThreads.current : 1 }
