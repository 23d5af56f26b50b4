import Foundation
import XBMData
import XBMKernels
import XBMTraining

/// Small datasets written to a temporary directory, for tests of the trainer.
public enum TrainingFixtures {
    /// A feature dataset (`SyntheticDataset`) in a temporary directory.
    public static func featureDataset(classes: Int = 12, perClass: Int = 6, dimension: Int = 16,
                                      trainClasses: Int = 8, seed: UInt64 = 5) throws -> URL {
        let directory = temporaryDirectory("features")
        try SyntheticDataset.write(directory: directory, classes: classes, perClass: perClass, dimension: dimension,
                                   trainClasses: trainClasses, seed: seed)
        return directory
    }

    /// An image dataset of 32×32 uint8 blobs: each class a bright square at its own place,
    /// with per-sample noise. With `channels` > 1 the square is dim in the channels
    /// (class + channel) divisible by 3, so classes differ in colour too.
    public static func imageDataset(classes: Int = 8, perClass: Int = 4, trainClasses: Int = 6, channels: Int = 1,
                                    seed: UInt64 = 9) throws -> URL {
        var random = RandomSource(seed: seed)
        var images: [UInt8] = [], labels: [Int32] = [], split: [UInt8] = []
        for c in 0..<classes {
            let (cx, cy) = (6 + (c * 7) % 20, 6 + (c * 11) % 20)
            for _ in 0..<perClass {
                for channel in 0..<channels {
                    let bright = channels == 1 || (c + channel) % 3 != 0 ? 200 : 80
                    for y in 0..<32 {
                        for x in 0..<32 {
                            let inside = abs(x - cx) <= 4 && abs(y - cy) <= 4
                            images.append(UInt8(min(255, (inside ? bright : 20) + random.nextInt(below: 40))))
                        }
                    }
                }
                labels.append(Int32(c))
                split.append(c < trainClasses ? 0 : 1)
            }
        }
        let directory = temporaryDirectory("images")
        try Dataset.write(directory: directory, images: images, imageShape: channels == 1 ? [32, 32] : [channels, 32, 32], labels: labels,
                          split: split, meta: ["name": "test-images"])
        return directory
    }

    /// A run small enough for a unit test on `data` (d 8, mlp width 16, global batch 16 of
    /// 4 classes × 4, no evaluation, checkpoints or drift unless a test turns them on).
    public static func smallRun(data: URL, iterations: Int) -> TrainingConfig {
        var c = TrainingConfig()
        c.model.data = data.path
        c.model.dim = 8
        c.model.hidden = 16
        c.optimization.batch = 16
        c.optimization.instances = 4
        c.optimization.iters = iterations
        c.evaluation.every = 0
        c.run.checkpointEvery = 0
        c.memory.driftEvery = 0
        return c
    }

    public static func temporaryDirectory(_ label: String) -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("xbm-\(label)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
