import ArgumentParser
import Hanzi
import XBMModel
import XBMTraining

// Every choice of the command line is a typed value of the library, parsed here once; help
// lists the allowed values.
extension LossKind: ExpressibleByArgument {}
extension ModelChoice: ExpressibleByArgument {}
extension AugmentationChoice: ExpressibleByArgument {}
extension BatchNormStatistics: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension ScheduleKind: ExpressibleByArgument {}
extension MemoryReduction: ExpressibleByArgument {}
extension MemoryInit: ExpressibleByArgument {}
extension MemoryCompensation: ExpressibleByArgument {}
extension HanziCharset: ExpressibleByArgument {}

extension MemoryStart: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// Parsers of comma-separated option values (`--recall-k 1,10`, `--milestones 50%,2000`);
/// each occurrence of a repeatable option is one list.
enum ListArgument {
    /// Recall@K cut-offs: positive integers, returned sorted and without repeats.
    static func recallCutoffs(_ text: String) throws -> [Int] {
        let values = try text.split(separator: ",").map { item -> Int in
            guard let value = Int(item.trimmingCharacters(in: .whitespaces)), value > 0 else {
                throw ValidationError("--recall-k expects positive integers such as 1,10,100, got \"\(item)\"")
            }
            return value
        }
        return Array(Set(values)).sorted()
    }

    /// Iterations or shares of `--iters`.
    static func iterationPoints(_ text: String) throws -> [IterationPoint] {
        try text.split(separator: ",").map { item in
            guard let point = IterationPoint(parsing: String(item)) else {
                throw ValidationError("--milestones expects iterations or percentages of --iters (800, 75%), got \"\(item)\"")
            }
            return point
        }
    }
}
