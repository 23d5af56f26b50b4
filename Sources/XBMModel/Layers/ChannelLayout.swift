import XBMKernels
// Channels-first input to channel-last activations. A dataset stores a C-channel image as
// (C, H, W) (C order per sample, as NumPy and PyTorch do); the convolutions work on (n, H, W, C)
// (Docs/numerics.md). For C = 1 both layouts are the same bytes and no copy is needed.
// The input is data, so there is no backward.

/// output[i, y, x, c] = input[i, c, y, x] for (n, C, H, W) → (n, H, W, C).
@inline(never)
func channelsFirstToLast(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                         count n: Int, channels: Int, height: Int, width: Int) {
    let plane = height * width
    parallelChunks(n, minimumChunk: 1) { images in
        for i in images {
            let source = input + i * channels * plane, destination = output + i * plane * channels
            for c in 0..<channels {
                let sourcePlane = source + c * plane
                for position in 0..<plane { destination[position * channels + c] = sourcePlane[position] }
            }
        }
    }
}
