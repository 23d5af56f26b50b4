import TestSupport
import XBMKernels
import XBMModel
import XCTest

/// The cross-batch memory against a model of what it must hold: after enqueueing rows
/// 0, 1, …, t−1 (row k has label k and embedding (k, −k, k/2)), it holds the last min(t, M)
/// of them, the FIFO view lists them oldest first, and the storage view has row k at k mod M.
final class MemoryTests: XCTestCase {
    let d = 3

    func row(_ k: Int) -> [Float] { [Float(k), Float(-k), Float(k) / 2] }

    /// The labels and embeddings of segments, concatenated.
    func contents(_ segments: [ReferenceSegment]) -> (labels: [Int32], embeddings: [Float]) {
        var labels: [Int32] = [], embeddings: [Float] = []
        for segment in segments {
            labels += UnsafeBufferPointer(start: segment.labels, count: segment.count)
            embeddings += UnsafeBufferPointer(start: segment.embeddings, count: segment.count * d)
        }
        return (labels, embeddings)
    }

    func testEveryLayoutForCapacitiesOneToSixAndEveryBatchSize() throws {
        for M in 1...6 {
            var visited: Set<[Int]> = []
            for B in 1...M {
                let memory = CrossBatchMemory(capacity: M, dimension: d)
                visited.insert([memory.head, memory.count])
                var seenChecksums: Set<UInt64> = [memory.checksum()]
                var total = 0
                for _ in 0..<(2 * M + 3) {
                    let ids = Array(total..<(total + B))
                    let embeddings = ids.flatMap(row), labels = ids.map(Int32.init)
                    let position = try memory.enqueue(embeddings: embeddings, labels: labels, count: B)
                    let context = "M \(M) B \(B) after \(total + B) rows"
                    XCTAssertEqual(position, total % M, context)
                    total += B
                    let count = min(total, M)
                    XCTAssertEqual(memory.count, count, context)
                    XCTAssertEqual(memory.head, total % M, context)
                    visited.insert([memory.head, memory.count])

                    // FIFO view: the last `count` rows, oldest first, in at most two pieces,
                    // the first starting at the oldest row's storage position (t − count) mod M.
                    let fifo = memory.fifoSegments
                    let expectedIds = Array((total - count)..<total)
                    XCTAssertLessThanOrEqual(fifo.count, 2, context)
                    XCTAssertEqual(contents(fifo).labels, expectedIds.map(Int32.init), context)
                    XCTAssertEqual(contents(fifo).embeddings, expectedIds.flatMap(row), context)

                    // Storage view: one segment of `count` rows, row k mod M holding row k.
                    let storage = memory.referenceSegments
                    XCTAssertEqual(storage.count, 1, context)
                    XCTAssertEqual(storage[0].count, count, context)
                    XCTAssertEqual(fifo[0].embeddings - storage[0].embeddings, ((total - count) % M) * d, context)
                    if fifo.count == 2 { XCTAssertEqual(fifo[1].embeddings, storage[0].embeddings, context) }
                    let stored = contents(storage)
                    XCTAssertEqual(Set(stored.labels), Set(expectedIds.map(Int32.init)), context)
                    for (position, label) in stored.labels.enumerated() {
                        XCTAssertEqual(Int(label) % M, position, context)
                        XCTAssertEqual(Array(stored.embeddings[(position * d)..<(position * d + d)]), row(Int(label)), context)
                    }
                    for i in 0..<B {
                        XCTAssertEqual(stored.labels[memory.storagePosition(ofLastBatchRow: i)], Int32(ids[i]), context)
                    }
                    XCTAssertTrue(seenChecksums.insert(memory.checksum()).inserted, "checksum repeated, \(context)")
                }
            }
            // Reachable layouts: (head, count) = (c, c) while filling, then (h, M) for every h.
            let expected = Set((0..<M).map { [$0, $0] } + (0..<M).map { [$0, M] })
            XCTAssertEqual(visited, expected, "layouts of capacity \(M)")
        }
    }

    /// A wrapped memory of 4 rows of dimension 3 holding rows 2…5 (head 2).
    func wrappedMemory() throws -> CrossBatchMemory {
        let memory = CrossBatchMemory(capacity: 4, dimension: d)
        for start in [0, 3] {
            let ids = Array(start..<(start + 3))
            try memory.enqueue(embeddings: ids.flatMap(row), labels: ids.map(Int32.init), count: 3)
        }
        XCTAssertEqual([memory.head, memory.count], [2, 4])
        return memory
    }

    func testChecksumChangesWithAnyBitOrderOrHeadAndSurvivesASnapshot() throws {
        let memory = try wrappedMemory()
        let original = memory.snapshot(), checksum = memory.checksum()
        let restored = try CrossBatchMemory(snapshot: original)
        XCTAssertEqual(restored.checksum(), checksum)
        XCTAssertEqual(restored.snapshot(), original)
        XCTAssertEqual(contents(restored.fifoSegments).labels, [2, 3, 4, 5])

        var seen: Set<UInt64> = [checksum]
        func assertNew(_ snapshot: MemorySnapshot, _ context: String) throws {
            XCTAssertTrue(seen.insert(try CrossBatchMemory(snapshot: snapshot).checksum()).inserted, context)
        }
        for k in 0..<original.embeddings.count {
            var changed = original
            changed.embeddings[k] = Float(bitPattern: changed.embeddings[k].bitPattern ^ 1)
            try assertNew(changed, "lowest bit of embedding value \(k)")
        }
        for k in 0..<original.labels.count {
            var changed = original
            changed.labels[k] += 1000
            try assertNew(changed, "label \(k)")
        }
        var swapped = original
        swapped.labels.swapAt(0, 1)
        for k in 0..<d { swapped.embeddings.swapAt(k, d + k) }
        try assertNew(swapped, "rows 0 and 1 swapped")
        for head in [0, 1, 3] {
            var moved = original
            moved.head = head
            try assertNew(moved, "head \(head)")
        }
    }

