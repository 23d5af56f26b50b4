import Foundation
import XBMKernels
import XBMModel

// Helpers for the loss and memory tests: problems of anchors against references, a call of a
// `PairLoss` on plain arrays, and brute-force Double implementations of the five formulas of Docs/losses.md
// (pair loops, written from the table of Docs/losses.md, sharing no code with the library's kernels).

/// b anchors against R references, all row major with dimension d.
public struct PairProblem: Sendable {
    public var dimension: Int
    /// (b, d)
    public var anchors: [Float]
    /// (b)
    public var anchorLabels: [Int32]
    /// (R, d)
    public var references: [Float]
    /// (R)
    public var referenceLabels: [Int32]
    /// (b) or nil; -1 = no own entry.
    public var ownIndex: [Int32]?

    public init(dimension: Int, anchors: [Float], anchorLabels: [Int32], references: [Float],
                referenceLabels: [Int32], ownIndex: [Int32]?) {
        precondition(anchors.count == anchorLabels.count * dimension && references.count == referenceLabels.count * dimension)
        self.dimension = dimension
        self.anchors = anchors
        self.anchorLabels = anchorLabels
        self.references = references
        self.referenceLabels = referenceLabels
        self.ownIndex = ownIndex
    }

    public var anchorCount: Int { anchorLabels.count }
    public var referenceCount: Int { referenceLabels.count }
}


extension PairProblem {
    /// The 3-anchor, 6-reference problem worked by hand in LossHandWorkedTests (d = 2, unit
    /// vectors with similarities 0, .28, .6, .8, .936, .96, 1; anchors 0 and 1 have own entries).
    public static let handWorked = PairProblem(
        dimension: 2,
        anchors: [1, 0, 0.6, 0.8, 0.8, 0.6], anchorLabels: [0, 1, 2],
        references: [1, 0, 0.8, 0.6, 0.6, 0.8, 0.28, 0.96, 1, 0, 0, 1], referenceLabels: [0, 0, 1, 1, 0, 2],
        ownIndex: [0, 2, -1])
}

/// What one evaluation returned.
public struct PairLossResult {
    public var value: Double
    /// (b, d)
    public var anchorGradient: [Float]
    /// (R, d)
    public var referenceGradient: [Float]
}

/// `count` rows of unit length with normally distributed directions.
/// A unit row near row `centre` of `centres` (rows of `dimension`): weight · centre plus
/// √(1 − weight²) of a random unit direction, normalised; similarity to the centre ≈ weight.
public func unitRow(near centre: Int, of centres: [Float], weight: Float, dimension d: Int,
                    random: inout RandomSource) -> [Float] {
    let noise = randomUnitRows(count: 1, dimension: d, random: &random)
    let v = (0..<d).map { weight * centres[centre * d + $0] + (1 - weight * weight).squareRoot() * noise[$0] }
    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / norm }
}

public func randomUnitRows(count: Int, dimension: Int, random: inout RandomSource) -> [Float] {
    var rows = [Float](repeating: 0, count: count * dimension)
    for i in 0..<count {
        var norm = 0.0
        var row = (0..<dimension).map { _ in random.nextNormal() }
        for x in row { norm += x * x }
        norm = norm.squareRoot()
        row = row.map { $0 / norm }
        for k in 0..<dimension { rows[i * dimension + k] = Float(row[k]) }
    }
    return rows
}

/// Runs `loss` on `problem`, with the references cut into segments at `cuts` (ascending
/// indices in 1..<R; empty = one segment). The gradient buffers start at `initialGradient`
/// so that tests can check that the loss adds into them.
public func evaluate(_ loss: PairLoss, _ problem: PairProblem, reduction: PairReduction, scale: Float = 1,
                     cuts: [Int] = [], initialGradient: Float = 0, referenceGradient wantsReferenceGradient: Bool = true) -> PairLossResult {
    let d = problem.dimension, b = problem.anchorCount, R = problem.referenceCount
    var dA = [Float](repeating: initialGradient, count: b * d)
    var dR = [Float](repeating: initialGradient, count: R * d)
    let value = problem.anchors.withUnsafeBufferPointer { anchors in
        problem.anchorLabels.withUnsafeBufferPointer { anchorLabels in
            problem.references.withUnsafeBufferPointer { references in
                problem.referenceLabels.withUnsafeBufferPointer { referenceLabels in
                    (problem.ownIndex ?? []).withUnsafeBufferPointer { own in
                        dA.withUnsafeMutableBufferPointer { dA in
                            dR.withUnsafeMutableBufferPointer { dR in
                                let bounds = [0] + cuts + [R]
                                let segments = (0..<(bounds.count - 1)).map { k in
                                    ReferenceSegment(embeddings: references.baseAddress! + bounds[k] * d,
                                                     labels: referenceLabels.baseAddress! + bounds[k],
                                                     count: bounds[k + 1] - bounds[k])
                                }
                                let input = PairLossInput(anchors: anchors.baseAddress!, anchorLabels: anchorLabels.baseAddress!,
                                                          anchorCount: b, dimension: d, references: segments,
                                                          ownIndex: problem.ownIndex == nil ? nil : own.baseAddress!)
                                return loss.evaluate(input, reduction: reduction, scale: scale,
                                                     anchorGradient: dA.baseAddress!,
                                                     referenceGradient: wantsReferenceGradient ? dR.baseAddress! : nil)
                            }
                        }
                    }
                }
            }
        }
    }
    return PairLossResult(value: value, anchorGradient: dA, referenceGradient: dR)
}

