/// CUB-200-2011: `images.txt` (`1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg`,
/// paths relative to `images/`) and `image_class_labels.txt` (`1 1`), joined on the image id.
/// The metric-learning split: classes 1–100 → split 0, 101–200 → split 1 (train_test_split.txt,
/// the classification split, is not used).
enum CUBList {
    static let lastTrainingClass = 100

    static func parse(images: String, imagesFile: String, labels: String, labelsFile: String) throws -> [ListedImage] {
        var classes: [Int: Int] = [:]
        var labelLines: [Int: Int] = [:]
        for line in ListText.lines(labels) {
            let location = ListLocation(file: labelsFile, line: line.number)
            guard line.fields.count == 2, let id = ListText.integer(line.fields[0]), let label = ListText.integer(line.fields[1]) else {
                throw ImportError.malformedLine(location, problem: "\(ListText.quoted(line))",
                                                expected: "`IMAGE_ID CLASS_ID` (two integers)")
            }
            if let earlier = labelLines[id] {
                throw ImportError.inconsistentList(location, problem: "image id \(id) is labelled again (first at line \(earlier))")
            }
            classes[id] = label
            labelLines[id] = line.number
        }
        var seen = Set<Int>()
        let listed = try ListText.lines(images).map { line in
            let location = ListLocation(file: imagesFile, line: line.number)
            guard line.fields.count == 2, let id = ListText.integer(line.fields[0]) else {
                throw ImportError.malformedLine(location, problem: "\(ListText.quoted(line))",
                                                expected: "`IMAGE_ID PATH` (an integer and a path under images/)")
            }
            guard seen.insert(id).inserted else {
                throw ImportError.inconsistentList(location, problem: "image id \(id) is listed twice")
            }
            guard let label = classes[id] else {
                throw ImportError.inconsistentList(location, problem: "image id \(id) has no line in \(labelsFile)")
            }
            return ListedImage(path: "images/\(line.fields[1])", classID: label,
                               split: label <= lastTrainingClass ? 0 : 1, location: location)
        }
        if let orphan = labelLines.filter({ !seen.contains($0.key) }).min(by: { $0.value < $1.value }) {
            throw ImportError.inconsistentList(ListLocation(file: labelsFile, line: orphan.value),
                                               problem: "image id \(orphan.key) has no line in \(imagesFile)")
        }
        return listed
    }
}
