import Foundation

/// The output of an import appears complete or not at all: files are written into a hidden
/// sibling staging directory that is renamed to the destination at the end. An existing
/// destination is replaced only when it holds nothing but files an import writes.
enum OutputDirectory {
    static let importFiles: Set<String> = ["meta.json", "x.npy", "y.npy", "split.npy", "super_labels.npy"]

    /// Throws when `directory` exists and holds a file an import did not write.
    static func checkReplaceable(_ directory: URL) throws {
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        let present = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        if let stranger = present.sorted().first(where: { !importFiles.contains($0) }) {
            throw ImportError.outputInUse(directory: directory.path, file: stranger)
        }
    }

    /// Runs `write` on a fresh staging directory, then moves it to `directory`.
    static func publish<T>(_ directory: URL, _ write: (URL) throws -> T) throws -> T {
        let fm = FileManager.default
        try checkReplaceable(directory)
        let parent = directory.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(directory.lastPathComponent).partial-\(getpid())")
        do {
            try fm.createDirectory(at: parent, withIntermediateDirectories: true)
            try? fm.removeItem(at: staging)
            try fm.createDirectory(at: staging, withIntermediateDirectories: false)
        } catch {
            throw ImportError.writeFailed(path: staging.path, reason: (error as NSError).localizedDescription)
        }
        do {
            let result = try write(staging)
            if fm.fileExists(atPath: directory.path) {
                try checkReplaceable(directory)
                try fm.removeItem(at: directory)
            }
            try fm.moveItem(at: staging, to: directory)
            return result
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }
}
