/// PKU VehicleID: `train_test_split/train_list.txt` and `test_list_800.txt`,
/// `test_list_1600.txt` or `test_list_2400.txt`, one `IMAGE_NAME VEHICLE_ID` per line
/// (e.g. `0001234 56`), the picture in `image/IMAGE_NAME.jpg`. Train → split 0; the chosen
/// test list → split 1 (query = gallery, as metric-learning papers evaluate it).
enum VehicleIDList {
    static let expected = "`IMAGE_NAME VEHICLE_ID` (an image name and an integer vehicle id)"

    /// The three published test sets, by their number of vehicles.
    static let testSizes = [800, 1600, 2400]

    static func parse(_ text: String, file: String, split: UInt8) throws -> [ListedImage] {
        try ListText.lines(text).map { line in
            let location = ListLocation(file: file, line: line.number)
            guard line.fields.count == 2 else {
                throw ImportError.malformedLine(location, problem: "\(line.fields.count) field(s) in \(ListText.quoted(line))",
                                                expected: expected)
            }
            guard let vehicle = ListText.integer(line.fields[1]) else {
                throw ImportError.malformedLine(location, problem: "vehicle id '\(line.fields[1])' is not an integer",
                                                expected: expected)
            }
            return ListedImage(path: "image/\(line.fields[0]).jpg", classID: vehicle, split: split, location: location)
        }
    }
}
