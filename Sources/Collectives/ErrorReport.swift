import Foundation

/// An error that every rank meets identically, because every rank reads the same files and
/// options and runs the same deterministic code (a bad option, a malformed dataset file, a
/// refused checkpoint). Every rank stops with it and no rank is left waiting in a collective,
/// so the job ends with one message from rank 0 and exit code 2 instead of an MPI abort
/// (Docs/distributed.md, Failures).
public protocol SameOnEveryRankError: Error, CustomStringConvertible {}

/// The one way the package reports a failure: one line `error: [rank r: ]message` on stderr.
public enum ErrorReport {
    public static func write(_ message: String, rank: Int? = nil) {
        let prefix = rank.map { "rank \($0): " } ?? ""
        FileHandle.standardError.write(Data("error: \(prefix)\(message)\n".utf8))
    }
}
