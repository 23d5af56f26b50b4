import Collectives
import Foundation
import XBMData
import XBMFormats
import XBMKernels
import XBMModel

/// Everything a run needs to continue exactly (Docs/distributed.md): parameters, running statistics,
/// optimizer moments and step count, the cross-batch memory, the sampler's RNG state, the
/// iteration and the configuration. Global state only — nothing depends on the number of
/// ranks — so a run resumes under any N that divides the global batch.
///
/// Stored as a `CheckpointArchive` (checksummed, written atomically by rank 0). Reading is
/// done by rank 0 and the bytes are broadcast, so ranks on nodes without the file (or with a
/// stale copy) still agree.
public struct TrainingCheckpoint {
    /// The next iteration to run.
    public var iteration: Int
    public var config: TrainingConfig
    var meta: Meta
    var parameters: [Float]
    var state: [Float]
    var optimizerMoments: [[Float]]
    var memory: MemorySnapshot?
    var driftPrevious: [Float]

    struct Meta: Codable, Equatable {
        var iteration: Int
        var parameterLayout: ParameterLayout
        var stateLayout: ParameterLayout
        var optimizerSteps: Int
        var sampler: SamplerState
        var memoryHead: Int
        var memoryCount: Int
        var memoryCapacity: Int
        /// The memory's effective start (decided at run time under `--xbm-start auto`).
        var memoryStart: Int
        /// `Dataset.fingerprint()` of the training data (absent in older checkpoints).
        var dataFingerprint: UInt64?
    }

    /// Snapshots a rank's training state after `iteration` completed steps.
    public init(step: DistributedStep, sampler: PKSampler, drift: DriftMonitor?, iteration: Int, config: TrainingConfig,
                dataFingerprint: UInt64) {
        self.iteration = iteration
        self.config = config
        parameters = step.parameters.array
        state = step.state.array
        optimizerMoments = step.optimizer.stateBuffers.map(\.array)
        memory = step.memory?.snapshot()
        driftPrevious = drift?.previous ?? []
        meta = Meta(iteration: iteration, parameterLayout: step.network.parameterLayout,
                    stateLayout: step.network.stateLayout, optimizerSteps: step.optimizer.stepCount,
                    sampler: sampler.state, memoryHead: memory?.head ?? 0, memoryCount: memory?.count ?? 0,
                    memoryCapacity: memory?.capacity ?? 0, memoryStart: step.memoryStart, dataFingerprint: dataFingerprint)
    }

    /// The fingerprint of the data the run trained on, when the checkpoint records it.
    public var dataFingerprint: UInt64? { meta.dataFingerprint }

    public func write(to url: URL) throws {
        var archive = CheckpointArchive()
        try archive.setJSON(config, named: "config")
        try archive.setJSON(meta, named: "meta")
        archive.setFloats(parameters, named: "parameters")
        archive.setFloats(state, named: "state")
        for (i, moment) in optimizerMoments.enumerated() { archive.setFloats(moment, named: "optimizer.\(i)") }
        if let memory {
            archive.setFloats(memory.embeddings, named: "memory.embeddings")
            archive.setInt32s(memory.labels, named: "memory.labels")
            archive.setInt32s(memory.stamps, named: "memory.stamps")
            archive.setInt32s(memory.samples, named: "memory.samples")
        }
        if !driftPrevious.isEmpty { archive.setFloats(driftPrevious, named: "drift.previous") }
        try archive.write(to: url)
    }

    /// A run's newest checkpoint that loads (`RunDirectory.checkpointGenerations`).
    public struct Newest {
        public var checkpoint: TrainingCheckpoint
        /// 0 for `checkpoint.xbm`, k for `checkpoint.k.xbm`.
        public var generation: Int
        public var url: URL
        /// The newer files that did not load, each with the reason (empty when the newest loaded).
        public var skipped: [(url: URL, reason: String)]

        /// The warning for the log when older weights had to be used.
        public var warning: String? {
            guard !skipped.isEmpty else { return nil }
            let list = skipped.map { "\($0.url.lastPathComponent) (\($0.reason))" }.joined(separator: "; ")
            return "warning: \(list) did not load; continuing from \(url.lastPathComponent) at iteration \(checkpoint.iteration) "
                + "instead, and what the run logged after it is replayed"
        }
    }

