/// Where each named tensor lives in a flat buffer. Parameters, their gradients and the
/// optimizer's moments share one layout, so "the gradient of conv1.weight" is the same slice
/// of a different buffer; checkpoints store the layout to refuse a mismatched model.
public struct ParameterLayout: Sendable, Equatable, Codable {
    public struct Entry: Sendable, Equatable, Codable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// Weight decay applies to weights, not to biases or norm scales and shifts.
        public let decays: Bool
    }

    public private(set) var entries: [Entry] = []
    public private(set) var count = 0

    public init() {}

    /// Appends a tensor and returns its offset.
    @discardableResult
    public mutating func add(_ name: String, shape: [Int], decays: Bool = true) -> Int {
        precondition(!entries.contains { $0.name == name }, "duplicate tensor name \(name) in layout")
        precondition(shape.allSatisfy { $0 > 0 }, "tensor \(name) has a non-positive dimension: \(shape)")
        let entry = Entry(name: name, shape: shape, offset: count, decays: decays)
        entries.append(entry)
        count += entry.count
        return entry.offset
    }

    public subscript(name: String) -> Entry? { entries.first { $0.name == name } }

    /// A one-line description of every tensor, for logs and mismatch errors.
    public var summary: String {
        entries.map { "\($0.name)\($0.shape)" }.joined(separator: ", ")
    }
}
