/// In-shop Clothes Retrieval: `list_eval_partition.txt` (in `Eval/` of the download, or in
/// the root). Line 1 is the number of images, line 2 the header
/// `image_name item_id evaluation_status`, then e.g.
/// `img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train`.
/// Status train → split 0, query → 2, gallery → 3; item `id_00000002` → class 2.
enum InShopList {
    static let header = ["image_name", "item_id", "evaluation_status"]
    static let expected = "`image_name item_id evaluation_status` with an item such as id_00000002 and a status train, query or gallery"
    static let splits: [Substring: UInt8] = ["train": 0, "query": 2, "gallery": 3]

    static func parse(_ text: String, file: String) throws -> [ListedImage] {
        let lines = ListText.lines(text)
        guard lines.count >= 2 else {
            throw ImportError.malformedLine(ListLocation(file: file, line: lines.first?.number ?? 1),
                                            problem: "the list ends before its header",
                                            expected: "a count line, the header `\(header.joined(separator: " "))`, then one image per line")
        }
        let countLine = lines[0], headerLine = lines[1]
        guard countLine.fields.count == 1, let declared = ListText.integer(countLine.fields[0]) else {
            throw ImportError.malformedLine(ListLocation(file: file, line: countLine.number),
                                            problem: "first line is \(ListText.quoted(countLine))",
                                            expected: "the number of images alone")
        }
        guard headerLine.fields.map(String.init) == header else {
            throw ImportError.malformedLine(ListLocation(file: file, line: headerLine.number),
                                            problem: "header is \(ListText.quoted(headerLine))",
                                            expected: "the header `\(header.joined(separator: " "))`")
        }
        let images = try lines.dropFirst(2).map { line in
            let location = ListLocation(file: file, line: line.number)
            guard line.fields.count == 3 else {
                throw ImportError.malformedLine(location, problem: "\(line.fields.count) field(s) in \(ListText.quoted(line))",
                                                expected: expected)
            }
            guard let item = itemNumber(line.fields[1]) else {
                throw ImportError.malformedLine(location, problem: "item '\(line.fields[1])' is not id_ and digits",
                                                expected: expected)
            }
            guard let split = splits[line.fields[2]] else {
                throw ImportError.malformedLine(location, problem: "status '\(line.fields[2])'", expected: expected)
            }
            return ListedImage(path: String(line.fields[0]), classID: item, split: split, location: location)
        }
        guard images.count == declared else {
            throw ImportError.inconsistentList(ListLocation(file: file, line: countLine.number),
                                               problem: "first line announces \(declared) images but the list has \(images.count)")
        }
        return images
    }

    /// `id_00000002` → 2.
    static func itemNumber(_ field: Substring) -> Int? {
        guard field.hasPrefix("id_") else { return nil }
        return ListText.integer(field.dropFirst(3))
    }
}
