import XCTest
@testable import DatasetImport

/// The layouts' lists, parsed from text alone.
final class ListParsingTests: XCTestCase {
    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    func testSOP() throws {
        let text = "image_id class_id super_class_id path\n1 1 1 bicycle_final/111085122871_0.JPG\n\n3 7 2 chair_final/x_1.JPG\r\n"
        let images = try SOPList.parse(text, file: "Ebay_test.txt", split: 1)
        XCTAssertEqual(images, [
            ListedImage(path: "bicycle_final/111085122871_0.JPG", classID: 1, split: 1, superClassID: 1,
                        location: ListLocation(file: "Ebay_test.txt", line: 2)),
            ListedImage(path: "chair_final/x_1.JPG", classID: 7, split: 1, superClassID: 2,
                        location: ListLocation(file: "Ebay_test.txt", line: 4)),
        ])
        XCTAssertEqual(message { try SOPList.parse("image_id class_id super_class_id path\n1 1 bicycle_final/a.JPG\n", file: "Ebay_train.txt", split: 0) },
                       "Ebay_train.txt:2: 3 field(s) in '1 1 bicycle_final/a.JPG'; expected `image_id class_id super_class_id path` (three integers and a relative path) — fix or delete the line")
        XCTAssertEqual(message { try SOPList.parse("image_id class_id super_class_id path\n1 one 1 a.JPG\n", file: "Ebay_train.txt", split: 0) },
                       "Ebay_train.txt:2: a non-integer id in '1 one 1 a.JPG'; expected `image_id class_id super_class_id path` (three integers and a relative path) — fix or delete the line")
        XCTAssertEqual(message { try SOPList.parse("1 1 1 a.JPG\n", file: "Ebay_train.txt", split: 0) },
                       "Ebay_train.txt:1: header is '1 1 1 a.JPG'; expected the header `image_id class_id super_class_id path` — fix or delete the line")
    }

    func testInShop() throws {
        let text = """
            3
            image_name item_id evaluation_status
            img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train
            img/MEN/Denim/id_00000080/01_1_front.jpg     id_00000080 query
            img/MEN/Denim/id_00000080/01_2_side.jpg      id_00000080 gallery
            """
        let images = try InShopList.parse(text, file: "list_eval_partition.txt")
        XCTAssertEqual(images.map(\.classID), [2, 80, 80])
        XCTAssertEqual(images.map(\.split), [0, 2, 3])
        XCTAssertEqual(images.map(\.location.line), [3, 4, 5])
        XCTAssertEqual(images[1].path, "img/MEN/Denim/id_00000080/01_1_front.jpg")

        XCTAssertEqual(message { try InShopList.parse(text.replacingOccurrences(of: "gallery", with: "galery"), file: "p.txt") },
                       "p.txt:5: status 'galery'; expected `image_name item_id evaluation_status` with an item such as id_00000002 and a status train, query or gallery — fix or delete the line")
        XCTAssertEqual(message { try InShopList.parse(text.replacingOccurrences(of: " id_00000002 ", with: " 00000002 "), file: "p.txt") },
                       "p.txt:3: item '00000002' is not id_ and digits; expected `image_name item_id evaluation_status` with an item such as id_00000002 and a status train, query or gallery — fix or delete the line")
        XCTAssertEqual(message { try InShopList.parse(text.replacingOccurrences(of: "3\n", with: "4\n"), file: "p.txt") },
                       "p.txt:1: first line announces 4 images but the list has 3 — the lists do not belong together; unpack them again from the same download")
    }

    func testVehicleID() throws {
        let images = try VehicleIDList.parse("0000123 45\n0000124 45\n0099999 7\n", file: "train_list.txt", split: 0)
        XCTAssertEqual(images.map(\.path), ["image/0000123.jpg", "image/0000124.jpg", "image/0099999.jpg"])
        XCTAssertEqual(images.map(\.classID), [45, 45, 7])
        XCTAssertEqual(message { try VehicleIDList.parse("0000123 45\n0000124 x\n", file: "test_list_800.txt", split: 1) },
                       "test_list_800.txt:2: vehicle id 'x' is not an integer; expected `IMAGE_NAME VEHICLE_ID` (an image name and an integer vehicle id) — fix or delete the line")
    }

    func testCUBJoinsOnTheImageIDAndSplitsAtClass100() throws {
        let names = "1 001.Black_footed_Albatross/a.jpg\n2 100.Brown_Pelican/b.jpg\n3 101.White_Pelican/c.jpg\n"
        let labels = "2 100\n1 1\n3 101\n"
        let images = try CUBList.parse(images: names, imagesFile: "images.txt", labels: labels, labelsFile: "image_class_labels.txt")
        XCTAssertEqual(images.map(\.path), ["images/001.Black_footed_Albatross/a.jpg", "images/100.Brown_Pelican/b.jpg", "images/101.White_Pelican/c.jpg"])
        XCTAssertEqual(images.map(\.classID), [1, 100, 101])
        XCTAssertEqual(images.map(\.split), [0, 0, 1])
        XCTAssertEqual(message { try CUBList.parse(images: names + "4 x/d.jpg\n", imagesFile: "images.txt", labels: labels, labelsFile: "image_class_labels.txt") },
                       "images.txt:4: image id 4 has no line in image_class_labels.txt — the lists do not belong together; unpack them again from the same download")
        XCTAssertEqual(message { try CUBList.parse(images: names, imagesFile: "images.txt", labels: labels + "9 5\n", labelsFile: "image_class_labels.txt") },
                       "image_class_labels.txt:4: image id 9 has no line in images.txt — the lists do not belong together; unpack them again from the same download")
        XCTAssertEqual(message { try CUBList.parse(images: names, imagesFile: "images.txt", labels: "1 1 1\n", labelsFile: "image_class_labels.txt") },
                       "image_class_labels.txt:1: '1 1 1'; expected `IMAGE_ID CLASS_ID` (two integers) — fix or delete the line")
    }

    func testCarsSplitsAtClass98AndIgnoresTheTestFlag() {
        let records = [CarsAnnotations.Record(path: "car_ims/000001.jpg", classNumber: 98, index: 1),
                       CarsAnnotations.Record(path: "car_ims/000002.jpg", classNumber: 99, index: 2)]
        let images = CarsAnnotations.images(records, file: "cars_annos.mat")
        XCTAssertEqual(images.map(\.split), [0, 1])
        XCTAssertEqual(images[1].location.description, "cars_annos.mat:2")
    }

    func testLabelsAreAscendingRanksOfTheIDs() {
        XCTAssertEqual(ImportLabels.ranks([7, 3, 7, 12]), [1, 0, 1, 2])
        XCTAssertEqual(ImportLabels.ranks([]), [])
    }
}
