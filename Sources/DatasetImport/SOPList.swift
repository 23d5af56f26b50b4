/// Stanford Online Products: `Ebay_train.txt` and `Ebay_test.txt` in the dataset root, each
/// with the header line `image_id class_id super_class_id path` and then one image per line,
/// e.g. `1 1 1 bicycle_final/111085122871_0.JPG`; paths are relative to the root.
/// Ebay_train.txt → split 0, Ebay_test.txt → split 1 (query = gallery).
enum SOPList {
    static let header = ["image_id", "class_id", "super_class_id", "path"]
    static let expected = "`image_id class_id super_class_id path` (three integers and a relative path)"

    static func parse(_ text: String, file: String, split: UInt8) throws -> [ListedImage] {
        let lines = ListText.lines(text)
        guard let first = lines.first else { return [] }
        guard first.fields.map(String.init) == header else {
            throw ImportError.malformedLine(ListLocation(file: file, line: first.number),
                                            problem: "header is \(ListText.quoted(first))",
                                            expected: "the header `\(header.joined(separator: " "))`")
        }
        return try lines.dropFirst().map { line in
            let location = ListLocation(file: file, line: line.number)
            guard line.fields.count == 4 else {
                throw ImportError.malformedLine(location, problem: "\(line.fields.count) field(s) in \(ListText.quoted(line))",
                                                expected: expected)
            }
            guard let classID = ListText.integer(line.fields[1]), let superClassID = ListText.integer(line.fields[2]),
                  ListText.integer(line.fields[0]) != nil else {
                throw ImportError.malformedLine(location, problem: "a non-integer id in \(ListText.quoted(line))",
                                                expected: expected)
            }
            return ListedImage(path: String(line.fields[3]), classID: classID, split: split,
                               superClassID: superClassID, location: location)
        }
    }
}
