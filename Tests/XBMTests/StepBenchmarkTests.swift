import Collectives
import Foundation
import TestSupport
@testable import XBMKernels
@testable import XBMTraining
import XCTest

/// `bench step` must time what training computes: the same samples on any rank count, and a
/// memory holding the batches' own classes, so that positives and active negatives occur.
final class StepBenchmarkTests: XCTestCase {
    func testBatchLabelsFollowTheReferenceScheme() {
        // i / K + 1000 · (iteration mod 50), worked by hand for K = 4.
        XCTAssertEqual(BenchBatches.label(row: 0, iteration: 0, instances: 4), 0)
        XCTAssertEqual(BenchBatches.label(row: 5, iteration: 51, instances: 4), 1001)
        XCTAssertEqual(BenchBatches.label(row: 15, iteration: 49, instances: 4), 49_003)
    }

    func testSamplesDoNotDependOnTheRankCount() {
        let D = 64, shape = [D], B = 8
        let whole = BenchBatches(sampleShape: shape, globalBatch: B, instances: 4, rows: 0..<B, seed: 9)
        let secondHalf = BenchBatches(sampleShape: shape, globalBatch: B, instances: 4, rows: 4..<B, seed: 9)
        let all = FlatBuffer<Float>(count: B * D), half = FlatBuffer<Float>(count: 4 * D)
        var labels = [Int32](repeating: 0, count: B), halfLabels = labels
        whole.fill(iteration: 3, input: all.pointer, labels: &labels)
        secondHalf.fill(iteration: 3, input: half.pointer, labels: &halfLabels)
        XCTAssertEqual(labels, halfLabels)
        XCTAssertEqual(Array(all.array[4 * D..<8 * D]), half.array)
        // Rows 0 and 1 are one class (K = 4), row 4 another. Same class: E‖x − x'‖² = 0.4² · D/6;
        // other class: (0.4² + 0.6²) · D/6, i.e. 1.7 against 5.5 for D = 64.
        func distance(_ a: Int, _ b: Int) -> Float { (0..<D).reduce(0) { $0 + pow(all[a * D + $1] - all[b * D + $1], 2) } }
        XCTAssertGreaterThan(distance(0, 1), 0, "two instances of one class must differ by their noise")
        XCTAssertLessThan(distance(0, 1), distance(0, 4))
        XCTAssertTrue(all.array.allSatisfy { $0 >= 0 && $0 < 1 })
    }

    /// The memory is filled with the embeddings of batches of the benchmark's own classes, so
    /// an anchor meets positives in it beyond the K − 1 of its own batch (enqueued before the
    /// memory term); a memory of labels no batch has would hold only those. 1,024 rows are 64
    /// batches of 16, more than the 50 of the label cycle, so every class is in the memory.
    func testFullMemoryHoldsTheBatchesClassesAndReportsActivePairs() throws {
        var config = TrainingFixtures.smallRun(data: URL(fileURLWithPath: "/unused"), iterations: 10)
        config.memory.size = 1024
        let result = try StepBenchmark.run(config: config, sampleShape: [16], steps: 3, warmup: 1, pretrain: 2,
                                           comm: SingleProcessCommunicator())
        XCTAssertEqual(result.xbmSize, 1024)
        XCTAssertEqual(result.pretrainSteps, 2)
        let positives = try XCTUnwrap(result.memoryActivePositiveFraction)
        let active = try XCTUnwrap(result.memoryActiveFraction)
        let ownBatchOnly = Double(config.optimization.instances - 1) / 1024
        XCTAssertGreaterThan(positives, ownBatchOnly, "only the own batch's positives: the memory holds other classes")
        XCTAssertGreaterThanOrEqual(active, positives)
        XCTAssertLessThanOrEqual(active, 1)
        XCTAssertGreaterThan(result.imagesPerSecondMedianStep, 0)

        config.memory.size = 0
        let none = try StepBenchmark.run(config: config, sampleShape: [16], steps: 2, warmup: 1, pretrain: 2,
                                         comm: SingleProcessCommunicator())
        XCTAssertNil(none.memoryActiveFraction)
        XCTAssertEqual(none.pretrainSteps, 0)
    }
}
