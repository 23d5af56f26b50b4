import XBMKernels
// The first layer's 3×3 convolution from one input channel, computed directly: with Ci = 1
// a column row has only 9 entries, so im2col + sgemm would spend its time packing a k = 9
// product. Here each output position is 9 scalar-times-vector multiply-adds over the output
// channels, read from a zero-padded copy of the input so no tap needs a bounds check.
// Same maths and layouts as Convolution.swift: input (n, H, W), weight (Co, 3, 3, 1),
// output (n, H, W, Co); the padded copy is (n, H+2, W+2).

/// padded[i, y+1, x+1] = input[i, y, x], zero border.
@inline(never)
func padSingleChannel(padded: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count n: Int, height: Int, width: Int) {
    let paddedWidth = width + 2, paddedHeight = height + 2
    padded.update(repeating: 0, count: n * paddedHeight * paddedWidth)
    for i in 0..<n {
        for y in 0..<height {
            (padded + (i * paddedHeight + y + 1) * paddedWidth + 1).update(from: input + (i * height + y) * width, count: width)
        }
    }
}

/// output[i, y, x, o] = Σ_{ky, kx} weight[o, ky, kx] · padded[i, y+ky, x+kx].
/// `transposedWeight` is a workspace of 9·Co floats (the weight as (9, Co)). Four neighbouring
/// positions share each loaded weight vector (four accumulators); the taps are summed in the
/// same (ky, kx) order for every position.
@inline(never)
func conv3x3SingleChannelForward(output: UnsafeMutablePointer<Float>, transposedWeight: UnsafeMutablePointer<Float>,
                                 padded: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                 count n: Int, height: Int, width: Int, outputChannels co: Int) {
    for o in 0..<co { for t in 0..<9 { transposedWeight[t * co + o] = weight[o * 9 + t] } }
    let wt = UnsafePointer(transposedWeight), paddedWidth = width + 2
    parallelChunks(n * height, minimumChunk: max(1, 2048 / (width * co))) { imageRows in
        for imageRow in imageRows {
            let i = imageRow / height, y = imageRow % height
            let top = padded + (i * (height + 2) + y) * paddedWidth
            var x = 0
            while x + 4 <= width {
                let out = output + (imageRow * width + x) * co
                forEachVectorSlice(co) { o, lanes in
                    var s0 = FloatVector.zero, s1 = s0, s2 = s0, s3 = s0
                    for ky in 0..<3 {
                        let row = top + ky * paddedWidth + x
                        for kx in 0..<3 {
                            let w = loadVector(wt + (ky * 3 + kx) * co + o, lanes: lanes)
                            s0 += row[kx] * w
                            s1 += row[kx + 1] * w
                            s2 += row[kx + 2] * w
                            s3 += row[kx + 3] * w
                        }
                    }
                    storeVector(s0, out + o, lanes: lanes)
                    storeVector(s1, out + co + o, lanes: lanes)
                    storeVector(s2, out + 2 * co + o, lanes: lanes)
                    storeVector(s3, out + 3 * co + o, lanes: lanes)
                }
                x += 4
            }
            while x < width {
                let out = output + (imageRow * width + x) * co
                var o = 0
                while o < co {
                    let lanes = min(vectorWidth, co - o)
                    var sum = FloatVector.zero
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let tap = top[ky * paddedWidth + x + kx], row = wt + (ky * 3 + kx) * co + o
                            sum += tap * loadVector(row, lanes: lanes)
                        }
                    }
                    storeVector(sum, out + o, lanes: lanes)
                    o += lanes
                }
                x += 1
            }
        }
    }
}

/// Adds dWeight[o, ky, kx] += Σ_{i, y, x} dOutput[i, y, x, o] · padded[i, y+ky, x+kx].
/// Groups of 16 output channels go to different threads; each keeps its nine partial sums
/// in registers for one image at a time, then adds them to the total (its chunk's, with
/// several `chunks`).
@inline(never)
func conv3x3SingleChannelBackward(weightGradient: UnsafeMutablePointer<Float>, outputGradient: UnsafePointer<Float>,
                                  padded: UnsafePointer<Float>, count n: Int, height: Int, width: Int, outputChannels co: Int,
                                  chunks: GradientChunks = .whole) {
    let groups = (co + vectorWidth - 1) / vectorWidth, paddedWidth = width + 2
    precondition(n % chunks.count == 0, "conv backward: \(n) images are not \(chunks.count) equal chunks")
    let imagesPerChunk = n / chunks.count
    parallelChunks(groups, minimumChunk: 1) { groupRange in
        for group in groupRange {
            let o0 = group * vectorWidth, lanes = min(vectorWidth, co - o0)
            for i in 0..<n {
                var s0 = FloatVector.zero, s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0, s8 = s0
                for y in 0..<height {
                    let r0 = padded + (i * (height + 2) + y) * paddedWidth, r1 = r0 + paddedWidth, r2 = r1 + paddedWidth
                    for x in 0..<width {
                        let g = outputGradient + ((i * height + y) * width + x) * co + o0
                        let gradient = loadVector(g, lanes: lanes)
                        s0 += r0[x] * gradient; s1 += r0[x + 1] * gradient; s2 += r0[x + 2] * gradient
                        s3 += r1[x] * gradient; s4 += r1[x + 1] * gradient; s5 += r1[x + 2] * gradient
                        s6 += r2[x] * gradient; s7 += r2[x + 1] * gradient; s8 += r2[x + 2] * gradient
                    }
                }
                // A chunk that writes its gradient starts from zero at its first image.
                let starts = chunks.writes && i % imagesPerChunk == 0
                for lane in 0..<lanes {
                    let d = weightGradient + (i / imagesPerChunk) * chunks.stride + (o0 + lane) * 9
                    if starts { d.update(repeating: 0, count: 9) }
                    d[0] += s0[lane]; d[1] += s1[lane]; d[2] += s2[lane]
                    d[3] += s3[lane]; d[4] += s4[lane]; d[5] += s5[lane]
                    d[6] += s6[lane]; d[7] += s7[lane]; d[8] += s8[lane]
                }
            }
        }
    }
}
