import Collectives
import Foundation
@testable import XBMEval
import XBMKernels
import XCTest

/// k-means: the seeding's distribution, Lloyd's fixed point checked by brute force, blobs
/// recovered, and the same result on any number of ranks.
final class KMeansTests: XCTestCase {
    /// `classes` Gaussian blobs of `perClass` points in d dimensions, centres `spread` apart
    /// along the axes, noise σ = `noise`, in shuffled order. Returns (points, class of each).
    func blobs(classes: Int, perClass: Int, d: Int, spread: Double, noise: Double, seed: UInt64) -> ([Float], [Int32]) {
        var random = RandomSource(seed: seed)
        var order = Array(0..<(classes * perClass))
        order.shuffle(using: &random)
        var points = [Float](repeating: 0, count: order.count * d), labels = [Int32](repeating: 0, count: order.count)
        for (row, item) in order.enumerated() {
            let label = item / perClass
            labels[row] = Int32(label)
            for t in 0..<d {
                let centre = t == label % d ? spread * Double(1 + label / d) : 0
                points[row * d + t] = Float(centre + noise * random.nextNormal())
            }
        }
        return (points, labels)
    }

    func cluster(_ points: [Float], d: Int, k: Int, seed: UInt64 = 7, maxIterations: Int = KMeans.defaultMaxIterations,
                 tolerance: Double = KMeans.defaultTolerance) throws -> KMeans.Result {
        try points.withUnsafeBufferPointer {
            try KMeans.cluster(points: $0.baseAddress!, count: points.count / d, dimension: d, clusters: k, seed: seed,
                               maxIterations: maxIterations, tolerance: tolerance, comm: SingleProcessCommunicator())
        }
    }

    func testRecoversSeparatedBlobs() throws {
        let (points, classes) = blobs(classes: 6, perClass: 37, d: 8, spread: 10, noise: 0.1, seed: 1)
        let result = try cluster(points, d: 8, k: 6)
        XCTAssertTrue(result.converged)
        // The same partition: each cluster holds exactly one class.
        var classOfCluster: [Int32: Int32] = [:]
        for (cluster, label) in zip(result.assignments, classes) {
            XCTAssertEqual(classOfCluster[cluster, default: label], label, "cluster \(cluster) mixes classes")
            classOfCluster[cluster] = label
        }
        XCTAssertEqual(classOfCluster.count, 6)
        XCTAssertEqual(MutualInformation(classes: classes, clusters: result.assignments).normalized, 1, accuracy: 1e-12)
    }

    /// Run to a fixed point (tolerance 0: until no point moves), every point is assigned to its
    /// nearest centroid and every centroid is the mean of its points, both computed here in
    /// Double. Float distances of points ~3 apart round at ~1e-6; the means of ≤ 100 Floats at
    /// ~1e-6 of their size.
    func testEndsAtAFixedPointOfLloydsIterations() throws {
        let (points, _) = blobs(classes: 12, perClass: 25, d: 5, spread: 2, noise: 1, seed: 2)
        let d = 5, k = 9, n = points.count / d
        let result = try cluster(points, d: d, k: k, maxIterations: 500, tolerance: 0)
        XCTAssertTrue(result.converged)
        XCTAssertGreaterThan(result.iterations, 3, "overlapping blobs should take a few iterations")
        func distance(_ row: Int, _ j: Int) -> Double {
            (0..<d).reduce(0.0) { $0 + pow(Double(points[row * d + $1]) - Double(result.centroids[j * d + $1]), 2) }
        }
        for row in 0..<n {
            let assigned = distance(row, Int(result.assignments[row]))
            let nearest = (0..<k).map { distance(row, $0) }.min()!
            XCTAssertLessThanOrEqual(assigned, nearest + 1e-4, "row \(row)")
        }
        for j in 0..<k {
            let members = (0..<n).filter { result.assignments[$0] == Int32(j) }
            XCTAssertFalse(members.isEmpty, "cluster \(j) is empty")
            for t in 0..<d {
                let mean = members.reduce(0.0) { $0 + Double(points[$1 * d + t]) } / Double(members.count)
                XCTAssertEqual(Double(result.centroids[j * d + t]), mean, accuracy: 1e-5, "centroid \(j), dimension \(t)")
            }
        }
    }

    /// k-means++ on the line: points 0, 1 and 3, k = 2. One iteration returns the seeds: the
    /// first is uniform, the second drawn with probability D² / Σ D² — after 0: 1 with 1/10,
    /// 3 with 9/10; after 1: 0 with 1/5, 3 with 4/5; after 3: 0 with 9/13, 1 with 4/13. Over
    /// 3,000 seeds each frequency must lie within 4.5 standard deviations of its probability.
    func testSeedingDrawsInProportionToSquaredDistance() throws {
        let points: [Float] = [0, 1, 3]
        var counts: [[Int]] = Array(repeating: [0, 0, 0], count: 3)       // [first][second]
        for seed in 0..<3000 {
            let result = try cluster(points, d: 1, k: 2, seed: UInt64(seed), maxIterations: 1)
            let first = points.firstIndex(of: result.centroids[0])!, second = points.firstIndex(of: result.centroids[1])!
            counts[first][second] += 1
        }
        let probability: [[Double]] = [[0, 0.1, 0.9], [0.2, 0, 0.8], [9.0 / 13, 4.0 / 13, 0]]
        for first in 0..<3 {
            let draws = counts[first].reduce(0, +)
            XCTAssertEqual(Double(draws), 1000, accuracy: 4.5 * (3000 * 1.0 / 3 * 2.0 / 3).squareRoot(), "first seed \(points[first])")
            for second in 0..<3 {
                let p = probability[first][second], expected = Double(draws) * p
                XCTAssertEqual(Double(counts[first][second]), expected, accuracy: 4.5 * (Double(draws) * p * (1 - p)).squareRoot() + 1e-9,
                               "second seed \(points[second]) after \(points[first])")
            }
        }
    }

    /// 1,000 points (blocks of 256, 256, 256 and 232) on 1, 2, 3 and 5 simulated ranks (the
    /// fifth rank holds no block): seeds, iterations, assignments and centroids agree bit for bit.
    func testTheSameOnAnyNumberOfRanks() throws {
        let (points, _) = blobs(classes: 25, perClass: 40, d: 16, spread: 1.5, noise: 1, seed: 3)
        let single = try cluster(points, d: 16, k: 25)
        XCTAssertGreaterThan(single.iterations, 3)
        for size in [2, 3, 5] {
            let results = try SimulatedRanks.run(size: size) { comm in
                try points.withUnsafeBufferPointer {
                    try KMeans.cluster(points: $0.baseAddress!, count: 1000, dimension: 16, clusters: 25, seed: 7, comm: comm)
                }
            }
            for (rank, result) in results.enumerated() { XCTAssertEqual(result, single, "\(size) ranks, rank \(rank)") }
        }
    }

    /// Identical points: every D² is 0, so seeds are drawn uniformly and clusters go empty;
    /// the run still ends with valid assignments.
    func testIdenticalPoints() throws {
        let result = try cluster([Float](repeating: 0.5, count: 10 * 3), d: 3, k: 4)
        XCTAssertTrue(result.converged)
        XCTAssertTrue(result.assignments.allSatisfy { (0..<4).contains($0) })
        XCTAssertEqual(result.centroids, [Float](repeating: 0.5, count: 12))
    }
}
