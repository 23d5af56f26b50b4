import Collectives
/// Why a dataset directory was rejected (Docs/distributed.md); each description is one line naming the
/// file, what is wrong and what was expected.
public enum DatasetError: SameOnEveryRankError, Equatable {
    case missingFile(path: String)
    case badMeta(path: String, detail: String)
    case badRecallK(path: String)
    case badShape(path: String, shape: [Int], expected: String)
    case badDType(path: String, dtype: String, expected: String)
    case countMismatch(path: String, count: Int, expected: Int, reference: String)
    case negativeLabel(path: String, index: Int, value: Int64)
    case labelOutOfRange(path: String, index: Int, value: Int64)
    case badSplitValue(path: String, index: Int, value: UInt8)
    case nonFiniteFeature(path: String, sample: Int, component: Int)
    case tooFewTrainingClasses(path: String, classes: Int)
    case notImages(path: String)

    public var description: String {
        switch self {
        case let .missingFile(path):
            "\(path): missing; a dataset directory needs meta.json, x.npy, y.npy and split.npy (or data.npz, Docs/data.md)"
        case let .badMeta(path, detail):
            "\(path): bad meta.json: \(detail); expected a JSON object"
        case let .badRecallK(path):
            "\(path): recall_k is not a list of positive integers; expected Recall@K cut-offs such as [1, 10, 100], or no recall_k"
        case let .badShape(path, shape, expected):
            "\(path): shape \(shape) is not supported; expected \(expected)"
        case let .badDType(path, dtype, expected):
            "\(path): dtype \(dtype) is not supported; expected \(expected)"
        case let .countMismatch(path, count, expected, reference):
            "\(path): has \(count) entries but \(reference) has \(expected); expected the same N"
        case let .negativeLabel(path, index, value):
            "\(path): label \(value) at index \(index) is negative; expected labels ≥ 0"
        case let .labelOutOfRange(path, index, value):
            "\(path): label \(value) at index \(index) does not fit in Int32; expected labels < 2^31"
        case let .badSplitValue(path, index, value):
            "\(path): split value \(value) at index \(index); expected 0 train, 1 test, 2 query or 3 gallery"
        case let .nonFiniteFeature(path, sample, component):
            "\(path): feature \(component) of sample \(sample) is not finite; expected finite float32 features"
        case let .tooFewTrainingClasses(path, classes):
            "\(path): the training split (split 0) has \(classes) class(es); expected at least 2"
        case let .notImages(path):
            "\(path): holds feature vectors; expected images for this operation"
        }
    }
}