    func testBatchLargerThanMemoryIsAnErrorNamingBothNumbers() {
        let memory = CrossBatchMemory(capacity: 1000, dimension: 1)
        let embeddings = [Float](repeating: 0, count: 2048), labels = [Int32](repeating: 0, count: 2048)
        XCTAssertThrowsError(try memory.enqueue(embeddings: embeddings, labels: labels, count: 2048)) { error in
            XCTAssertEqual("\(error)", "cross-batch memory of 1000 rows cannot hold a global batch of 2048: use --xbm-size ≥ 2048")
        }
        XCTAssertEqual([memory.head, memory.count], [0, 0], "a refused batch changes nothing")
        XCTAssertNoThrow(try memory.enqueue(embeddings: embeddings, labels: labels, count: 1000))
    }

    func testMalformedSnapshotsAreRejected() throws {
        let good = try wrappedMemory().snapshot()
        var notFullButHeadElsewhere = good
        notFullButHeadElsewhere.count = 3; notFullButHeadElsewhere.head = 1
        notFullButHeadElsewhere.labels.removeLast(); notFullButHeadElsewhere.embeddings.removeLast(d)
        var wrongSize = good
        wrongSize.embeddings.removeLast()
        var headOutside = good
        headOutside.head = 4
        var countOver = good
        countOver.count = 5
        for (snapshot, context) in [(notFullButHeadElsewhere, "head ≠ count before full"), (wrongSize, "embedding size"),
                                    (headOutside, "head outside"), (countOver, "count over capacity")] {
            XCTAssertThrowsError(try CrossBatchMemory(snapshot: snapshot), context) { error in
                XCTAssertTrue("\(error)".hasPrefix("cross-batch memory snapshot is malformed: "), "\(error)")
            }
        }
    }

    func testClearEmptiesToTheStateOfANewMemory() throws {
        let memory = try wrappedMemory()
        memory.clear()
        XCTAssertEqual([memory.head, memory.count], [0, 0])
        XCTAssertTrue(memory.referenceSegments.isEmpty)
        XCTAssertTrue(memory.fifoSegments.isEmpty)
        XCTAssertEqual(memory.checksum(), CrossBatchMemory(capacity: 4, dimension: d).checksum())
    }

    /// The memory term through the storage view (one segment, own entries at their storage
    /// positions) equals the same term through the FIFO view (two segments after a wrap, own
    /// entries at their ages): the loss never needs the references copied into age order.
    func testMemoryTermIsTheSameThroughStorageAndFifoViews() throws {
        var random = RandomSource(seed: 21)
        let dimension = 8, M = 10, B = 4
        let memory = CrossBatchMemory(capacity: M, dimension: dimension)
        var last: (embeddings: [Float], labels: [Int32]) = ([], [])
        for _ in 0..<4 {   // 16 rows into 10: wrapped, head 6
            last = (randomUnitRows(count: B, dimension: dimension, random: &random), (0..<B).map { _ in Int32(random.nextInt(below: 3)) })
            try memory.enqueue(embeddings: last.embeddings, labels: last.labels, count: B)
        }
        XCTAssertEqual(memory.fifoSegments.count, 2)
        let storageOwn = (0..<B).map { Int32(memory.storagePosition(ofLastBatchRow: $0)) }
        let fifoOwn = (0..<B).map { Int32(M - B + $0) }   // the newest B rows end the FIFO view
        for kind in LossKind.allCases {
            let loss = makePairLoss(kind, options: LossOptions())
            func run(_ segments: [ReferenceSegment], _ own: [Int32]) -> (Double, [Float]) {
                var dA = [Float](repeating: 0, count: B * dimension)
                let value = last.embeddings.withUnsafeBufferPointer { a in
                    last.labels.withUnsafeBufferPointer { y in
                        own.withUnsafeBufferPointer { own in
                            loss.evaluate(PairLossInput(anchors: a.baseAddress!, anchorLabels: y.baseAddress!, anchorCount: B,
                                                        dimension: dimension, references: segments, ownIndex: own.baseAddress!),
                                          reduction: .mean, scale: 1, anchorGradient: &dA, referenceGradient: nil)
                        }
                    }
                }
                return (value, dA)
            }
            let (storageValue, storageGradient) = run(memory.referenceSegments, storageOwn)
            let (fifoValue, fifoGradient) = run(memory.fifoSegments, fifoOwn)
            // Same pairs in another order: ulp-level differences only (see LossInvarianceTests).
            XCTAssertEqual(storageValue, fifoValue, accuracy: 1e-5 * max(1, storageValue), kind.rawValue)
            for k in 0..<(B * dimension) {
                XCTAssertEqual(storageGradient[k], fifoGradient[k], accuracy: 1e-5 * max(1, abs(fifoGradient[k])), kind.rawValue)
            }
        }
    }
}
