/// Labels 0 ..< classes from a layout's own class ids: each id's rank among the distinct
/// ids of the imported images, ascending. Train and test classes are disjoint in every
/// layout and ordered by id, so the training classes come first, as in the published lists.
enum ImportLabels {
    /// ids [7, 3, 7, 12] → [1, 0, 1, 2].
    static func ranks(_ ids: [Int]) -> [Int32] {
        let rank = Dictionary(uniqueKeysWithValues: Set(ids).sorted().enumerated().map { ($1, Int32($0)) })
        return ids.map { rank[$0]! }
    }
}
