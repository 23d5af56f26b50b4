import Foundation

/// A one-line progress bar on stderr: rewritten in place on a terminal, a line every 10%
/// otherwise.
public final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let terminal = isatty(STDERR_FILENO) != 0
    private var lastShown = -1
    private let start = Date()
    private let lock = NSLock()

    public init(label: String) { self.label = label }

    public func update(_ done: Int, _ total: Int) {
        lock.lock(); defer { lock.unlock() }
        let percent = total > 0 ? done * 100 / total : 100
        guard percent != lastShown, terminal || percent % 10 == 0 || done == total else { return }
        lastShown = percent
        let width = 30, filled = width * percent / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let elapsed = Date().timeIntervalSince(start)
        let line = String(format: "%@ [%@] %3d%% %d/%d %.0fs", label, bar, percent, done, total, elapsed)
        FileHandle.standardError.write(Data(((terminal ? "\r" : "") + line + (terminal && done < total ? "" : "\n")).utf8))
    }
}
