import Collectives
import Foundation

/// Ends a job that has stopped making progress (Docs/reliability.md). A rank that hangs
/// (stopped, swapping, on a dead link) leaves every other rank waiting in a collective
/// forever, holding the allocation. The run reports each phase it enters (a step's forward,
/// its collectives, an evaluation, a checkpoint); a thread checks that no phase lasts longer
/// than `timeout` seconds, and otherwise prints where this rank was waiting and aborts the job.
public final class Watchdog: @unchecked Sendable {
    public let timeout: Double
    private let lock = NSLock()
    private var phase = "start-up"
    private var iteration = 0
    private var entered = DispatchTime.now().uptimeNanoseconds
    private var running = true
    private let onTimeout: @Sendable (String) -> Void

    /// `onTimeout` gets the message; it is expected to end the process (the trainer aborts
    /// the job through its communicator).
    public init(timeout: Double, onTimeout: @escaping @Sendable (String) -> Void) {
        self.timeout = timeout
        self.onTimeout = onTimeout
        let thread = Thread { [weak self] in self?.watch() }
        thread.name = "xbm-watchdog"
        thread.start()
    }

    deinit { stop() }

    /// Marks the start of `phase`, during `iteration` if given: the clock restarts.
    public func enter(_ phase: String, iteration: Int? = nil) {
        lock.lock()
        self.phase = phase
        if let iteration { self.iteration = iteration }
        entered = DispatchTime.now().uptimeNanoseconds
        lock.unlock()
    }

    /// Ends the watch (the run is over).
    public func stop() {
        lock.lock()
        running = false
        lock.unlock()
    }

    private func watch() {
        let poll = min(max(timeout / 20, 0.05), 1)
        while true {
            Thread.sleep(forTimeInterval: poll)
            lock.lock()
            let (live, phase, iteration) = (running, self.phase, self.iteration)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - entered) * 1e-9
            lock.unlock()
            guard live else { return }
            if seconds > timeout {
                onTimeout("no progress for \(Int(seconds)) s at iteration \(iteration), in \(phase) (--step-timeout \(timeout)): "
                          + "another rank is probably stuck (stopped, swapping or cut off); ending the job")
                return
            }
        }
    }
}
