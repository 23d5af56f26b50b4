import Foundation
import Yams

extension TrainingConfig {
    /// Decodes a YAML config file's text over the defaults; `source` names it in errors.
    public init(yaml text: String, source: String) throws {
        try self.init(json: Self.jsonData(fromYAML: text, source: source), source: source)
    }

    /// The JSON form of a YAML config file (`--config run.yaml`): the same flat mapping of
    /// option names to values, read by Yams, so YAML and JSON files share one decoding path
    /// with the same defaults and the same unknown-key errors.
    static func jsonData(fromYAML text: String, source: String) throws -> Data {
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch {
            // Yams explains over several lines (the line, a caret); the report is one line.
            throw ConfigError("\(source): not valid YAML (\(printable("\(error)", limit: 200)))")
        }
        guard let mapping = document as? [AnyHashable: Any] else {
            throw ConfigError("\(source): expected a YAML mapping such as \"xbm-size: 16384\" on its own line")
        }
        var object: [String: Any] = [:]
        for (key, value) in mapping {
            guard let name = key.base as? String else {
                throw ConfigError("\(source): key \(printable("\(key.base)")) is not an option name")
            }
            object[name] = try jsonValue(value, key: name, source: source)
        }
        do { return try JSONSerialization.data(withJSONObject: object) } catch {
            throw ConfigError("\(source): cannot be read as options (\(printable("\(error)", limit: 200)))")
        }
    }

    /// A YAML scalar or sequence as JSON; a nested mapping is refused (the form is flat).
    private static func jsonValue(_ value: Any, key: String, source: String) throws -> Any {
        switch value {
        case let number as Double where !number.isFinite:
            // YAML spells them .nan and .inf; JSON, and so the options, have no such numbers.
            throw ConfigError("\(source): key \"\(key)\" holds \(number); options take finite numbers")
        case is String, is Int, is Double, is Bool, is NSNull: return value
        case let list as [Any]: return try list.map { try jsonValue($0, key: key, source: source) }
        default:
            throw ConfigError("\(source): key \"\(key)\" holds a \(type(of: value)); options take a number, a string, true/false or a list")
        }
    }
}
