import Collectives
import Foundation
import XBMTraining

/// The built-in benchmark as the default training data (README.md): `xbm-dist` alone trains
/// on `data/hanzi`, which rank 0 builds on first use while the other ranks wait.
public enum DefaultDataset {
    public static let hanziDirectory = "data/hanzi"

    /// Returns the hanzi directory, building it on rank 0 first when it is missing. A failed
    /// build ends every rank with rank 0's message.
    public static func ensureHanzi(comm: Communicator, log: Bool, seed: UInt64 = 0,
                                   directory: String = hanziDirectory) throws -> String {
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        let present = FileManager.default.fileExists(atPath: url.appendingPathComponent("meta.json").path)
        var failure = ""
        if comm.rank == 0 && !present {
            if log { print("building the hanzi benchmark in \(directory) (first use)") }
            do {
                let summary = try HanziBenchmark.build(
                    outputDirectory: url, seed: seed,
                    threads: ProcessInfo.processInfo.activeProcessorCount,
                    progress: log ? ProgressBar(label: "hanzi").update : { _, _ in })
                if log {
                    print(String(format: "built %d images of %d classes in %.1f s, checksum %016llx",
                                 summary.count, summary.classes, summary.seconds, summary.checksum))
                }
            } catch {
                failure = "\(error)"
            }
        }
        // Everyone waits for rank 0 here and learns how it went.
        let message = try comm.broadcast(bytes: Array(failure.utf8), root: 0)
        if !message.isEmpty {
            throw DefaultDatasetError(message: "building the hanzi benchmark failed: " + String(decoding: message, as: UTF8.self))
        }
        return directory
    }
}

public struct DefaultDatasetError: SameOnEveryRankError {
    public let message: String
    public var description: String { message }
}
