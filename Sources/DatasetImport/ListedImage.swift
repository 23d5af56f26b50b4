/// Where a list file names something: `file:line`, the prefix of every error about it.
public struct ListLocation: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The list file as the user would find it (its path under the source directory).
    public var file: String
    /// 1-based line number (for a .mat file: the 1-based index of the struct element).
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// One image a published list names, before anything is decoded.
public struct ListedImage: Equatable, Sendable {
    /// Path of the image file relative to the layout's image root.
    public var path: String
    /// The layout's own class id (SOP class_id, In-shop item number, VehicleID vehicle id,
    /// CUB and Cars class number); `ImportLabels` turns these into 0 ..< classes.
    public var classID: Int
    /// Dataset split code (Docs/data.md): 0 train, 1 test (query = gallery), 2 query only, 3 gallery only.
    public var split: UInt8
    /// SOP's super_class_id (the 12 product categories); nil for the other layouts.
    public var superClassID: Int?
    /// The list line that named the image.
    public var location: ListLocation

    public init(path: String, classID: Int, split: UInt8, superClassID: Int? = nil, location: ListLocation) {
        self.path = path
        self.classID = classID
        self.split = split
        self.superClassID = superClassID
        self.location = location
    }
}
