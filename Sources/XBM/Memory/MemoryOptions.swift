/// How the memory starts when it is switched on (`--xbm-init`).
public enum MemoryInit: String, Sendable, Codable, CaseIterable {
    /// Empty: it fills with the global batches from the start iteration on.
    case none
    /// Filled at the start iteration with embeddings of random training samples by the
    /// current model (the paper's initialisation, Docs/losses.md).
    case fill
}

/// The memory term's options (Docs/losses.md): L = (1/B) Σ_i [ℓ(e_i; E∖{i}) + w · ℓ(e_i; Mem∖{i})].
public struct MemoryOptions: Sendable, Codable, Equatable {
    /// M rows (`--xbm-size`); 0 disables the memory.
    public var size: Int
    /// w (`--xbm-weight`).
    public var weight: Double
    /// The first iteration that enqueues and uses the memory (`--xbm-start`).
    public var startIteration: Int
    /// `--xbm-reduce` (Docs/results.md: `mean` is the default, `sum` swamps the batch term).
    public var reduction: MemoryReduction
    /// `--xbm-init`.
    public var initialization: MemoryInit

    public init(size: Int = 0, weight: Double = 1, startIteration: Int = 0,
                reduction: MemoryReduction = .mean, initialization: MemoryInit = .none) {
        self.size = size
        self.weight = weight
        self.startIteration = startIteration
        self.reduction = reduction
        self.initialization = initialization
    }

    public var isEnabled: Bool { size > 0 }

    /// Whether iteration `iteration` (0-based) enqueues and adds the memory term.
    public func isActive(atIteration iteration: Int) -> Bool { isEnabled && iteration >= startIteration }
}
