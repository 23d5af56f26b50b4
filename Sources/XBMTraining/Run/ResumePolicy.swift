import Foundation
import XBMKernels

/// What `--resume` may change about a run (Docs/reliability.md). A checkpoint records the
/// whole configuration; resuming with a different value of anything that changes what the run
/// computes (model, loss, batch, optimiser and schedule, memory, seed, data) is refused with
/// every difference named, unless each changed key is named in `--resume-override`. Keys that
/// only change how the run is watched (logging, evaluation, checkpoints, its length) may change
/// freely. Raising `--iters` keeps the schedule's original length (`schedule-iters`), so the
/// rate drops and the memory starts where the first part of the run put them.
public enum ResumePolicy {
    /// Keys a resumed run may change without asking. `data` is the directory's path: the data
    /// itself is compared by fingerprint, under the key `data`.
    public static let freeKeys: Set<String> = [
        "iters", "schedule-iters", "data", "eval-every", "eval-batch", "recall-k", "log-every",
        "checkpoint-every", "run-dir", "check-replicas", "step-timeout",
    ]

    /// The keys `--resume-override` accepts.
    public static var overridableKeys: [String] { TrainingConfig.keys.filter { !freeKeys.contains($0) } + ["data"] }

    public struct Outcome {
        public var config: TrainingConfig
        /// One line per accepted change, for the run's header.
        public var notes: [String]
    }

    /// The configuration the resumed run continues with: `requested` with the schedule's
    /// length kept, after checking every difference from `saved` against `overrides`.
    /// `savedData` and `currentData` are the data fingerprints (nil when the checkpoint
    /// predates them).
    public static func reconcile(requested: TrainingConfig, saved: TrainingConfig, overrides: Set<String>,
                                 savedData: UInt64?, currentData: UInt64) throws -> Outcome {
        if let unknown = overrides.sorted().first(where: { !overridableKeys.contains($0) }) {
            throw ResumeError("--resume-override \(unknown): not a key that needs overriding; choose among \(overridableKeys.joined(separator: ", "))")
        }
        var config = requested
        // The checksum is the run's own record of its source: a request naming the same
        // --init-from without one (the --config the run started with) means the same weights.
        if config.model.initFromChecksum == nil, config.model.initFrom == saved.model.initFrom {
            config.model.initFromChecksum = saved.model.initFromChecksum
        }
        var notes: [String] = []
        let savedLength = saved.optimization.scheduleLength
        if config.optimization.iters != saved.optimization.iters,
           config.optimization.scheduleIters == saved.optimization.scheduleIters,
           config.optimization.scheduleLength != savedLength {
            config.optimization.scheduleIters = savedLength
            notes.append("--iters \(saved.optimization.iters) → \(config.optimization.iters): the schedule keeps its length of "
                         + "\(savedLength) iterations (pass --schedule-iters \(config.optimization.iters) to stretch it)")
        }

        var changes = differences(from: saved, to: config).filter { !freeKeys.contains($0.key) }
        if let savedData, savedData != currentData {
            changes.append((key: "data", from: FNV1a64.hex(savedData), to: FNV1a64.hex(currentData)))
        }
        let refused = changes.filter { !overrides.contains($0.key) }
        guard refused.isEmpty else {
            let list = refused.map { "--\($0.key) \($0.from) → \($0.to)" }.joined(separator: ", ")
            let keys = refused.map(\.key).joined(separator: ",")
            throw ResumeError("--resume would change what the checkpointed run computes: \(list) "
                              + "(data is compared by content). Resume with the saved values, or pass "
                              + "--resume-override \(keys) to change them on purpose")
        }
        notes += changes.map { "--\($0.key) \($0.from) → \($0.to) (--resume-override)" }
        return Outcome(config: config, notes: notes)
    }

    /// Every key whose JSON value differs, with both values as JSON text ("unset" for an
    /// absent optional).
    static func differences(from a: TrainingConfig, to b: TrainingConfig) -> [(key: String, from: String, to: String)] {
        let left = values(a), right = values(b)
        return TrainingConfig.keys.compactMap { key in
            let from = left[key] ?? "unset", to = right[key] ?? "unset"
            return from == to ? nil : (key, from, to)
        }
    }

    /// Each key's value as compact JSON text.
    private static func values(_ config: TrainingConfig) -> [String: String] {
        guard let object = (try? JSONSerialization.jsonObject(with: config.json())) as? [String: Any] else { return [:] }
        return object.compactMapValues { value in
            guard let data = try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
            else { return nil }
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
    }
}
