import Foundation

/// Every option of a training run. The defaults are the recipe of Docs/results.md, written
/// relative to the run (the rate drop and the memory start at 75% of `iters`) so that they
/// hold on data and lengths they were not tuned on. JSON keys are the command-line option names without their dashes, so a run's
/// `config.json` can be given back as `--config` (README.md).
public struct TrainingConfig: Codable, Equatable, Sendable {
    // Data and model.
    public var data: String = ""
    public var model: String = "auto"          // glyphnet for images, mlp for features
    public var dim: Int = 128
    public var hidden: Int = 512               // mlp hidden width
    public var bn: String = "sync"             // sync | local

    // Loss (Docs/losses.md); nil margins take the loss' own default.
    public var loss: String = "contrastive"
    public var margin: Double? = nil
    public var epsilon: Double = 1e-5
    public var msAlpha: Double = 2
    public var msBeta: Double = 40
    public var msLambda: Double = 0.5
    public var msMu: Double = 0.1
    public var temperature: Double = 0.1

    // Batch and schedule.
    public var batch: Int = 64                 // global batch B
    public var instances: Int = 4              // K
    public var iters: Int = 2400
    public var optimizer: String = "adam"
    public var lr: Double = 1e-3
    public var weightDecay: Double = 0
    public var momentum: Double = 0.9
    public var schedule: String = "step"
    /// Step schedule: where the rate is multiplied by `gamma` (iterations or shares of `iters`).
    public var milestones: [IterationPoint] = [.fraction(0.75)]
    public var gamma: Double = 0.1
    public var warmup: Int = 0

    // Cross-batch memory (Docs/losses.md).
    public var xbmSize: Int = 16384
    /// First iteration of the memory (an iteration or a share of `iters`), or `auto`: the
    /// first drift measurement below `driftThreshold`.
    public var xbmStart: MemoryStart = .at(.fraction(0.75))
    public var xbmWeight: Double = 1
    public var xbmReduce: String = "mean"
    public var xbmInit: String = "none"
    public var driftEvery: Int = 100
    public var driftProbe: Int = 512
    public var driftThreshold: Double = 0.2

    // Evaluation, logging, outputs.
    public var evalEvery: Int = 800
    public var evalBatch: Int = 256
    public var recallK: [Int] = [1, 10, 100, 1000]
    public var logEvery: Int = 50
    public var checkpointEvery: Int = 400
    public var runDir: String = "runs/hanzi"
    public var seed: UInt64 = 0
    public var checkReplicas: Bool = false

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case data, model, dim, hidden, bn
        case loss, margin, epsilon
        case msAlpha = "ms-alpha", msBeta = "ms-beta", msLambda = "ms-lambda", msMu = "ms-mu", temperature
        case batch, instances, iters, optimizer, lr
        case weightDecay = "weight-decay", momentum, schedule, milestones, gamma, warmup
        case xbmSize = "xbm-size", xbmStart = "xbm-start", xbmWeight = "xbm-weight"
        case xbmReduce = "xbm-reduce", xbmInit = "xbm-init"
        case driftEvery = "drift-every", driftProbe = "drift-probe", driftThreshold = "drift-threshold"
        case evalEvery = "eval-every", evalBatch = "eval-batch", recallK = "recall-k"
        case logEvery = "log-every", checkpointEvery = "checkpoint-every", runDir = "run-dir"
        case seed, checkReplicas = "check-replicas"
    }

    /// The JSON keys a config file may use.
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// Decoding fills missing keys with defaults, so a config file may name only a few.
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func take<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let decoded = try c.decodeIfPresent(T.self, forKey: key) { value = decoded }
        }
        try take(.data, &data); try take(.model, &model); try take(.dim, &dim); try take(.hidden, &hidden)
        try take(.bn, &bn); try take(.loss, &loss); try take(.epsilon, &epsilon)
        if c.contains(.margin) { margin = try c.decodeIfPresent(Double.self, forKey: .margin) }
        try take(.msAlpha, &msAlpha); try take(.msBeta, &msBeta); try take(.msLambda, &msLambda)
        try take(.msMu, &msMu); try take(.temperature, &temperature)
        try take(.batch, &batch); try take(.instances, &instances); try take(.iters, &iters)
        try take(.optimizer, &optimizer); try take(.lr, &lr); try take(.weightDecay, &weightDecay)
        try take(.momentum, &momentum); try take(.schedule, &schedule); try take(.milestones, &milestones)
        try take(.gamma, &gamma); try take(.warmup, &warmup)
        try take(.xbmSize, &xbmSize); try take(.xbmStart, &xbmStart)
        try take(.driftEvery, &driftEvery); try take(.driftProbe, &driftProbe); try take(.driftThreshold, &driftThreshold)
         try take(.xbmWeight, &xbmWeight)
        try take(.xbmReduce, &xbmReduce); try take(.xbmInit, &xbmInit)
        try take(.evalEvery, &evalEvery); try take(.evalBatch, &evalBatch); try take(.recallK, &recallK)
        try take(.logEvery, &logEvery); try take(.checkpointEvery, &checkpointEvery); try take(.runDir, &runDir)
        try take(.seed, &seed); try take(.checkReplicas, &checkReplicas)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(data, forKey: .data); try c.encode(model, forKey: .model); try c.encode(dim, forKey: .dim)
        try c.encode(hidden, forKey: .hidden); try c.encode(bn, forKey: .bn); try c.encode(loss, forKey: .loss)
        try c.encodeIfPresent(margin, forKey: .margin); try c.encode(epsilon, forKey: .epsilon)
        try c.encode(msAlpha, forKey: .msAlpha); try c.encode(msBeta, forKey: .msBeta); try c.encode(msLambda, forKey: .msLambda)
        try c.encode(msMu, forKey: .msMu); try c.encode(temperature, forKey: .temperature)
        try c.encode(batch, forKey: .batch); try c.encode(instances, forKey: .instances); try c.encode(iters, forKey: .iters)
        try c.encode(optimizer, forKey: .optimizer); try c.encode(lr, forKey: .lr); try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(momentum, forKey: .momentum); try c.encode(schedule, forKey: .schedule)
        try c.encode(milestones, forKey: .milestones); try c.encode(gamma, forKey: .gamma); try c.encode(warmup, forKey: .warmup)
        try c.encode(xbmSize, forKey: .xbmSize)
        try c.encode(xbmStart, forKey: .xbmStart)
        try c.encode(xbmWeight, forKey: .xbmWeight); try c.encode(xbmReduce, forKey: .xbmReduce); try c.encode(xbmInit, forKey: .xbmInit)
        try c.encode(driftEvery, forKey: .driftEvery); try c.encode(driftProbe, forKey: .driftProbe)
        try c.encode(driftThreshold, forKey: .driftThreshold)
        try c.encode(evalEvery, forKey: .evalEvery); try c.encode(evalBatch, forKey: .evalBatch); try c.encode(recallK, forKey: .recallK)
        try c.encode(logEvery, forKey: .logEvery); try c.encode(checkpointEvery, forKey: .checkpointEvery)
        try c.encode(runDir, forKey: .runDir); try c.encode(seed, forKey: .seed); try c.encode(checkReplicas, forKey: .checkReplicas)
    }

    /// The step schedule's milestones as iterations of this run.
    public var milestoneIterations: [Int] { milestones.map { $0.resolved(iterations: iters) } }

    /// The memory's first iteration in this run; nil for `--xbm-start auto`.
    public var memoryStartIteration: Int? { xbmStart.resolved(iterations: iters) }

    /// Pretty, key-sorted JSON (for `config.json` and checkpoints).
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(self)) ?? Data()
    }
}