    /// The newest checkpoint of `run` that loads: rank 0 tries `checkpoint.xbm`, then
    /// `checkpoint.1.xbm`, … (`--keep-checkpoints`) until one passes its checksums and parses,
    /// and broadcasts its bytes; every rank parses them, so every rank ends alike. No file, or
    /// none that loads, is an error on every rank naming each file and why.
    public static func readNewest(in run: RunDirectory, comm: Communicator) throws -> Newest {
        var bytes: [UInt8] = []
        var report = Report()
        var loaded: TrainingCheckpoint?     // rank 0's, parsed while choosing
        if comm.rank == 0 {
            let candidates = run.checkpointGenerations()
            for (generation, url) in candidates {
                guard let data = FileManager.default.contents(atPath: url.path) else {
                    report.skipped.append(.init(path: url.path, reason: "cannot be read"))
                    continue
                }
                do {
                    bytes = [UInt8](data)
                    loaded = try decode(bytes, path: url.path)
                    report.generation = generation
                    break
                } catch {
                    bytes = []
                    report.skipped.append(.init(path: url.path, reason: "\(error)"))
                }
            }
            if candidates.isEmpty {
                report.failure = "--resume: no checkpoint at \(run.checkpointURL.path); start without --resume, or point --run-dir at a run that saved one"
            } else if report.generation == nil {
                report.failure = "--resume: no checkpoint in \(run.url.path) loads: "
                    + report.skipped.map { "\(($0.path as NSString).lastPathComponent): \($0.reason)" }.joined(separator: "; ")
                    + ". Start the run afresh (without --resume), or restore a copy of one of them"
            }
        }
        report = try JSONDecoder().decode(Report.self, from: Data(try comm.broadcast(bytes: Array(JSONEncoder().encode(report)), root: 0)))
        if let failure = report.failure { throw ResumeError(failure) }
        guard let generation = report.generation else { throw ResumeError("--resume: rank 0 chose no checkpoint") }
        let url = run.checkpointURL(generation: generation)
        // The other ranks parse the bytes rank 0 parsed, so they succeed alike.
        let received = try comm.broadcast(bytes: bytes, root: 0)
        let checkpoint = try loaded ?? decode(received, path: url.path)
        return Newest(checkpoint: checkpoint, generation: generation, url: url,
                      skipped: report.skipped.map { (URL(fileURLWithPath: $0.path), $0.reason) })
    }

    /// What rank 0 found, for the other ranks.
    private struct Report: Codable {
        struct Skipped: Codable { var path: String, reason: String }
        var generation: Int?
        var skipped: [Skipped] = []
        var failure: String?
    }

    /// Parses a checkpoint file's bytes; `path` names it in errors. Untrusted input: any
    /// malformation is a `ResumeError`, never a trap (fuzzed by Launch/fuzz).
    public static func decode(_ bytes: [UInt8], path: String) throws -> TrainingCheckpoint {
        do {
            let archive = try CheckpointArchive(decoding: bytes, path: path)
            return try TrainingCheckpoint(archive: archive, path: path)
        } catch let error as CheckpointError {
            throw ResumeError(error.description)
        } catch let error as ConfigError {
            throw ResumeError(error.description)
        }
    }

    init(archive: CheckpointArchive, path: String) throws {
        // Over the defaults, so that a checkpoint written before an option existed still loads.
        let record = try JSONEncoder().encode(try archive.json([String: JSONValue].self, named: "config"))
        config = try TrainingConfig(json: record, source: "checkpoint \(path), its configuration")
        meta = try archive.json(Meta.self, named: "meta")
        guard meta.iteration >= 0 else { throw ResumeError("checkpoint \(path): iteration \(meta.iteration) is negative; the file is damaged") }
        iteration = meta.iteration
        parameters = try archive.floats(named: "parameters")
        state = try archive.floats(named: "state")
        optimizerMoments = []
        var i = 0
        while archive.contains("optimizer.\(i)") {
            optimizerMoments.append(try archive.floats(named: "optimizer.\(i)"))
            i += 1
        }
        driftPrevious = archive.contains("drift.previous") ? try archive.floats(named: "drift.previous") : []
        if meta.memoryCapacity > 0 {
            // Stamps for the rows whose labels the file holds: a count it merely claims must not size an allocation.
            let labels = try archive.int32s(named: "memory.labels")
            memory = MemorySnapshot(embeddings: try archive.floats(named: "memory.embeddings"), labels: labels,
                                    head: meta.memoryHead, count: meta.memoryCount,
                                    capacity: meta.memoryCapacity, dimension: config.model.dim,
                                    stamps: archive.contains("memory.stamps") ? try archive.int32s(named: "memory.stamps")
                                        : Self.stampsOneBatchPerIteration(head: meta.memoryHead, count: labels.count,
                                                                          capacity: meta.memoryCapacity, iteration: meta.iteration,
                                                                          batch: config.optimization.batch),
                                    samples: archive.contains("memory.samples") ? try archive.int32s(named: "memory.samples") : [])
        }
    }