/// The formulas of Docs/losses.md by brute force in Double, for one anchor's similarities.
public enum BruteForcePairLoss {
    /// Σ_i ℓ_i with s_ij = a_i·r_j computed in Double from `anchors` (b, d) and `references` (R, d).
    public static func value(_ kind: LossKind, options: LossOptions, reduction: PairReduction,
                             anchors: [Double], anchorLabels: [Int32], references: [Double],
                             referenceLabels: [Int32], ownIndex: [Int32]?, dimension d: Int) -> Double {
        var total = 0.0
        for i in 0..<anchorLabels.count {
            let (positives, negatives) = pairs(i, anchors: anchors, anchorLabels: anchorLabels, references: references,
                                               referenceLabels: referenceLabels, ownIndex: ownIndex, dimension: d)
            total += anchorLoss(kind, options: options, reduction: reduction, positives: positives, negatives: negatives)
        }
        return total
    }

    /// The largest gap between an analytic anchor gradient ∂L/∂A (b, d) and central differences
    /// (step 1e-6) of the Double formula, and the largest central difference, for the caller's
    /// test against a relative bound.
    public static func centralDifferenceError(_ kind: LossKind, options: LossOptions, reduction: PairReduction,
                                              problem p: PairProblem, analytic: (Int) -> Double) -> (error: Double, largest: Double) {
        let references = p.references.map(Double.init), h = 1e-6
        var largestError = 0.0, largest = 0.0
        for k in 0..<p.anchors.count {
            var plus = p.anchors.map(Double.init), minus = plus
            plus[k] += h; minus[k] -= h
            func f(_ anchors: [Double]) -> Double {
                value(kind, options: options, reduction: reduction, anchors: anchors, anchorLabels: p.anchorLabels,
                      references: references, referenceLabels: p.referenceLabels, ownIndex: p.ownIndex, dimension: p.dimension)
            }
            let numeric = (f(plus) - f(minus)) / (2 * h)
            largestError = max(largestError, abs(analytic(k) - numeric))
            largest = max(largest, abs(numeric))
        }
        return (largestError, largest)
    }

    /// The same, on a problem's Float data widened to Double.
    public static func value(_ kind: LossKind, options: LossOptions, reduction: PairReduction, problem p: PairProblem) -> Double {
        value(kind, options: options, reduction: reduction, anchors: p.anchors.map(Double.init), anchorLabels: p.anchorLabels,
              references: p.references.map(Double.init), referenceLabels: p.referenceLabels, ownIndex: p.ownIndex,
              dimension: p.dimension)
    }

    /// The similarities of anchor i to its positives and to its negatives.
    public static func pairs(_ i: Int, anchors: [Double], anchorLabels: [Int32], references: [Double],
                             referenceLabels: [Int32], ownIndex: [Int32]?, dimension d: Int) -> (positives: [Double], negatives: [Double]) {
        var positives: [Double] = [], negatives: [Double] = []
        for j in 0..<referenceLabels.count {
            var s = 0.0
            for k in 0..<d { s += anchors[i * d + k] * references[j * d + k] }
            if j == Int(ownIndex?[i] ?? -1) { continue }
            if referenceLabels[j] == anchorLabels[i] { positives.append(s) } else { negatives.append(s) }
        }
        return (positives, negatives)
    }

    /// ℓ_i straight from the Docs/losses.md table, with `.mean` as Docs/losses.md defines it.
    public static func anchorLoss(_ kind: LossKind, options o: LossOptions, reduction: PairReduction,
                                  positives P: [Double], negatives N: [Double]) -> Double {
        let mean = reduction == .mean
        func weight(_ n: Int) -> Double { mean ? 1 / Double(max(n, 1)) : 1 }
        switch kind {
        case .contrastive:
            let activeP = P.filter { $0 < 1 - o.contrastiveEpsilon }, activeN = N.filter { $0 > o.contrastiveMargin }
            return weight(activeP.count) * activeP.reduce(0) { $0 + (1 - $1) }
                 + weight(activeN.count) * activeN.reduce(0, +)
        case .multiSimilarity:
            guard let minP = P.min(), let maxN = N.max() else { return 0 }
            let minedP = P.filter { $0 < maxN + o.msMu }, minedN = N.filter { $0 > minP - o.msMu }
            guard !minedP.isEmpty, !minedN.isEmpty else { return 0 }
            let positiveSum = minedP.reduce(0) { $0 + exp(-o.msAlpha * ($1 - o.msLambda)) }
            let negativeSum = minedN.reduce(0) { $0 + exp(o.msBeta * ($1 - o.msLambda)) }
            return log(1 + weight(minedP.count) * positiveSum) / o.msAlpha
                 + log(1 + weight(minedN.count) * negativeSum) / o.msBeta
        case .triplet:
            guard let minP = P.min(), let maxN = N.max() else { return 0 }
            return max(0, maxN - minP + o.tripletMargin)
        case .lifted:
            guard !P.isEmpty, !N.isEmpty else { return 0 }
            let positiveSum = P.reduce(0) { $0 + exp(1 - $1) }
            let negativeSum = N.reduce(0) { $0 + exp($1 - o.liftedMargin) }
            return max(0, log(weight(P.count) * positiveSum) + log(weight(N.count) * negativeSum))
        case .npair:
            guard !P.isEmpty, !N.isEmpty else { return 0 }
            var sum = 0.0
            for p in P {
                let inner = N.reduce(0) { $0 + exp(($1 - p) / o.npairTemperature) }
                sum += log(1 + weight(N.count) * inner)
            }
            return sum / Double(P.count)
        }
    }

