import Foundation

/// SIGTERM and SIGINT ask the run to stop at the end of the current step (Docs/distributed.md): the flag
/// rides on the step's allreduce, so every rank stops at the same iteration, checkpoints and
/// exits 0. A second signal of the same kind gets the default action (ends the process).
enum StopSignal {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    static var requested: Bool { flag != 0 }

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { signalNumber in
            StopSignal.flag = 1
            signal(signalNumber, SIG_DFL)
        }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
    }
}
