/// An owned, 64-byte aligned, zero-initialised block of `Element`s: the storage for
/// parameters, gradients, optimizer moments, activations and workspaces. Reference type so
/// that slices handed out as pointers stay valid as long as the owner lives.
public final class FlatBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Element>

    public init(count: Int, initialValue: Element) {
        precondition(count >= 0, "FlatBuffer count must be non-negative, got \(count)")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Element>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        pointer.initialize(repeating: initialValue, count: count)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    @inlinable public var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    @inlinable public subscript(index: Int) -> Element {
        get { assert(index >= 0 && index < count, "index \(index) outside 0..<\(count)"); return pointer[index] }
        set { assert(index >= 0 && index < count, "index \(index) outside 0..<\(count)"); pointer[index] = newValue }
    }

    @inlinable public func fill(_ value: Element) { pointer.update(repeating: value, count: count) }

    public var array: [Element] { Array(buffer) }

    public func copy(from array: [Element]) {
        precondition(array.count == count, "copying \(array.count) elements into a buffer of \(count)")
        array.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }
}

extension FlatBuffer where Element: Numeric {
    public convenience init(count: Int) { self.init(count: count, initialValue: .zero) }
    @inlinable public func zero() { fill(.zero) }
}

/// Index of the first NaN or ±infinity among `count` floats, or nil. Scans in blocks with
/// 0·x (NaN exactly when x is not finite), which vectorises, then locates the element.
public func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int? {
    let block = 256
    var start = 0
    while start < count {
        let end = min(start + block, count)
        var probe: Float = 0
        for i in start..<end { probe += values[i] * 0 }
        if !probe.isFinite { return (start..<end).first { !values[$0].isFinite } }
        start = end
    }
    return nil
}
