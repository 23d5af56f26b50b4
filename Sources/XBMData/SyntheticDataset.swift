import Foundation
import XBMKernels

/// A small feature dataset with a known structure, for smoke tests of an installation and for
/// the launch checks: `classes` Gaussian clusters (unit-variance centres, `spread` noise) in
/// `dimension` dimensions; the first `trainClasses` classes are training (split 0), the rest
/// test (split 1). Deterministic for a seed.
public enum SyntheticDataset {
    public static func write(directory: URL, classes: Int = 60, perClass: Int = 10, dimension: Int = 32,
                             trainClasses: Int? = nil, spread: Float = 0.7, seed: UInt64 = 0) throws {
        precondition(classes >= 2 && perClass >= 1 && dimension >= 1,
                     "synthetic dataset needs ≥ 2 classes, ≥ 1 sample each and dimension ≥ 1")
        let train = trainClasses ?? (classes * 2 + 2) / 3
        var random = RandomSource(seed: seed)
        let centres = (0..<(classes * dimension)).map { _ in Float(random.nextNormal()) }
        var features: [Float] = [], labels: [Int32] = [], split: [UInt8] = []
        features.reserveCapacity(classes * perClass * dimension)
        for c in 0..<classes {
            for _ in 0..<perClass {
                for j in 0..<dimension { features.append(centres[c * dimension + j] + spread * Float(random.nextNormal())) }
                labels.append(Int32(c))
                split.append(c < train ? 0 : 1)
            }
        }
        try Dataset.write(directory: directory, features: features, dimension: dimension, labels: labels, split: split,
                          meta: ["name": "synthetic", "classes": classes, "per_class": perClass, "seed": Double(seed)])
    }
}
