import Foundation
import SwiftProtobuf

/// What a TensorBoard event file holds (Docs/evaluation.md): `TFRecord`s of `Event` messages
/// (Protos/event.proto), the first naming the format version, each later one the scalars of
/// one step. `RunDirectory` writes them next to metrics.jsonl.
package enum TensorBoardEventFile {
    /// TensorBoard reads every file of a directory whose name contains "tfevents", in name order.
    package static let namePrefix = "events.out.tfevents."

    /// `events.out.tfevents.<unix seconds>.<host>`, TensorFlow's name for a file begun at `date`.
    package static func name(createdAt date: Date, host: String) -> String {
        "\(namePrefix)\(Int(date.timeIntervalSince1970)).\(host)"
    }

    /// The first record of a file: file_version "brain.Event:2" at step 0.
    package static func header(at date: Date = Date()) throws -> [UInt8] {
        var event = Tensorflow_Event()
        event.wallTime = date.timeIntervalSince1970
        event.fileVersion = "brain.Event:2"
        return try record(event)
    }

    /// One event at `step` holding each scalar as a `simple_value` tagged with its name, in
    /// tag order.
    package static func scalars(_ values: [String: Float], step: Int, at date: Date = Date()) throws -> [UInt8] {
        var event = Tensorflow_Event()
        event.wallTime = date.timeIntervalSince1970
        event.step = Int64(step)
        event.summary.value = values.sorted { $0.key < $1.key }.map { tag, value in
            var entry = Tensorflow_Summary.Value()
            entry.tag = tag
            entry.simpleValue = value
            return entry
        }
        return try record(event)
    }

    /// The records of an event file's `bytes` a resume keeps, as it keeps metrics.jsonl's lines
    /// up to its checkpoint: the header and the events at steps up to `step`. What follows a torn
    /// or damaged record is dropped.
    package static func trimmed(_ bytes: [UInt8], through step: Int) -> [UInt8] {
        TFRecord.read(bytes).records.filter { data in
            (try? Tensorflow_Event(serializedBytes: data)).map { $0.step <= step } ?? false
        }.flatMap(TFRecord.frame)
    }

    private static func record(_ event: Tensorflow_Event) throws -> [UInt8] {
        try TFRecord.frame(event.serializedBytes())
    }
}
