import TestSupport
@testable import XBMModel
@testable import XBMTraining
import XCTest

/// The memory's ages: every row is stamped with the clock when written, age = clock − stamp;
/// values worked out by hand for a ring of 5 rows fed batches of 2.
final class MemoryAgeTests: XCTestCase {
    let d = 2

    func enqueue(_ memory: CrossBatchMemory, rows: Int, label: Int32 = 0) throws {
        let embeddings = [Float](repeating: 0.5, count: rows * d), labels = [Int32](repeating: label, count: rows)
        try memory.enqueue(embeddings: embeddings, labels: labels, count: rows)
    }

    func testAgesThroughAWrap() throws {
        let memory = CrossBatchMemory(capacity: 5, dimension: d)
        XCTAssertEqual(memory.meanAge, 0, "empty")
        // clock 0: storage stamps [0 0]              ages at 0: 0 0                → 0
        memory.clock = 0; try enqueue(memory, rows: 2)
        XCTAssertEqual(memory.meanAge, 0)
        // clock 1: [0 0 1 1]                          ages at 1: 1 1 0 0            → 0.5
        memory.clock = 1; try enqueue(memory, rows: 2)
        XCTAssertEqual(memory.meanAge, 0.5)
        // clock 2: slots 4 and 0 (the wrap): [2 0 1 1 2]    ages 0 2 1 1 0         → 0.8
        memory.clock = 2; try enqueue(memory, rows: 2)
        XCTAssertEqual(memory.snapshot().stamps, [2, 0, 1, 1, 2])
        XCTAssertEqual(memory.meanAge, 0.8, accuracy: 1e-12)
        // clock 3: slots 1 and 2: [2 3 3 1 2]         ages 1 0 0 2 1                → 0.8
        memory.clock = 3; try enqueue(memory, rows: 2)
        XCTAssertEqual(memory.snapshot().stamps, [2, 3, 3, 1, 2])
        XCTAssertEqual(memory.meanAge, 0.8, accuracy: 1e-12)
        // Nothing enqueued until clock 7: every row is 4 iterations older: 5 4 4 6 5 → 4.8.
        memory.clock = 7
        XCTAssertEqual(memory.meanAge, 4.8, accuracy: 1e-12)
        // Two enqueues at one clock (a fill): slots 3, 4, 0 stamped 7 → [7 3 3 7 7], ages 0 4 4 0 0.
        try enqueue(memory, rows: 2); try enqueue(memory, rows: 1)
        XCTAssertEqual(memory.snapshot().stamps, [7, 3, 3, 7, 7])
        XCTAssertEqual(memory.meanAge, 1.6, accuracy: 1e-12)
        // The segments the loss reads carry the stamps in storage order.
        let segment = memory.referenceSegments[0]
        XCTAssertEqual(Array(UnsafeBufferPointer(start: segment.stamps!, count: segment.count)), [7, 3, 3, 7, 7])
    }

    func testStampsSurviveASnapshotAndClearForgetsThem() throws {
        let memory = CrossBatchMemory(capacity: 5, dimension: d)
        for clock in 0..<4 { memory.clock = clock; try enqueue(memory, rows: 2) }
        let snapshot = memory.snapshot()
        let restored = try CrossBatchMemory(snapshot: snapshot)
        XCTAssertEqual(restored.snapshot(), snapshot)
        restored.clock = 3
        XCTAssertEqual(restored.meanAge, 0.8, accuracy: 1e-12)

        // A snapshot without stamps (a checkpoint that predates them) stamps rows with the clock.
        var unknown = snapshot
        unknown.stamps = []
        let fresh = CrossBatchMemory(capacity: 5, dimension: d)
        fresh.clock = 9
        try fresh.restore(unknown)
        XCTAssertEqual(fresh.snapshot().stamps, [9, 9, 9, 9, 9])
        XCTAssertEqual(fresh.meanAge, 0)

        var wrongCount = snapshot
        wrongCount.stamps.removeLast()
        XCTAssertThrowsError(try CrossBatchMemory(snapshot: wrongCount)) { error in
            XCTAssertEqual("\(error)", "cross-batch memory snapshot is malformed: 4 stamps for 5 rows")
        }

        memory.clear()
        XCTAssertEqual(memory.meanAge, 0)
        XCTAssertEqual(memory.snapshot().stamps, [])
    }

    func testStampsOfACheckpointWithoutThem() {
        // Capacity 5, full, head 2, saved after iteration 9 (the next is 10), batches of 2:
        // newest rows at slots 1, 0 (iteration 9), then 4, 3 (8), then 2 (7).
        XCTAssertEqual(TrainingCheckpoint.stampsOneBatchPerIteration(head: 2, count: 5, capacity: 5, iteration: 10, batch: 2),
                       [9, 9, 7, 8, 8])
        // Not full: head == count == 3, batches of 2: slots 2, 1 from iteration 4, slot 0 from 3.
        XCTAssertEqual(TrainingCheckpoint.stampsOneBatchPerIteration(head: 3, count: 3, capacity: 5, iteration: 5, batch: 2),
                       [3, 4, 4])
    }
}
