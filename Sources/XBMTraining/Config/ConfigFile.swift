import Foundation
import XBMFormats

/// Reading the JSON form of a configuration: a `--config` file, a run's `config.json`, the
/// record in a checkpoint. Keys left out keep their defaults, so a file may name only a few;
/// unknown keys are errors (a typo must not silently fall back to a default).
extension TrainingConfig {
    public static func load(file: URL) throws -> TrainingConfig {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw ConfigError("--config \(file.path): cannot read the file (\(error.localizedDescription))")
        }
        let source = "--config \(file.path)"
        guard ["yaml", "yml"].contains(file.pathExtension.lowercased()) else { return try TrainingConfig(json: data, source: source) }
        return try TrainingConfig(yaml: String(decoding: data, as: UTF8.self), source: source)
    }

    /// Decodes `data` over the defaults; `source` names it in errors.
    public init(json data: Data, source: String) throws {
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            // Foundation's reason points at the spot: "Unexpected end of file during JSON parse.",
            // "Number with leading zero around character 8.", "Too many nested arrays …".
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw ConfigError("\(source): not valid JSON: \(printable(reason, limit: 200))")
        }
        guard let given = parsed as? [String: Any] else {
            throw ConfigError("\(source): expected a JSON object such as {\"xbm-size\": 16384, \"lr\": 0.001}")
        }
        let known = Set(Self.keys)
        if let unknown = given.keys.sorted().first(where: { !known.contains($0) }) {
            let hint = known.min { editDistance($0, unknown) < editDistance($1, unknown) } ?? ""
            throw ConfigError("\(source): unknown key \"\(printable(unknown))\" (did you mean \"\(hint)\"?)")
        }
        // The defaults' own JSON form under the given keys: one decoding path for both.
        let defaults = (try? JSONSerialization.jsonObject(with: TrainingConfig().json())) as? [String: Any] ?? [:]
        func decode(_ keys: some Sequence<String>) throws -> TrainingConfig {
            let merged = defaults.merging(keys.map { ($0, given[$0]!) }) { _, new in new }
            return try JSONDecoder().decode(TrainingConfig.self, from: JSONSerialization.data(withJSONObject: merged))
        }
        do {
            self = try decode(given.keys)
        } catch let error as DecodingError {
            // Foundation reports a number its type cannot hold (a seed of -1 or 1.5) as "not valid
            // JSON" with no key; decoding the keys one at a time finds the key to name.
            if case let .dataCorrupted(context) = error, context.codingPath.isEmpty,
               let key = given.keys.sorted().first(where: { (try? decode([$0])) == nil }) {
                throw ConfigError("\(source): key \"\(key)\" cannot hold \(printable(jsonText(given[key]!)))"
                                      + (defaults[key].map { "; its default is \(jsonText($0))" } ?? ""))
            }
            throw ConfigError("\(source): \(describe(error))")
        }
    }
}

/// A JSON value as it would be written in a config file.
private func jsonText(_ value: Any) -> String {
    let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])
    return data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
