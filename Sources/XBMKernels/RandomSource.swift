import Foundation

/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64) whose whole
/// state is four words, so checkpoints can save and restore it exactly. Every random choice
/// of the package (initialisation, sampling, augmentation, data rendering) goes through it,
/// so a seed fixes a run on any platform and any number of ranks.
public struct RandomSource: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var splitmix = seed
        func next() -> UInt64 {
            splitmix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitmix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    /// Restores a generator from `stateWords` (as saved in a checkpoint).
    public init(stateWords: [UInt64]) {
        precondition(stateWords.count == 4, "RandomSource state has 4 words, got \(stateWords.count)")
        state = (stateWords[0], stateWords[1], stateWords[2], stateWords[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    /// An independent stream derived from this seed and a label (e.g. a rank or a purpose).
    public static func derived(seed: UInt64, stream: UInt64) -> RandomSource {
        RandomSource(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) &+ stream)
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotate(state.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / Float(1 << 24))
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniformDouble() -> Double {
        Double(next() >> 11) * (1.0 / Double(UInt64(1) << 53))
    }

    /// Standard normal by Box–Muller (one value per call; simple beats fast here).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUniformDouble(), Double.leastNonzeroMagnitude)
        let u2 = nextUniformDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Uniform integer in 0..<bound, without modulo bias.
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below:) needs a positive bound, got \(bound)")
        return Int(next(upperBound: UInt64(bound)))
    }

    public static func == (lhs: RandomSource, rhs: RandomSource) -> Bool {
        lhs.stateWords == rhs.stateWords
    }

    @inline(__always)
    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
