import Collectives
import Foundation

/// Rank 0's progress output: one line per logged iteration with iteration, loss, learning
/// rate, images per second and ETA. On a terminal the line is rewritten in place between
/// logs; in a log file every logged iteration is a plain line (no control characters).
public struct ProgressLine {
    public let totalIterations: Int
    public let isTerminal: Bool

    /// Under mpirun a rank's stdout is a pseudo-terminal even when the user redirects
    /// mpirun's output to a file, so lines are only rewritten in place outside mpirun.
    public init(totalIterations: Int,
                isTerminal: Bool = isatty(STDOUT_FILENO) != 0 && !MPICommunicator.launchedByMPI) {
        self.totalIterations = totalIterations
        self.isTerminal = isTerminal
    }

    public func format(iteration: Int, loss: Double, learningRate: Double, imagesPerSecond: Double,
                       secondsLeft: Double, memoryFill: (count: Int, capacity: Int)?) -> String {
        let width = String(totalIterations).count
        let iter = String(iteration).leftPadded(width)
        var parts = [
            "iter \(iter)/\(totalIterations)",
            String(format: "loss %.4f", loss),
            String(format: "lr %.2e", learningRate),
            String(format: "%6.0f img/s", imagesPerSecond),
            "ETA \(ProgressLine.duration(secondsLeft))",
        ]
        if let memoryFill, memoryFill.capacity > 0 {
            parts.append("memory \(memoryFill.count)/\(memoryFill.capacity)")
        }
        return parts.joined(separator: "  ")
    }

    public func emit(_ line: String, final: Bool = false) {
        if isTerminal {
            FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + line + (final ? "\n" : "")).utf8))
        } else {
            print(line)
            fflush(nil)
        }
    }

    /// Ends an in-place line before other output is printed.
    public func breakLine() {
        if isTerminal { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }

    /// 75 → "1m15s", 3700 → "1h01m".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
