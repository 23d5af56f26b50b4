import Foundation

/// How much a clustering of N items tells about their classes, in nats, with the two scores
/// the metric-learning literature reports next to Recall@K (Docs/evaluation.md, Clustering).
///
/// Letters: classes i with a_i items, clusters j with b_j items, n_ij items of class i in
/// cluster j, N = Σ a_i = Σ b_j.
///
///     H(U)  = −Σ_i (a_i/N) ln(a_i/N)                      (H(V) likewise with b_j)
///     I     =  Σ_ij (n_ij/N) ln(N n_ij / (a_i b_j))
///     NMI   =  I / ((H(U) + H(V)) / 2)
///     E[I]  =  Σ_ij Σ_{n=max(1, a_i+b_j−N)}^{min(a_i, b_j)} (n/N) ln(N n / (a_i b_j))
///              · a_i! b_j! (N−a_i)! (N−b_j)! / (N! n! (a_i−n)! (b_j−n)! (N−a_i−b_j+n)!)
///     AMI   = (I − E[I]) / ((H(U) + H(V)) / 2 − E[I])
///
/// E[I] is the mutual information expected of two random labellings with these class and
/// cluster sizes (hypergeometric n_ij; Vinh, Epps, Bailey, "Information Theoretic Measures for
/// Clusterings Comparison", JMLR 11, 2010, eq. 24a). AMI is 1 for identical partitions, about 0
/// for chance agreement and negative below it. These are scikit-learn's
/// normalized_mutual_info_score and adjusted_mutual_info_score with average_method
/// "arithmetic" (its default), special cases included: both labellings a single group (or
/// empty) give 1 and 1; otherwise I = 0 gives NMI 0, and a single class or a single cluster
/// gives AMI 0; AMI's numerator and denominator are kept at least machine epsilon from 0 with
/// their sign. MutualInformationTests compares all of it with scikit-learn's own numbers.
public struct MutualInformation: Sendable, Equatable {
    /// N, the items.
    public let itemCount: Int
    /// The distinct classes and clusters.
    public let classCount: Int
    public let clusterCount: Int
    /// H(U), H(V).
    public let classEntropy: Double
    public let clusterEntropy: Double
    /// I(U; V).
    public let mutualInformation: Double
    /// E[I] (0 when a labelling has a single group).
    public let expectedMutualInformation: Double

    /// The scores of `clusters` against `classes`, item by item (any label values).
    public init(classes: [Int32], clusters: [Int32]) {
        precondition(classes.count == clusters.count,
                     "mutual information needs one cluster per item: \(classes.count) classes, \(clusters.count) clusters")
        let n = classes.count
        let (classOf, classSizes) = Self.dense(classes)
        let (clusterOf, clusterSizes) = Self.dense(clusters)
        var cells: [Int: Int] = [:]                                // class · clusterCount + cluster → n_ij
        for item in 0..<n { cells[classOf[item] * clusterSizes.count + clusterOf[item], default: 0] += 1 }

        itemCount = n
        classCount = classSizes.count
        clusterCount = clusterSizes.count
        let total = Double(n), logTotal = log(total)
        func entropy(_ sizes: [Int]) -> Double {
            sizes.count <= 1 ? 0 : -sizes.reduce(0.0) { $0 + Double($1) / total * (log(Double($1)) - logTotal) }
        }
        classEntropy = entropy(classSizes)
        clusterEntropy = entropy(clusterSizes)
        if classSizes.count <= 1 || clusterSizes.count <= 1 {
            mutualInformation = 0
            expectedMutualInformation = 0
            return
        }
        // Cells in key order: a Dictionary's own order changes with each process's hash seed,
        // and with it the last bits of the sum.
        var information = 0.0
        for (cell, count) in cells.sorted(by: { $0.key < $1.key }) {
            let a = Double(classSizes[cell / clusterSizes.count]), b = Double(clusterSizes[cell % clusterSizes.count])
            let share = Double(count) / total
            information += share * (log(Double(count)) + logTotal - log(a * b))
        }
        mutualInformation = max(0, information)
        expectedMutualInformation = Self.expectedMutualInformation(classSizes: classSizes, clusterSizes: clusterSizes, items: n)
    }

    /// NMI with the arithmetic mean of the entropies, in [0, 1].
    public var normalized: Double {
        if classCount == clusterCount && classCount <= 1 { return 1 }
        if mutualInformation == 0 { return 0 }
        return mutualInformation / ((classEntropy + clusterEntropy) / 2)
    }

    /// AMI with the arithmetic mean of the entropies: 1 for identical partitions, ≈ 0 by chance.
    public var adjusted: Double {
        if classCount == clusterCount && classCount <= 1 { return 1 }
        if classCount == 1 || clusterCount == 1 { return 0 }
        let epsilon = Double.ulpOfOne
        let denominator = (classEntropy + clusterEntropy) / 2 - expectedMutualInformation
        let numerator = mutualInformation - expectedMutualInformation
        return (numerator < 0 ? min(numerator, -epsilon) : max(numerator, epsilon))
            / (denominator < 0 ? min(denominator, -epsilon) : max(denominator, epsilon))
    }

    /// E[I] for groups of these sizes. The term of a pair (i, j) depends on (a_i, b_j) alone, so
    /// the sum runs over the distinct sizes, each pair weighted by how many classes and clusters
    /// have them: k classes of equal size cost one row instead of k. Each term is computed as
    /// exp of a sum of log-factorials (they overflow long before N = 50,000).
    static func expectedMutualInformation(classSizes: [Int], clusterSizes: [Int], items n: Int) -> Double {
        func histogram(_ sizes: [Int]) -> [(size: Int, groups: Double)] {
            Dictionary(sizes.map { ($0, 1.0) }, uniquingKeysWith: +).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        let logFactorial = (0...n).map { m -> Double in lgamma(Double(m) + 1) }   // ln m!, m = 0 … N
        let total = Double(n), logTotal = log(total)
        var expected = 0.0
        for (a, classesOfSize) in histogram(classSizes) {
            for (b, clustersOfSize) in histogram(clusterSizes) {
                // ln of the part that does not depend on n_ij: a! b! (N−a)! (N−b)! / N!
                let sizes: Double = logFactorial[a] + logFactorial[b] + logFactorial[n - a] + logFactorial[n - b]
                let fixed: Double = sizes - logFactorial[n]
                let logAB = log(Double(a)) + log(Double(b))
                var sum = 0.0
                for cell in max(1, a + b - n)...min(a, b) {
                    let rest: Double = logFactorial[cell] + logFactorial[a - cell] + logFactorial[b - cell]
                        + logFactorial[n - a - b + cell]
                    let probability = exp(fixed - rest)                     // P(n_ij = cell)
                    let information: Double = logTotal + log(Double(cell)) - logAB   // ln(N n / (a b))
                    sum += Double(cell) / total * information * probability
                }
                expected += classesOfSize * clustersOfSize * sum
            }
        }
        return expected
    }

    /// Each label's dense index (first appearance first) and the size of each group.
    private static func dense(_ labels: [Int32]) -> (index: [Int], sizes: [Int]) {
        var indexOf: [Int32: Int] = [:], sizes: [Int] = []
        let index = labels.map { label -> Int in
            if let known = indexOf[label] { sizes[known] += 1; return known }
            indexOf[label] = sizes.count
            sizes.append(1)
            return sizes.count - 1
        }
        return (index, sizes)
    }
}