    /// How far (in similarity) the problem is from the nearest place where the loss or its
    /// gradient jumps (a hinge, a threshold, a mining boundary, a change of hardest pair).
    /// Finite differences are only meaningful when this is much larger than the step.
    public static func kinkDistance(_ kind: LossKind, options o: LossOptions, reduction: PairReduction, problem p: PairProblem) -> Double {
        let anchors = p.anchors.map(Double.init), references = p.references.map(Double.init)
        var distance = Double.infinity
        for i in 0..<p.anchorCount {
            let (P, N) = pairs(i, anchors: anchors, anchorLabels: p.anchorLabels, references: references,
                               referenceLabels: p.referenceLabels, ownIndex: p.ownIndex, dimension: p.dimension)
            func gap(_ values: [Double]) -> Double {
                let sorted = values.sorted()
                return sorted.count < 2 ? .infinity : zip(sorted, sorted.dropFirst()).map { $1 - $0 }.min()!
            }
            switch kind {
            case .contrastive:
                for s in P { distance = min(distance, abs(s - (1 - o.contrastiveEpsilon))) }
                for s in N { distance = min(distance, abs(s - o.contrastiveMargin)) }
            case .multiSimilarity:
                guard let minP = P.min(), let maxN = N.max() else { continue }
                for s in P { distance = min(distance, abs(s - (maxN + o.msMu))) }
                for s in N { distance = min(distance, abs(s - (minP - o.msMu))) }
            case .triplet:
                guard let minP = P.min(), let maxN = N.max() else { continue }
                let lowest = P.sorted().prefix(2), highest = N.sorted().suffix(2)
                distance = min(distance, abs(maxN - minP + o.tripletMargin), gap(Array(lowest)), gap(Array(highest)))
            case .lifted:
                guard !P.isEmpty, !N.isEmpty else { continue }
                let mean = reduction == .mean
                let argument = log(P.reduce(0) { $0 + exp(1 - $1) } / (mean ? Double(P.count) : 1))
                             + log(N.reduce(0) { $0 + exp($1 - o.liftedMargin) } / (mean ? Double(N.count) : 1))
                distance = min(distance, abs(argument))
            case .npair:
                break
            }
        }
        return distance
    }
}

/// `body` given the problem's data as a memory of two segments (rows 0..<`cut` and the rest),
/// each row with its stamp (`stamps`, R), at time `now`: the input of a memory term whose ages
/// the statistics sum.
public func withStampedSegments<T>(_ p: PairProblem, cut: Int, stamps: [Int32], now: Int,
                                   _ body: (PairLossInput) -> T) -> T {
    let d = p.dimension, R = p.referenceLabels.count
    precondition(stamps.count == R && cut > 0 && cut < R, "two non-empty segments with a stamp per row")
    return p.anchors.withUnsafeBufferPointer { a in
        p.anchorLabels.withUnsafeBufferPointer { y in
            p.references.withUnsafeBufferPointer { r in
                p.referenceLabels.withUnsafeBufferPointer { ry in
                    stamps.withUnsafeBufferPointer { t in
                        (p.ownIndex ?? []).withUnsafeBufferPointer { own in
                            let segments = [ReferenceSegment(embeddings: r.baseAddress!, labels: ry.baseAddress!, count: cut,
                                                             stamps: t.baseAddress!),
                                            ReferenceSegment(embeddings: r.baseAddress! + cut * d, labels: ry.baseAddress! + cut,
                                                             count: R - cut, stamps: t.baseAddress! + cut)]
                            var input = PairLossInput(anchors: a.baseAddress!, anchorLabels: y.baseAddress!,
                                                      anchorCount: p.anchorLabels.count, dimension: d, references: segments,
                                                      ownIndex: p.ownIndex == nil ? nil : own.baseAddress!)
                            input.now = now
                            return body(input)
                        }
                    }
                }
            }
        }
    }
}
