import Collectives
import Foundation
import ZIPFoundation

// NumPy's `.npz`: a zip archive whose members are `.npy` files named after the arrays
// (`np.savez(path, x=…, y=…)` writes members "x.npy" and "y.npy"; `np.savez_compressed` the
// same, deflated). Each member is read into memory (an archive cannot be mapped) and parsed
// by the `.npy` reader, so every `.npy` check applies to it, with the member named in errors.

public enum Npz {
    /// The arrays `names` (without ".npy") of the archive at `url`. Throws
    /// `NpzError.badArchive` for a file that is not a readable zip, `.missingMember` for a
    /// name it lacks, and `NpyError` (naming "file.npz/x.npy") for a malformed member.
    public static func read(contentsOf url: URL, names: [String]) throws -> [String: NpyArray] {
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw NpzError.badArchive(path: url.path, detail: "not a zip archive: \(error)")
        }
        var arrays: [String: NpyArray] = [:]
        for name in names {
            let member = name + ".npy"
            guard let entry = archive[member], entry.type == .file else {
                throw NpzError.missingMember(path: url.path, member: member,
                                                 members: archive.filter { $0.type == .file }.map(\.path).sorted())
            }
            arrays[name] = try NpyArray.parse(storage: extract(entry, of: archive, url: url), file: "\(url.path)/\(member)")
        }
        return arrays
    }

    /// The member's bytes (inflated when deflated; CRC-32 checked) in one owned allocation.
    private static func extract(_ entry: Entry, of archive: Archive, url: URL) throws -> ByteStorage {
        let size = entry.uncompressedSize
        guard size <= UInt64(Int.max / 2) else {
            throw NpzError.badArchive(path: url.path, detail: "member \(printable(entry.path)) claims \(size) bytes")
        }
        let capacity = Int(size)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 64)
        let storage = ByteStorage(base: UnsafeRawPointer(raw), count: capacity) { raw.deallocate() }
        var written = 0
        do {
            _ = try archive.extract(entry) { chunk in
                guard written + chunk.count <= capacity else { throw ArchiveOverrun() }
                chunk.withUnsafeBytes { if let base = $0.baseAddress { (raw + written).copyMemory(from: base, byteCount: $0.count) } }
                written += chunk.count
            }
        } catch is ArchiveOverrun {
            throw NpzError.badArchive(path: url.path, detail: "member \(printable(entry.path)) is longer than the \(capacity) bytes its header states")
        } catch {
            throw NpzError.badArchive(path: url.path, detail: "member \(printable(entry.path)): \(error)")
        }
        guard written == capacity else {
            throw NpzError.badArchive(path: url.path, detail: "member \(printable(entry.path)) has \(written) of the \(capacity) bytes its header states")
        }
        return storage
    }

    private struct ArchiveOverrun: Error {}
}

/// Why a `.npz` archive was rejected; each description is one line naming the file, what is
/// wrong and what was expected.
public enum NpzError: SameOnEveryRankError, Equatable {
    case missingMember(path: String, member: String, members: [String])
    case badArchive(path: String, detail: String)

    public var description: String {
        switch self {
        case let .missingMember(path, member, members):
            "\(path): no member \(member) (it holds \(members.isEmpty ? "none" : members.map { printable($0) }.joined(separator: ", "))); "
                + "expected x, y and split, as np.savez(path, x=x, y=y, split=split) writes them"
        case let .badArchive(path, detail):
            "\(path): cannot read the .npz file (\(detail)); expected a zip of .npy members as np.savez or np.savez_compressed writes"
        }
    }
}
