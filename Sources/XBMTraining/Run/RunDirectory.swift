import Foundation
import XBMEval
import XBMFormats

/// The outputs of a run (README.md), written by rank 0 only: `config.json`, `metrics.jsonl`
/// (one object per logged iteration or evaluation) and the same numbers as TensorBoard scalars
/// in an event file, `metrics.json` (final retrieval metrics), `checkpoint.xbm` and
/// `curves.svg` (loss and Recall@1).
public final class RunDirectory {
    public let url: URL
    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var metricsLogURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var finalMetricsURL: URL { url.appendingPathComponent("metrics.json") }
    /// The newest checkpoint.
    public var checkpointURL: URL { checkpointURL(generation: 0) }
    /// The checkpoint `generation` saves before the newest: `checkpoint.xbm` (0),
    /// `checkpoint.1.xbm`, `checkpoint.2.xbm`, … (`--keep-checkpoints`).
    public func checkpointURL(generation: Int) -> URL {
        url.appendingPathComponent(generation == 0 ? "checkpoint.xbm" : "checkpoint.\(generation).xbm")
    }
    public var plotURL: URL { url.appendingPathComponent("curves.svg") }
    /// The event file `prepare` began, `events.out.tfevents.<unix seconds>.<host>`.
    public private(set) var eventFileURL: URL?

    public init(path: String) {
        url = URL(fileURLWithPath: path, isDirectory: true)
    }