    /// Restores a training run. Refuses a checkpoint of another model or of another global
    /// batch or memory size (which would not continue the same run).
    public func restore(into step: DistributedStep, sampler: inout PKSampler, drift: DriftMonitor?,
                        config current: TrainingConfig) throws {
        try restoreModel(parameters: step.parameters, state: step.state,
                         parameterLayout: step.network.parameterLayout, stateLayout: step.network.stateLayout)
        for (name, saved, now) in [("--batch", config.optimization.batch, current.optimization.batch),
                                   ("--instances", config.optimization.instances, current.optimization.instances),
                                   ("--xbm-size", config.memory.size, current.memory.size)] where saved != now {
            throw ResumeError("checkpoint was saved with \(name) \(saved) but this run has \(name) \(now); resume with the same value")
        }
        guard optimizerMoments.count == step.optimizer.stateBuffers.count else {
            throw ResumeError("checkpoint holds \(optimizerMoments.count) optimizer buffers (\(config.optimization.optimizer.rawValue)) "
                                  + "but --optimizer \(current.optimization.optimizer.rawValue) needs \(step.optimizer.stateBuffers.count)")
        }
        for (buffer, saved) in zip(step.optimizer.stateBuffers, optimizerMoments) { buffer.copy(from: saved) }
        step.optimizer.stepCount = meta.optimizerSteps
        if let memory = step.memory {
            memory.clock = iteration
            if let snapshot = self.memory { try memory.restore(snapshot) }
        }
        sampler.restore(meta.sampler)
        step.memoryStart = ResumePolicy.memoryStart(saved: config, savedStart: meta.memoryStart, resumed: current, iteration: iteration)
        if let drift, driftPrevious.count == drift.probe.count * drift.dimension { drift.restore(previous: driftPrevious) }
    }

    /// The rows' stamps for a checkpoint written before they were saved: the newest B rows
    /// from the last iteration, the B before them from the one before, and so on (exact
    /// unless the memory was filled at its start). Counters that no ring holds (a damaged or
    /// forged file) give no stamps: restoring the memory then refuses them by name.
    static func stampsOneBatchPerIteration(head: Int, count: Int, capacity M: Int, iteration: Int, batch: Int) -> [Int32] {
        guard M > 0, (0..<M).contains(head), (0...M).contains(count), count == M || head == count, iteration >= 0 else { return [] }
        var stamps = [Int32](repeating: 0, count: count)
        for newer in 0..<count {    // the row with `newer` rows enqueued after it
            let row = head - 1 - newer          // in -M..<M; `% M + M` would overflow for M near Int.max
            stamps[row < 0 ? row + M : row] = Int32(clamping: iteration - 1 - newer / max(batch, 1))
        }
        return stamps
    }

    /// The network's tensors by name, in xbm-dist's layout (`--init-from`).
    var modelTensors: [String: InitialWeights.Tensor] {
        var tensors: [String: InitialWeights.Tensor] = [:]
        for (layout, values) in [(meta.parameterLayout, parameters), (meta.stateLayout, state)] {
            for entry in layout.entries {
                tensors[entry.name] = InitialWeights.Tensor(shape: entry.shape,
                                                            values: Array(values[entry.offset..<(entry.offset + entry.count)]))
            }
        }
        return tensors
    }

    /// Restores parameters and running statistics only (evaluation, embedding).
    public func restoreModel(parameters: FlatBuffer<Float>, state: FlatBuffer<Float>,
                             parameterLayout: ParameterLayout, stateLayout: ParameterLayout) throws {
        guard meta.parameterLayout == parameterLayout, meta.stateLayout == stateLayout else {
            throw ResumeError("checkpoint is of another model (\(config.model.model.rawValue), d=\(config.model.dim)): it holds "
                                  + "\(meta.parameterLayout.summary); this run builds \(parameterLayout.summary)")
        }
        parameters.copy(from: self.parameters)
        state.copy(from: self.state)
    }
}

/// A checkpoint that cannot be resumed from; every rank reads the same bytes, so every rank
/// fails alike. (Writing failures are rank 0's alone and end the job through an abort.)
public struct ResumeError: SameOnEveryRankError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Any JSON value, to carry a configuration record through as it was written.
private enum JSONValue: Codable {
    case null, bool(Bool), integer(Int64), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(value): try container.encode(value)
        case let .integer(value): try container.encode(value)
        case let .number(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }
}
