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
        "checkpoint-every", "keep-checkpoints", "run-dir", "check-replicas", "step-timeout",
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
        // The schedule's length changes only when asked for by value: a request without
        // schedule-iters (a --config file that lacks it, a raised --iters) keeps the saved
        // length, on every resume of the run, not just the first.
        let savedLength = saved.optimization.scheduleLength
        let asked = config.optimization.scheduleIters
        if asked == nil || asked == saved.optimization.scheduleIters {
            if config.optimization.scheduleLength != savedLength {
                notes.append("--iters \(saved.optimization.iters) → \(config.optimization.iters): the schedule keeps its length of "
                             + "\(savedLength) iterations (pass --schedule-iters \(config.optimization.iters) to stretch it)")
            }
            config.optimization.scheduleIters = savedLength
        } else if let asked, asked != savedLength {
            notes.append("--schedule-iters \(savedLength) → \(asked): the rate drops and a memory start not yet reached move with it")
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

    /// The iteration the resumed run's memory starts at, from the checkpoint's `savedStart` and
    /// the run's configuration before (`saved`) and after (`resumed`) the resume, at `iteration`:
    /// - `xbm-start` changed (`--resume-override xbm-start`): the new start, resolved against
    ///   the resumed schedule; `auto` starts when the drift next falls below the threshold;
    /// - `auto` kept: the iteration its drift chose, or not yet;
    /// - a fixed start kept and already passed: where it was, even if the schedule stretched
    ///   (a running memory does not pause);
    /// - a fixed start kept and not yet reached: resolved against the resumed schedule, so a
    ///   share of it moves with the schedule's length as the rate drops do.
    public static func memoryStart(saved: TrainingConfig, savedStart: Int, resumed: TrainingConfig, iteration: Int) -> Int {
        let auto = Int.max      // DistributedStep's "not started": the drift monitor decides
        switch (saved.memory.start == resumed.memory.start, resumed.memoryStartIteration) {
        case (true, nil): return savedStart
        case (true, let start?): return savedStart < iteration ? savedStart : start
        case (false, nil): return auto
        case (false, let start?): return start
        }
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
