import Foundation
import XBMKernels
import XBMModel
import XBMTraining
import XCTest

/// Docs/export.md: the exported file is safetensors (8-byte length, JSON header, aligned data)
/// holding the PyTorch state dict of the same network: names renamed, convolution weights in
/// PyTorch's (out, in, kh, kw) order. (Launch/test checks the embeddings in PyTorch itself.)
final class TorchExportTests: XCTestCase {
    private struct Parsed {
        var header: [String: [String: Any]]
        var metadata: [String: String]
        var data: [UInt8]

        init(_ file: [UInt8]) throws {
            let length = Int(file[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(file[8..<(8 + length)])) as? [String: Any])
            metadata = try XCTUnwrap(object.removeValue(forKey: "__metadata__") as? [String: String])
            header = object.compactMapValues { $0 as? [String: Any] }
            data = Array(file[(8 + length)...])
            XCTAssertEqual(length % 8, 0, "the data starts on an 8-byte boundary")
        }

        func floats(_ name: String) throws -> [Float] {
            let offsets = try XCTUnwrap(header[name]?["data_offsets"] as? [Int])
            return stride(from: offsets[0], to: offsets[1], by: 4).map { at in
                Float(bitPattern: UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3]) << 24)
            }
        }
    }

    func testGlyphNetExportsAsItsPyTorchStateDict() throws {
        let network = GlyphNet(embeddingSize: 3, maxBatch: 1, batchNorm: .local, height: 8, width: 8, channels: [2, 3, 4, 5])
        let parameters = FlatBuffer<Float>(count: network.parameterLayout.count)
        let state = FlatBuffer<Float>(count: network.stateLayout.count)
        for i in 0..<parameters.count { parameters[i] = Float(i) }      // each value its own index
        for i in 0..<state.count { state[i] = Float(-i) }
        let file = try Parsed(TorchExport.safetensors(model: .glyphnet, network: network, parameters: parameters.pointer,
                                                       state: state.pointer).encoded())

        var expected: Set<String> = ["fc.weight", "fc.bias"]
        for k in 1...4 {
            expected.formUnion(["conv\(k).weight", "bn\(k).weight", "bn\(k).bias", "bn\(k).running_mean",
                                "bn\(k).running_var", "bn\(k).num_batches_tracked"])
        }
        XCTAssertEqual(Set(file.header.keys), expected)
        XCTAssertEqual(file.metadata["model"], "glyphnet")
        XCTAssertEqual(file.metadata["embedding_size"], "3")
        XCTAssertEqual(file.header["bn2.num_batches_tracked"]?["dtype"] as? String, "I64")
        XCTAssertEqual(file.header["bn2.num_batches_tracked"]?["shape"] as? [Int], [])

        // conv2: xbm-dist (Co 3, 3, 3, Ci 2) → PyTorch (3, 2, 3, 3): [o][i][y][x] = [o][y][x][i].
        let conv2 = try XCTUnwrap(network.parameterLayout["conv2.weight"])
        XCTAssertEqual(file.header["conv2.weight"]?["shape"] as? [Int], [3, 2, 3, 3])
        let exported = try file.floats("conv2.weight")
        for o in 0..<3 { for i in 0..<2 { for y in 0..<3 { for x in 0..<3 {
            XCTAssertEqual(exported[((o * 2 + i) * 3 + y) * 3 + x], Float(conv2.offset + ((o * 3 + y) * 3 + x) * 2 + i))
        } } } }
        // Batch norm and the linear layer keep their layout; the state comes from the state buffer.
        let scale = try XCTUnwrap(network.parameterLayout["bn3.scale"])
        XCTAssertEqual(try file.floats("bn3.weight"), (0..<4).map { Float(scale.offset + $0) })
        let variance = try XCTUnwrap(network.stateLayout["bn1.runningVariance"])
        XCTAssertEqual(try file.floats("bn1.running_var"), (0..<2).map { Float(-(variance.offset + $0)) })
        let fc = try XCTUnwrap(network.parameterLayout["fc.weight"])
        XCTAssertEqual(file.header["fc.weight"]?["shape"] as? [Int], [3, 5])
        XCTAssertEqual(try file.floats("fc.weight"), (0..<15).map { Float(fc.offset + $0) })

        // The data offsets tile the data exactly.
        let ranges = file.header.values.compactMap { $0["data_offsets"] as? [Int] }.sorted { $0[0] < $1[0] }
        XCTAssertEqual(ranges.first?[0], 0)
        XCTAssertEqual(ranges.last?[1], file.data.count)
        for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a[1], b[0]) }
    }
}