    /// Creates the directory and begins a new event file (TensorBoard reads every one). A new
    /// run starts `metrics.jsonl` afresh and removes the event files of an earlier run. On
    /// resume from `iteration`, keeps the log lines and the events up to it (what a killed run
    /// logged after its last checkpoint is replayed by the resumed run).
    public func prepare(resumingAt iteration: Int?) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw RunDirectoryError.cannotCreate(url.path, "\(error.localizedDescription)")
        }
        if let iteration {
            try keepLogLines(through: iteration)
            try keepEvents(through: iteration)
        } else {
            try? FileManager.default.removeItem(at: metricsLogURL)
            _ = FileManager.default.createFile(atPath: metricsLogURL.path, contents: nil)
            try removeEventFiles()
        }
        eventFileURL = try beginEventFile()
    }

    /// Makes room for a new `checkpoint.xbm` among `keep` generations: each older one moves
    /// one generation back (the oldest kept is replaced), and the newest becomes generation 1
    /// by a hard link, so `checkpoint.xbm` exists at every instant until the new one is
    /// renamed over it. Where the file system has no hard links it is renamed instead: a crash
    /// before the new one lands then leaves generation 1 for `--resume` to fall back on.
    public func rotateCheckpoints(keep: Int) throws {
        guard keep > 1, FileManager.default.fileExists(atPath: checkpointURL.path) else { return }
        do {
            for generation in stride(from: keep - 2, through: 1, by: -1)
            where FileManager.default.fileExists(atPath: checkpointURL(generation: generation).path) {
                try replace(checkpointURL(generation: generation + 1), by: checkpointURL(generation: generation))
            }
            let previous = checkpointURL(generation: 1)
            try? FileManager.default.removeItem(at: previous)
            if link(checkpointURL.path, previous.path) != 0 { try replace(previous, by: checkpointURL) }
        } catch {
            throw RunDirectoryError.cannotWrite(checkpointURL(generation: 1).path,
                                                "keeping the previous checkpoint: \(error.localizedDescription)")
        }
    }

    /// The checkpoint files present, newest first, with their generations: `checkpoint.xbm`
    /// (if present), then `checkpoint.1.xbm`, … up to the first generation missing after it.
    public func checkpointGenerations() -> [(generation: Int, url: URL)] {
        var found: [(Int, URL)] = []
        var generation = 0
        while generation < 1 << 16 {
            let file = checkpointURL(generation: generation)
            if FileManager.default.fileExists(atPath: file.path) { found.append((generation, file)) } else if generation > 0 { break }
            generation += 1
        }
        return found
    }

    /// After `--resume` fell back to generation `loaded`: the newer files, which did not load,
    /// are set aside as `<name>.damaged` (for a look, and out of the rotation), and the loaded
    /// generation and those older than it move forward so that it is `checkpoint.xbm` again.
    public func promoteCheckpoint(generation loaded: Int) throws {
        guard loaded > 0 else { return }
        do {
            for generation in 0..<loaded {
                let file = checkpointURL(generation: generation)
                if FileManager.default.fileExists(atPath: file.path) {
                    try replace(url.appendingPathComponent(file.lastPathComponent + ".damaged"), by: file)
                }
            }
            var generation = loaded
            while FileManager.default.fileExists(atPath: checkpointURL(generation: generation).path) {
                try replace(checkpointURL(generation: generation - loaded), by: checkpointURL(generation: generation))
                generation += 1
            }
        } catch {
            throw RunDirectoryError.cannotWrite(checkpointURL.path, "moving the loaded checkpoint forward: \(error.localizedDescription)")
        }
    }

    /// Renames `source` over `target` (rename(2): atomic, replaces an existing target).
    private func replace(_ target: URL, by source: URL) throws {
        guard rename(source.path, target.path) == 0 else {
            throw RunDirectoryError.cannotWrite(target.path, String(cString: strerror(errno)))
        }
    }

    public func writeConfig(_ config: TrainingConfig) throws {
        try write(config.json(), to: configURL)
    }

    /// Appends `record` as a line of `metrics.jsonl` and as TensorBoard scalars at its
    /// iteration to the event file.
    public func append(_ record: MetricsRecord) throws {
        guard let eventFileURL else { preconditionFailure("RunDirectory.append before prepare(resumingAt:)") }
        try appendBytes(Array(record.jsonLine()), to: metricsLogURL)
        try appendBytes(TensorBoardEventFile.scalars(record.scalars, step: record.iteration), to: eventFileURL)
    }

    /// `metrics.json`: the final evaluation's record (its retrieval keys, `iter`, `queries` and
    /// `skipped_queries`), pretty-printed.
    public func writeFinalMetrics(_ metrics: RetrievalMetrics, iteration: Int) throws {
        let record = MetricsRecord(iteration: iteration, retrieval: metrics, seconds: nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(encoder.encode(record), to: finalMetricsURL)
    }

    /// `curves.svg`, drawn from what `metrics.jsonl` holds (so a resumed run plots its whole
    /// history, pair diagnostics included).
    public func writePlot(title: String) throws {
        let log = (try? String(contentsOf: metricsLogURL, encoding: .utf8)) ?? ""
        try write(Data(TrainingPlot(title: title, metricsLog: log).svg().utf8), to: plotURL)
    }

    private func write(_ data: Data, to file: URL) throws {
        do { try data.write(to: file, options: .atomic) } catch {
            throw RunDirectoryError.cannotWrite(file.path, error.localizedDescription)
        }
    }

    private func keepLogLines(through iteration: Int) throws {
        let text = (try? String(contentsOf: metricsLogURL, encoding: .utf8)) ?? ""
        var kept: [String] = []
        let decoder = JSONDecoder()
        for line in text.split(separator: "\n") {
            guard let record = try? decoder.decode(MetricsRecord.self, from: Data(line.utf8)),
                  record.iteration <= iteration else { continue }
            kept.append(String(line))
        }
        try write(Data((kept.map { $0 + "\n" }.joined()).utf8), to: metricsLogURL)
    }

    private func keepEvents(through iteration: Int) throws {
        for file in eventFiles() {
            let bytes = (try? [UInt8](Data(contentsOf: file))) ?? []
            let kept = TensorBoardEventFile.trimmed(bytes, through: iteration)
            if kept != bytes { try write(Data(kept), to: file) }
        }
    }

    private func removeEventFiles() throws {
        for file in eventFiles() {
            do { try FileManager.default.removeItem(at: file) } catch {
                throw RunDirectoryError.cannotWrite(file.path, "an earlier run's event file cannot be removed: \(error.localizedDescription)")
            }
        }
    }

    private func eventFiles() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { $0.hasPrefix(TensorBoardEventFile.namePrefix) }.map { url.appendingPathComponent($0) }
    }

    /// A new event file holding its header. A name already taken (a resume within the same
    /// second) gets the suffix ".1", ".2", …, which sorts after it as TensorBoard reads files.
    private func beginEventFile() throws -> URL {
        let name = TensorBoardEventFile.name(createdAt: Date(), host: ProcessInfo.processInfo.hostName)
        var file = url.appendingPathComponent(name)
        var suffix = 0
        while FileManager.default.fileExists(atPath: file.path) {
            suffix += 1
            file = url.appendingPathComponent("\(name).\(suffix)")
        }
        try appendBytes(TensorBoardEventFile.header(), to: file, creating: true)
        return file
    }
}

/// Appends `bytes` to `file` with write(2): nothing waits in a buffer of this process, so a
/// run killed after the call has lost none of it. With `creating`, the file must not exist.
private func appendBytes(_ bytes: [UInt8], to file: URL, creating: Bool = false) throws {
    func failure(_ code: Int32) -> RunDirectoryError { .cannotWrite(file.path, String(cString: strerror(code))) }
    let descriptor = open(file.path, O_WRONLY | O_APPEND | O_CLOEXEC | (creating ? O_CREAT | O_EXCL : 0), 0o644)
    guard descriptor >= 0 else { throw failure(errno) }
    defer { close(descriptor) }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
        if count >= 0 { written += count } else if errno != EINTR { throw failure(errno) }
    }
}

/// Only rank 0 writes, so these end the whole job through the launcher's abort path.
public enum RunDirectoryError: Error, CustomStringConvertible, Equatable {
    case cannotCreate(String, String)
    case cannotWrite(String, String)

    public var description: String {
        switch self {
        case let .cannotCreate(path, why): return "--run-dir \(path): cannot create the directory (\(why))"
        case let .cannotWrite(path, why): return "cannot write \(path) (\(why)); check --run-dir and free disk space"
        }
    }
}
