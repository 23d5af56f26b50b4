/// Why an import stopped. Each description is one line: the file (and for a list entry the
/// list file and line that named it), what is wrong, and what to do about it.
public enum ImportError: Error, CustomStringConvertible, Equatable {
    /// A list or annotation file of the layout is not where the layout keeps it.
    case missingList(path: String, layout: String)
    /// A list file that exists but cannot be read.
    case unreadableList(path: String)
    /// A list line that does not have the layout's fields.
    case malformedLine(ListLocation, problem: String, expected: String)
    /// A list that contradicts itself or another list of the same layout.
    case inconsistentList(ListLocation, problem: String)
    /// A .mat annotation file that libmatio cannot read or that lacks what the layout needs.
    case badAnnotations(path: String, problem: String)
    /// An image a list names is not on disk.
    case missingImage(path: String, listedAt: ListLocation, alsoMissing: Int)
    /// An image that exists but cannot be decoded.
    case unreadableImage(path: String, reason: String, listedAt: ListLocation)
    /// Nothing usable: every listed image was skipped, or the lists are empty.
    case nothingImported(source: String, detail: String)
    /// The output directory holds files an import did not write.
    case outputInUse(directory: String, file: String)
    /// A problem writing the output.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingList(path, layout):
            "\(path): missing; the \(layout) layout keeps it there — is SRC the directory the dataset unpacked to? (Docs/datasets.md)"
        case let .unreadableList(path):
            "\(path): cannot be read; check its permissions"
        case let .malformedLine(location, problem, expected):
            "\(location): \(problem); expected \(expected) — fix or delete the line"
        case let .inconsistentList(location, problem):
            "\(location): \(problem) — the lists do not belong together; unpack them again from the same download"
        case let .badAnnotations(path, problem):
            "\(path): \(problem) — expected the cars_annos.mat of the Cars196 download (Docs/datasets.md)"
        case let .missingImage(path, location, alsoMissing):
            "\(path): missing (named at \(location))"
                + (alsoMissing > 0 ? ", and \(alsoMissing) more listed image(s) are missing" : "")
                + "; check that SRC is the dataset's root, or pass --skip-unreadable to import the rest"
        case let .unreadableImage(path, reason, location):
            "\(path): cannot decode (\(reason)) (named at \(location)); replace the file, or pass --skip-unreadable to import the rest"
        case let .nothingImported(source, detail):
            "\(source): nothing to import: \(detail)"
        case let .outputInUse(directory, file):
            "\(directory): holds \(file), which an import did not write; choose an empty or new --out directory"
        case let .writeFailed(path, reason):
            "\(path): cannot write (\(reason)); check the space and permissions of the --out directory"
        }
    }
}
