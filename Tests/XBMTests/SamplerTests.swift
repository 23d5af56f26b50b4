import Foundation
import XBMData
import XCTest

final class SamplerTests: XCTestCase {
    // 10 classes: class c has c + 1 samples (classes 0, 1, 2 have fewer than K = 4), plus
    // samples of classes 10 and 11 outside the training subset.
    let labels: [Int32] = (0..<10).flatMap { c in [Int32](repeating: Int32(c), count: c + 1) } + [10, 10, 11, 11]
    var training: [Int] { Array(0..<55) }

    func testEveryBatchHasDistinctClassesWithKInstances() throws {
        var sampler = try PKSampler(labels: labels, indices: training, batchSize: 12, instances: 4, seed: 1)
        var batch = GlobalBatch(batchSize: 12)
        var classCounts = [Int](repeating: 0, count: 12)
        for _ in 0..<1500 {
            sampler.next(into: &batch)
            var seen = Set<Int32>()
            for p in 0..<3 {
                let rows = (4 * p)..<(4 * p + 4)
                let c = batch.labels[rows.lowerBound]
                XCTAssertTrue(seen.insert(c).inserted, "class \(c) twice in a batch")
                classCounts[Int(c)] += 1
                for r in rows {
                    XCTAssertEqual(batch.labels[r], c)
                    XCTAssertEqual(labels[Int(batch.indices[r])], c, "label matches the sample")
                    XCTAssertLessThan(batch.indices[r], 55, "only training samples")
                }
                let members = Set(rows.map { batch.indices[$0] })
                if c >= 3 {
                    XCTAssertEqual(members.count, 4, "class \(c) has ≥ K samples: no repeats")
                } else {
                    XCTAssertLessThanOrEqual(members.count, Int(c) + 1)  // pigeonhole: repeats are forced
                }
            }
        }
        // Uniform choice of 3 of 10 classes: 1500 · 3/10 = 450 expected each, s.d. ≈ 17.7.
        for c in 0..<10 { XCTAssertEqual(Double(classCounts[c]), 450, accuracy: 90, "class \(c)") }
        XCTAssertEqual(classCounts[10] + classCounts[11], 0)
    }

    func testInstancesWithinALargeClassAreUniform() throws {
        // Two classes of 8; K = 2: each member should appear about equally often.
        let labels: [Int32] = [Int32](repeating: 0, count: 8) + [Int32](repeating: 1, count: 8)
        var sampler = try PKSampler(labels: labels, indices: Array(0..<16), batchSize: 4, instances: 2, seed: 9)
        var batch = GlobalBatch(batchSize: 4)
        var hits = [Int](repeating: 0, count: 16)
        for _ in 0..<4000 {
            sampler.next(into: &batch)
            for i in batch.indices { hits[Int(i)] += 1 }
        }
        // Each sample: 4000 · 2/8 = 1000 expected, s.d. ≈ 27.
        for h in hits { XCTAssertEqual(Double(h), 1000, accuracy: 140) }
    }

    func draw(_ sampler: inout PKSampler, _ n: Int) -> [GlobalBatch] {
        var batch = GlobalBatch(batchSize: sampler.batchSize)
        return (0..<n).map { _ in sampler.next(into: &batch); return batch }
    }

    func testSameSeedSameBatchesOtherSeedDiffers() throws {
        var a = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 2, seed: 42)
        var b = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 2, seed: 42)
        var c = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 2, seed: 43)
        let ba = draw(&a, 30), bb = draw(&b, 30), bc = draw(&c, 30)
        XCTAssertEqual(ba.map(\.indices), bb.map(\.indices))
        XCTAssertEqual(ba.map(\.shifts), bb.map(\.shifts))
        XCTAssertNotEqual(ba.map(\.indices), bc.map(\.indices))
        XCTAssertNotEqual(ba.map(\.shifts), bc.map(\.shifts))
    }

    func testStateRestoreContinuesIdentically() throws {
        var original = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 4, seed: 7)
        _ = draw(&original, 13)
        let saved = original.state
        XCTAssertEqual(saved.iteration, 13)
        let encoded = try JSONEncoder().encode(saved)
        let decoded = try JSONDecoder().decode(SamplerState.self, from: encoded)
        XCTAssertEqual(decoded, saved)
        let expected = draw(&original, 10)

        var resumed = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 4, seed: 7, state: decoded)
        XCTAssertEqual(draw(&resumed, 10).map(\.indices), expected.map(\.indices))
        var restored = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 4, seed: 999)
        restored.restore(decoded)
        let again = draw(&restored, 10)
        XCTAssertEqual(again.map(\.indices), expected.map(\.indices))
        XCTAssertEqual(again.map(\.shifts), expected.map(\.shifts))
        XCTAssertEqual(restored.iterationsDone, 23)
    }

    func testShiftsInRangeCoverAllValuesOrAreZeroWithoutAugmentation() throws {
        var sampler = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 2, seed: 5)
        let shifts = draw(&sampler, 50).flatMap(\.shifts)
        XCTAssertEqual(Set(shifts), Set([-2, -1, 0, 1, 2]))
        var plain = try PKSampler(labels: labels, indices: training, batchSize: 8, instances: 2, seed: 5, augment: false)
        XCTAssertTrue(draw(&plain, 20).flatMap(\.shifts).allSatisfy { $0 == 0 })
    }

    func testRankRowsPartitionTheGlobalBatch() {
        let rows = (0..<4).map { GlobalBatch.localRows(rank: $0, ranks: 4, batchSize: 64) }
        XCTAssertEqual(rows, [0..<16, 16..<32, 32..<48, 48..<64])
    }

    func testBadConfigurationsAreErrors() {
        XCTAssertThrowsError(try PKSampler(labels: labels, indices: training, batchSize: 10, instances: 4, seed: 0)) {
            XCTAssertEqual($0 as? SamplerError, .batchNotMultipleOfInstances(batch: 10, instances: 4))
        }
        XCTAssertThrowsError(try PKSampler(labels: labels, indices: training, batchSize: 44, instances: 4, seed: 0)) {
            XCTAssertEqual($0 as? SamplerError, .tooFewClasses(classes: 10, needed: 11, batch: 44, instances: 4))
            XCTAssertTrue("\($0)".contains("10 class"))
        }
        // One class is never enough, even when B/K = 1.
        XCTAssertThrowsError(try PKSampler(labels: labels, indices: [10, 11, 12], batchSize: 4, instances: 4, seed: 0)) {
            XCTAssertEqual($0 as? SamplerError, .tooFewClasses(classes: 1, needed: 1, batch: 4, instances: 4))
        }
    }
}
