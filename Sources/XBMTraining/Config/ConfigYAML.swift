import Foundation
import XBMFormats
import Yams

extension TrainingConfig {
    /// Decodes a YAML config file's text over the defaults; `source` names it in errors.
    public init(yaml text: String, source: String) throws {
        try self.init(json: Self.jsonData(fromYAML: text, source: source), source: source)
    }

    /// The JSON form of a YAML config file (`--config run.yaml`): the same flat mapping of
    /// option names to values, read by Yams, so YAML and JSON files share one decoding path
    /// with the same defaults and the same unknown-key errors. The document is walked as Yams'
    /// node tree rather than converted whole: Yams traps on a mapping used as a key (found by
    /// FuzzYAML), and only scalars and lists of them are options anyway.
    static func jsonData(fromYAML text: String, source: String) throws -> Data {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            // Yams explains over several lines (the line, a caret); the report is one line.
            throw ConfigError("\(source): not valid YAML (\(printable("\(error)", limit: 200)))")
        }
        guard case let .mapping(mapping)? = root else {
            throw ConfigError("\(source): expected a YAML mapping such as \"xbm-size: 16384\" on its own line")
        }
        var object: [String: Any] = [:]
        for (key, value) in mapping {
            guard case let .scalar(name) = key else {
                throw ConfigError("\(source): a key that is not an option name (a \(kind(key)))")
            }
            object[name.string] = try jsonValue(value, key: name.string, source: source)
        }
        do { return try JSONSerialization.data(withJSONObject: object) } catch {
            throw ConfigError("\(source): cannot be read as options (\(printable("\(error)", limit: 200)))")
        }
    }

    /// A YAML scalar or sequence of them as JSON; a nested mapping is refused (the form is flat).
    private static func jsonValue(_ node: Node, key: String, source: String) throws -> Any {
        switch node {
        case .scalar:
            switch node.any {
            case let number as Double where !number.isFinite:
                // YAML spells them .nan and .inf; JSON, and so the options, have no such numbers.
                throw ConfigError("\(source): key \"\(printable(key))\" holds \(number); options take finite numbers")
            case let value where value is String || value is Int || value is Double || value is Bool || value is NSNull:
                return value
            case let value:
                throw ConfigError("\(source): key \"\(printable(key))\" holds a \(type(of: value)); options take a number, a string, true/false or a list")
            }
        case let .sequence(items):
            return try items.map { try jsonValue($0, key: key, source: source) }
        default:
            throw ConfigError("\(source): key \"\(printable(key))\" holds a \(kind(node)); options take a number, a string, true/false or a list")
        }
    }

    private static func kind(_ node: Node) -> String {
        switch node {
        case .scalar: "scalar"
        case .mapping: "mapping"
        case .sequence: "list"
        case .alias: "alias"
        }
    }
}
