import Foundation

/// The pair losses of Docs/losses.md by their command-line names (`--loss NAME`).
public enum LossKind: String, CaseIterable, Sendable, Codable {
    case contrastive
    case multiSimilarity = "multi-similarity"
    case triplet
    case lifted
    case npair
}

/// Every loss' hyper-parameters, with the defaults of Docs/losses.md (`LossConfig` is their
/// command-line form).
public struct LossOptions: Sendable, Equatable {
    /// contrastive: negatives count once s > m.
    public var contrastiveMargin: Double = 0.5
    /// contrastive: positives count while s < 1 − ε.
    public var contrastiveEpsilon: Double = 1e-5
    /// multi-similarity: α (positive scale), β (negative scale), λ (similarity pivot), μ (mining margin).
    public var msAlpha: Double = 2
    public var msBeta: Double = 40
    public var msLambda: Double = 0.5
    public var msMu: Double = 0.1
    /// triplet: m in [s_n − s_p + m]_+.
    public var tripletMargin: Double = 0.1
    /// lifted: m in e^{s_n − m}.
    public var liftedMargin: Double = 0.5
    /// npair: τ.
    public var npairTemperature: Double = 0.1

    public init() {}
}

/// A new loss object of `kind` (each owns its similarity workspace: use one per term that may
/// run concurrently, e.g. one for the batch term and one for the memory term).
public func makePairLoss(_ kind: LossKind, options: LossOptions = LossOptions(),
                         tuning: PairLossTuning = PairLossTuning()) -> PairLoss {
    precondition(options.msAlpha > 0 && options.msBeta > 0,
                 "multi-similarity needs α > 0 and β > 0, got α \(options.msAlpha), β \(options.msBeta)")
    precondition(options.npairTemperature > 0, "npair needs τ > 0, got \(options.npairTemperature)")
    // Against the memory (no reference gradient) in one pass, unless `tuning.onePass` is off.
    switch kind {
    case .contrastive:
        let term = ContrastiveTerm(margin: options.contrastiveMargin, epsilon: options.contrastiveEpsilon)
        return GemmPairLoss(term: term, tuning: tuning, onePass: tuning.onePass ? ContrastiveStream(term: term, tuning: tuning) : nil)
    case .multiSimilarity:
        let term = MultiSimilarityTerm(alpha: options.msAlpha, beta: options.msBeta, lambda: options.msLambda, mu: options.msMu)
        return GemmPairLoss(term: term, tuning: tuning, onePass: tuning.onePass ? MultiSimilarityStream(term: term, tuning: tuning) : nil)
    case .triplet:
        let term = TripletTerm(margin: options.tripletMargin)
        return GemmPairLoss(term: term, tuning: tuning, onePass: tuning.onePass ? TripletStream(term: term, tuning: tuning) : nil)
    case .lifted:
        let term = LiftedStructureTerm(margin: options.liftedMargin)
        return GemmPairLoss(term: term, tuning: tuning, onePass: tuning.onePass ? LogSumExpStream(term: term, tuning: tuning) : nil)
    case .npair:
        let term = NPairTerm(temperature: options.npairTemperature)
        return GemmPairLoss(term: term, tuning: tuning, onePass: tuning.onePass ? LogSumExpStream(term: term, tuning: tuning) : nil)
    }
}
