import CMatio
import Foundation

/// Cars196: `cars_annos.mat` in the dataset root holds `annotations`, a 1 × 16,185 struct
/// array with fields relative_im_path (`car_ims/000001.jpg`, relative to the root),
/// bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1–196) and test. The metric-learning split:
/// classes 1–98 → split 0, 99–196 → split 1; the `test` flag (the classification split) and
/// the bounding boxes are not used: the whole picture is imported, as the XBM code does.
enum CarsAnnotations {
    static let lastTrainingClass = 98

    /// One element of `annotations`; `index` counts from 1 (MATLAB's `annotations(index)`).
    struct Record: Equatable {
        var path: String
        var classNumber: Int
        var index: Int
    }

    /// The images the records name, split by class.
    static func images(_ records: [Record], file: String) -> [ListedImage] {
        records.map { record in
            ListedImage(path: record.path, classID: record.classNumber,
                        split: record.classNumber <= lastTrainingClass ? 0 : 1,
                        location: ListLocation(file: file, line: record.index))
        }
    }

    /// Reads `annotations` from a MATLAB file through libmatio (version 5, or 7.3 when libmatio
    /// was built with HDF5, as Debian's is).
    static func read(_ url: URL) throws -> [Record] {
        func fail(_ problem: String) -> ImportError { .badAnnotations(path: url.path, problem: problem) }
        guard let file = Mat_Open(url.path, Int32(MAT_ACC_RDONLY.rawValue)) else {
            throw fail("libmatio cannot open it as a MATLAB file")
        }
        defer { Mat_Close(file) }
        guard let annotations = Mat_VarRead(file, "annotations") else { throw fail("it has no variable 'annotations'") }
        defer { Mat_VarFree(annotations) }
        guard annotations.pointee.class_type == MAT_C_STRUCT else { throw fail("'annotations' is not a struct array") }
        let count = (0..<Int(annotations.pointee.rank)).reduce(1) { $0 * annotations.pointee.dims[$1] }
        return try (0..<count).map { i in
            func field(_ name: String) throws -> UnsafeMutablePointer<matvar_t> {
                guard let value = Mat_VarGetStructFieldByName(annotations, name, i) else {
                    throw fail("annotations(\(i + 1)) has no field '\(name)'")
                }
                return value
            }
            guard let path = text(try field("relative_im_path")), !path.isEmpty else {
                throw fail("annotations(\(i + 1)).relative_im_path is not a non-empty string")
            }
            guard let classNumber = integer(try field("class")), classNumber >= 1 else {
                throw fail("annotations(\(i + 1)).class is not a positive integer")
            }
            return Record(path: path, classNumber: classNumber, index: i + 1)
        }
    }

    /// A MATLAB char row as a String (8-bit or UTF-16 storage).
    static func text(_ variable: UnsafeMutablePointer<matvar_t>) -> String? {
        let v = variable.pointee
        guard v.class_type == MAT_C_CHAR, let data = v.data else { return nil }
        let length = (0..<Int(v.rank)).reduce(1) { $0 * v.dims[$1] }
        switch v.data_type {
        case MAT_T_UINT8, MAT_T_INT8, MAT_T_UTF8:
            return String(decoding: UnsafeBufferPointer(start: data.assumingMemoryBound(to: UInt8.self), count: length), as: UTF8.self)
        case MAT_T_UINT16, MAT_T_INT16, MAT_T_UTF16:
            return String(decoding: UnsafeBufferPointer(start: data.assumingMemoryBound(to: UInt16.self), count: length), as: UTF16.self)
        default:
            return nil
        }
    }

    /// A real numeric scalar holding an integer, whatever its MATLAB class.
    static func integer(_ variable: UnsafeMutablePointer<matvar_t>) -> Int? {
        let v = variable.pointee
        let length = (0..<Int(v.rank)).reduce(1) { $0 * v.dims[$1] }
        guard length == 1, v.isComplex == 0, let data = v.data else { return nil }
        let value: Double
        switch v.data_type {
        case MAT_T_DOUBLE: value = data.load(as: Double.self)
        case MAT_T_SINGLE: value = Double(data.load(as: Float.self))
        case MAT_T_INT8: value = Double(data.load(as: Int8.self))
        case MAT_T_UINT8: value = Double(data.load(as: UInt8.self))
        case MAT_T_INT16: value = Double(data.load(as: Int16.self))
        case MAT_T_UINT16: value = Double(data.load(as: UInt16.self))
        case MAT_T_INT32: value = Double(data.load(as: Int32.self))
        case MAT_T_UINT32: value = Double(data.load(as: UInt32.self))
        case MAT_T_INT64: value = Double(data.load(as: Int64.self))
        case MAT_T_UINT64: value = Double(data.load(as: UInt64.self))
        default: return nil
        }
        guard value.rounded() == value, abs(value) < 1e15 else { return nil }
        return Int(value)
    }
}
