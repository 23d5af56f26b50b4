import Foundation
import TestSupport
import XBMData
import XCTest

/// The training shift (Docs/data.md): out[c, y, x] = in[c, y − dy, x − dx], zero outside.
final class AugmentTests: XCTestCase {
    // Two samples of 2 channels × 4 rows × 5 columns; value = 1 + sample·40 + c·20 + y·5 + x.
    func makeDataset() throws -> Dataset {
        let dir = makeScratchDirectory()
        let pixels = (0..<80).map { UInt8(1 + $0) }
        try Dataset.write(directory: dir, images: pixels, imageShape: [2, 4, 5], labels: [0, 1], split: [0, 0], meta: [:])
        return try Dataset.load(directory: dir)
    }

    func fill(_ dataset: Dataset, _ indices: [Int32], _ shifts: [Int8]) -> [Float] {
        var out = [Float](repeating: .nan, count: indices.count * dataset.sampleSize)
        indices.withUnsafeBufferPointer { i in
            shifts.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { dataset.fill(indices: i, shifts: s, into: $0.baseAddress!) }
            }
        }
        return out
    }

    func testShiftMovesContentAndFillsZeros() throws {
        let dataset = try makeDataset()
        // Sample 1 moved right by 2 and up by 1: row y shows source row y+1, column x source x−2.
        let out = fill(dataset, [1], [2, -1])
        for c in 0..<2 {
            for y in 0..<4 {
                for x in 0..<5 {
                    let sy = y + 1, sx = x - 2
                    let expected: Float = (sy < 4 && sx >= 0) ? Float(1 + 40 + c * 20 + sy * 5 + sx) / 255 : 0
                    XCTAssertEqual(out[(c * 4 + y) * 5 + x], expected, "c \(c) y \(y) x \(x)")
                }
            }
        }
    }

    func testZeroShiftEqualsNoShiftAndEachSampleUsesItsOwnShift() throws {
        let dataset = try makeDataset()
        XCTAssertEqual(fill(dataset, [0, 1], [0, 0, 0, 0]), fillUnshifted(dataset, [0, 1]))
        XCTAssertEqual(fillUnshifted(dataset, [1])[0], Float(41) / 255)
        let both = fill(dataset, [0, 0], [-2, 2, 1, 0])
        let first = fill(dataset, [0], [-2, 2])
        let second = fill(dataset, [0], [1, 0])
        XCTAssertEqual(both, first + second)
        XCTAssertNotEqual(first, second)
        // Extreme shift keeps exactly (H − 2)·(W − 2) source pixels per channel.
        XCTAssertEqual(first.filter { $0 != 0 }.count, 2 * (4 - 2) * (5 - 2))
    }

    func fillUnshifted(_ dataset: Dataset, _ indices: [Int32]) -> [Float] {
        var out = [Float](repeating: .nan, count: indices.count * dataset.sampleSize)
        indices.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { dataset.fill(indices: i, shifts: nil, into: $0.baseAddress!) } }
        return out
    }

    func testSampledShiftsFeedFillWithinRange() throws {
        let dataset = try makeDataset()
        var sampler = try PKSampler(labels: dataset.labels, indices: dataset.indices(.train), batchSize: 4, instances: 2, seed: 3)
        var batch = GlobalBatch(batchSize: 4)
        for _ in 0..<20 {
            sampler.next(into: &batch)
            XCTAssertTrue(batch.shifts.allSatisfy { (-2...2).contains($0) })
            let out = fill(dataset, batch.indices, batch.shifts)
            XCTAssertTrue(out.allSatisfy { $0 >= 0 && $0 <= 1 })
        }
    }
}