/// A configuration problem, reported before any work starts (Docs/distributed.md).
public struct ConfigError: SameOnEveryRankError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension TrainingConfig {
    /// Reads a JSON config file: an object keyed by option names without dashes. Unknown
    /// keys are errors (a typo must not silently fall back to a default).
    public static func load(file: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw ConfigError("--config \(file.path): cannot read the file (\(error.localizedDescription))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let dictionary = object as? [String: Any] else {
            throw ConfigError("--config \(file.path): expected a JSON object such as {\"xbm-size\": 16384, \"lr\": 0.001}")
        }
        let known = Set(keys)
        if let unknown = dictionary.keys.sorted().first(where: { !known.contains($0) }) {
            let hint = known.min { editDistance($0, unknown) < editDistance($1, unknown) } ?? ""
            throw ConfigError("--config \(file.path): unknown key \"\(unknown)\" (did you mean \"\(hint)\"?)")
        }
        return dictionary
    }

    /// Checks the rules that involve several options or the number of ranks; each failure
    /// names the options and what would be accepted.
    public func validate(ranks: Int) throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw ConfigError(message()) }
        }
        try require(batch >= 2, "--batch must be at least 2, got \(batch)")
        try require(instances >= 1, "--instances must be at least 1, got \(instances)")
        try require(batch % instances == 0, "--batch \(batch) is not a multiple of --instances \(instances)")
        try require(batch / instances >= 2, "--batch \(batch) / --instances \(instances) gives fewer than 2 classes per batch")
        try require(batch % ranks == 0, "--batch \(batch) (the global batch) is not divisible by the \(ranks) ranks")
        let local = batch / ranks
        try require(local % instances == 0,
                    "the local batch \(local) (= --batch \(batch) / \(ranks) ranks) is not a multiple of --instances \(instances)")
        try require(dim >= 2, "--dim must be at least 2, got \(dim)")
        try require(iters >= 0, "--iters must be non-negative, got \(iters)")
        try require(lr > 0 && lr.isFinite, "--lr must be positive, got \(lr)")
        try require(["sync", "local"].contains(bn), "--bn must be sync or local, got \(bn)")
        try require(MemoryReduction(rawValue: xbmReduce) != nil, "--xbm-reduce must be sum, mean or scaled, got \(xbmReduce)")
        try require(["none", "fill"].contains(xbmInit), "--xbm-init must be none or fill, got \(xbmInit)")
        try require(["constant", "step", "cosine"].contains(schedule), "--schedule must be constant, step or cosine, got \(schedule)")
        try require(xbmSize >= 0, "--xbm-size must be 0 (no memory) or positive, got \(xbmSize)")
        try require(xbmSize == 0 || xbmSize >= batch,
                    "--xbm-size \(xbmSize) is smaller than the global batch --batch \(batch): the memory must hold at least one batch")
        try require(xbmStart != .auto || driftEvery > 0,
                    "--xbm-start auto needs drift measurements: set --drift-every to a positive interval")
        try require(driftEvery >= 0 && driftProbe >= 1 && driftThreshold > 0,
                    "--drift-every must be ≥ 0, --drift-probe ≥ 1 and --drift-threshold > 0")
        try require(xbmWeight >= 0, "--xbm-weight must be non-negative, got \(xbmWeight)")
        try require(evalEvery >= 0 && logEvery >= 1 && checkpointEvery >= 0,
                    "--eval-every and --checkpoint-every must be ≥ 0 and --log-every ≥ 1")
        try require(evalBatch >= 1, "--eval-batch must be at least 1, got \(evalBatch)")
        try require(!recallK.isEmpty && recallK.allSatisfy { $0 >= 1 }, "--recall-k needs positive values, got \(recallK)")
        try require(warmup >= 0, "--warmup must be non-negative, got \(warmup)")
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
