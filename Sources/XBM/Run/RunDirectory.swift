import Foundation

/// The outputs of a run (README.md), written by rank 0 only: `config.json`, `metrics.jsonl`
/// (one object per logged iteration or evaluation), `metrics.json` (final retrieval
/// metrics), `checkpoint.xbm` and `curves.svg` (loss and Recall@1).
public final class RunDirectory {
    public let url: URL
    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var metricsLogURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var finalMetricsURL: URL { url.appendingPathComponent("metrics.json") }
    public var checkpointURL: URL { url.appendingPathComponent("checkpoint.xbm") }
    public var plotURL: URL { url.appendingPathComponent("curves.svg") }

    public init(path: String) {
        url = URL(fileURLWithPath: path, isDirectory: true)
    }

    /// Creates the directory. On resume from `iteration`, keeps the log lines up to it (the
    /// lines a killed run wrote after its last checkpoint are replayed by the resumed run).
    public func prepare(resumingAt iteration: Int?) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw RunDirectoryError.cannotCreate(url.path, "\(error.localizedDescription)")
        }
        guard let iteration else {
            try? FileManager.default.removeItem(at: metricsLogURL)
            _ = FileManager.default.createFile(atPath: metricsLogURL.path, contents: nil)
            return
        }
        let text = (try? String(contentsOf: metricsLogURL, encoding: .utf8)) ?? ""
        var kept: [String] = []
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let iter = object["iter"] as? Int, iter <= iteration else { continue }
            kept.append(String(line))
        }
        try write(Data((kept.map { $0 + "\n" }.joined()).utf8), to: metricsLogURL)
    }

    public func writeConfig(_ config: TrainingConfig) throws {
        try write(config.json(), to: configURL)
    }

    /// Appends one JSON object as a line of `metrics.jsonl`.
    public func append(_ object: [String: Any]) throws {
        let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) + Data("\n".utf8)
        guard let handle = try? FileHandle(forWritingTo: metricsLogURL) else {
            throw RunDirectoryError.cannotWrite(metricsLogURL.path, "cannot open for appending")
        }
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(line)
    }

    public func writeFinalMetrics(_ metrics: RetrievalMetrics, iteration: Int) throws {
        var object: [String: Any] = metrics.jsonObject
        object["iter"] = iteration
        object["queries"] = metrics.queries
        object["skipped_queries"] = metrics.skipped
        try write(JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), to: finalMetricsURL)
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
