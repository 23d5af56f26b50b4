import Foundation
@testable import XBMEval
import XCTest

/// NMI and AMI against scikit-learn's own numbers on label pairs (Fixtures/clustering/,
/// written by Launch/clustering-fixtures.py with scikit-learn; the tests read the JSON only).
///
/// Tolerance 1e-10, absolute. E[I] adds terms exp(g) whose exponent g sums nine log-factorials
/// as large as ln N! (≈ 1.3e4 for the largest fixture, N = 2,000); each is rounded to about
/// 1.1e-16 of its size in either implementation, so g, and with it every term, carries a
/// relative error up to ≈ 9 × 1.3e4 × 1.1e-16 ≈ 1.3e-11 in each. The sums and logarithms of
/// I, H and E[I] add ≈ 1e-15 each; AMI divides by (H(U) + H(V))/2 − E[I] ≥ 0.4 here.
final class MutualInformationTests: XCTestCase {
    struct Fixture: Decodable {
        var name: String
        var classes: [Int32]
        var clusters: [Int32]
        var nmi: Double, ami: Double, mi: Double, emi: Double
    }

    static let fixtures: [Fixture] = {
        struct File: Decodable { var cases: [Fixture] }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/clustering/mutual-information.json")
        return try! JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
    }()

    func testScikitLearnsScoresOnEveryFixture() {
        XCTAssertGreaterThanOrEqual(Self.fixtures.count, 15)
        for fixture in Self.fixtures {
            let scores = MutualInformation(classes: fixture.classes, clusters: fixture.clusters)
            for (name, ours, theirs) in [("I", scores.mutualInformation, fixture.mi),
                                         ("E[I]", scores.expectedMutualInformation, fixture.emi),
                                         ("NMI", scores.normalized, fixture.nmi), ("AMI", scores.adjusted, fixture.ami)] {
                XCTAssertEqual(ours, theirs, accuracy: 1e-10, "\(name) of \(fixture.name)")
            }
        }
    }

    /// The fixtures' special cases, by their known values.
    func testSpecialCases() {
        XCTAssertEqual(MutualInformation(classes: [], clusters: []).normalized, 1)
        XCTAssertEqual(MutualInformation(classes: [], clusters: []).adjusted, 1)
        let oneClass = MutualInformation(classes: [7, 7, 7, 7], clusters: [0, 1, 2, 3])
        XCTAssertEqual([oneClass.normalized, oneClass.adjusted], [0, 0])
        let same = MutualInformation(classes: [0, 0, 1, 1, 2, 2], clusters: [5, 5, 9, 9, 1, 1])
        XCTAssertEqual(same.mutualInformation, log(3), accuracy: 1e-15, "I = H = ln 3 for three equal groups")
        XCTAssertEqual(same.normalized, 1, accuracy: 1e-15)
        XCTAssertEqual(same.adjusted, 1, accuracy: 1e-15)
        // Every class spread evenly over every cluster: I = 0 exactly, below chance.
        let spread = MutualInformation(classes: [0, 0, 0, 1, 1, 1, 2, 2, 2], clusters: [0, 1, 2, 0, 1, 2, 0, 1, 2])
        XCTAssertEqual(spread.normalized, 0)
        XCTAssertLessThan(spread.adjusted, 0)
    }
}
