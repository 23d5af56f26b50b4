/// The published layouts `xbm-dist data import` reads (Docs/datasets.md).
public enum ImportFormat: String, CaseIterable, Sendable {
    case sop, inshop, vehicleid, cub, cars

    /// The dataset's usual name.
    public var title: String {
        switch self {
        case .sop: "Stanford Online Products"
        case .inshop: "In-shop Clothes Retrieval"
        case .vehicleid: "PKU VehicleID"
        case .cub: "CUB-200-2011"
        case .cars: "Cars196"
        }
    }

    /// The Recall@K cut-offs the metric-learning literature reports for the dataset; written
    /// to meta.json as `recall_k`, which evaluation uses unless --recall-k is given.
    public var recallK: [Int] {
        switch self {
        case .sop: [1, 10, 100, 1000]
        case .inshop: [1, 10, 20, 30, 40, 50]
        case .vehicleid: [1, 5]
        case .cub, .cars: [1, 2, 4, 8]
        }
    }

    /// How the published lists become split codes (recorded in meta.json).
    public func splitRule(vehicleIDTest: Int) -> String {
        switch self {
        case .sop: "Ebay_train.txt -> 0 (train), Ebay_test.txt -> 1 (test)"
        case .inshop: "list_eval_partition.txt status train -> 0, query -> 2, gallery -> 3"
        case .vehicleid: "train_test_split/train_list.txt -> 0 (train), train_test_split/test_list_\(vehicleIDTest).txt -> 1 (test)"
        case .cub: "classes 1-100 -> 0 (train), 101-200 -> 1 (test); train_test_split.txt not used"
        case .cars: "classes 1-98 -> 0 (train), 99-196 -> 1 (test); the annotations' test flag and bounding boxes not used"
        }
    }

    /// The evaluation protocol (recorded in meta.json).
    public var evaluationProtocol: String {
        let ks = "Recall@" + recallK.map(String.init).joined(separator: ",")
        return switch self {
        case .inshop: "\(ks): each query image (split 2) against the gallery (split 3)"
        default: "\(ks): each test image (split 1) against the other test images (query = gallery)"
        }
    }
}
