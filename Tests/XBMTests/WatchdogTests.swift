import Foundation
import XBMTraining
import XCTest

/// Docs/reliability.md: a phase that lasts longer than the timeout ends the job with the
/// phase and iteration named; phases that keep coming, or a stopped watch, never do.
final class WatchdogTests: XCTestCase {
    private final class Messages: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        func add(_ message: String) { lock.lock(); list.append(message); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return list }
    }

    func testAPhaseThatNeverEndsIsReportedWithWhereItWas() {
        let messages = Messages()
        let fired = expectation(description: "timeout")
        let watchdog = Watchdog(timeout: 0.3) { messages.add($0); fired.fulfill() }
        watchdog.enter("the allgather of the embeddings", iteration: 12)
        wait(for: [fired], timeout: 5)
        XCTAssertEqual(messages.all.count, 1)
        let message = messages.all[0]
        XCTAssertTrue(message.contains("iteration 12") && message.contains("the allgather of the embeddings")
                      && message.contains("--step-timeout"), message)
        watchdog.stop()
    }

    func testProgressAndStopKeepItQuiet() {
        let messages = Messages()
        let watchdog = Watchdog(timeout: 0.4) { messages.add($0) }
        for i in 0..<10 {                       // 1 s of phases 0.1 s apart
            watchdog.enter("the forward pass", iteration: i)
            Thread.sleep(forTimeInterval: 0.1)
        }
        watchdog.stop()
        Thread.sleep(forTimeInterval: 0.8)      // twice the timeout after the last phase
        XCTAssertEqual(messages.all, [])
    }
}
