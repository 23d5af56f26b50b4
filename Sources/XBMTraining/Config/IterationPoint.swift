import Foundation

/// A point of a run given either as an iteration or as a share of the run's length
/// (`--iters`), so that a recipe's schedule stretches with the run instead of being tuned to
/// one length: `800` is iteration 800, `75%` is iteration round(0.75 · iters).
///
/// Written as an integer or as a string: `800`, `"800"` and `"75%"` in a config file;
/// `--milestones 75%` or `--xbm-start 800` on the command line.
public enum IterationPoint: Equatable, Sendable, Codable, CustomStringConvertible {
    case iteration(Int)
    /// In [0, 1].
    case fraction(Double)

    /// Parses `800` or `75%` (a percentage in 0…100, decimals allowed); nil otherwise.
    public init?(parsing text: String) {
        let text = text.trimmingCharacters(in: .whitespaces)
        if text.hasSuffix("%") {
            guard let percent = Double(text.dropLast()), percent.isFinite, percent >= 0, percent <= 100 else { return nil }
            self = .fraction(percent / 100)
        } else {
            guard let value = Int(text), value >= 0 else { return nil }
            self = .iteration(value)
        }
    }

    /// The iteration this point names in a run of `iterations` iterations.
    public func resolved(iterations: Int) -> Int {
        switch self {
        case let .iteration(value): value
        case let .fraction(share): Int((share * Double(iterations)).rounded())
        }
    }

    public var description: String {
        switch self {
        case let .iteration(value): "\(value)"
        case let .fraction(share): "\(formatPercent(share * 100))%"
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            guard let point = IterationPoint(parsing: "\(value)") else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an iteration ≥ 0 or a percentage such as \"75%\", got \(value)")
            }
            self = point
            return
        }
        let text = try container.decode(String.self)
        guard let point = IterationPoint(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an iteration ≥ 0 or a percentage such as \"75%\", got \"\(text)\"")
        }
        self = point
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .iteration(value): try container.encode(value)
        case .fraction: try container.encode(description)
        }
    }
}

/// When the cross-batch memory starts: at a point of the run, or (`auto`) at the first drift
/// measurement below `--drift-threshold`.
public enum MemoryStart: Equatable, Sendable, Codable, CustomStringConvertible {
    case at(IterationPoint)
    case auto

    public init?(parsing text: String) {
        if text.trimmingCharacters(in: .whitespaces) == "auto" { self = .auto; return }
        guard let point = IterationPoint(parsing: text) else { return nil }
        self = .at(point)
    }

    /// The first iteration with memory in a run of `iterations`, or nil for `auto`.
    public func resolved(iterations: Int) -> Int? {
        if case let .at(point) = self { point.resolved(iterations: iterations) } else { nil }
    }

    public var description: String {
        switch self {
        case let .at(point): point.description
        case .auto: "auto"
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), text == "auto" { self = .auto; return }
        self = .at(try container.decode(IterationPoint.self))
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case let .at(point): try point.encode(to: encoder)
        case .auto:
            var container = encoder.singleValueContainer()
            try container.encode("auto")
        }
    }
}

/// 75 → "75", 12.5 → "12.5": the shortest decimal that reads back to the same value.
private func formatPercent(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
}
