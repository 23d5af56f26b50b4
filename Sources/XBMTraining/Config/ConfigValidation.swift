import Foundation
import XBMFormats

extension TrainingConfig {
    /// The largest iteration count an option may name (exact as a double, far beyond any run).
    public static let maxIterations = 1 << 40

    /// Checks the ranges of the options and the rules that involve several options or the
    /// number of ranks; each failure names the options and what would be accepted. (Choices
    /// need no check: their types hold only valid values.)
    public func validate(ranks: Int) throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw ConfigError(message()) }
        }
        let o = optimization, m = memory, e = evaluation
        try require(!model.redrawHead || model.initFrom != nil, "--redraw-head applies only with --init-from")
        try require(model.initFrom.map { !$0.isEmpty } ?? true, "--init-from needs a path: a run directory, its checkpoint.xbm or a .safetensors file")
        if let checksum = model.initFromChecksum {
            try require(model.initFrom != nil, "--init-from-checksum applies only with --init-from")
            try require(checksum.count == 16 && checksum.allSatisfy(\.isHexDigit),
                        "--init-from-checksum must be 16 hex digits (as a run's config.json records it), got \(printable(checksum))")
        }
        // Upper bounds first: sizes that allocate must not overflow or exhaust the machine,
        // and iteration counts must stay exact as doubles (shares of them are rounded).
        let sizes: [(String, Int, Int)] = [
            ("--dim", model.dim, 1 << 16), ("--hidden", model.hidden, 1 << 20), ("--batch", o.batch, 1 << 20),
            ("--eval-batch", e.batch, 1 << 20), ("--deterministic-chunks", o.deterministicChunks, 1 << 20), ("--drift-probe", m.driftProbe, 1 << 24), ("--xbm-refresh", m.refresh, 1 << 24),
            ("--iters", o.iters, Self.maxIterations), ("--schedule-iters", o.scheduleIters ?? 0, Self.maxIterations),
            ("--warmup", o.warmup, Self.maxIterations), ("--eval-every", e.every, Self.maxIterations),
            ("--log-every", run.logEvery, Self.maxIterations), ("--checkpoint-every", run.checkpointEvery, Self.maxIterations),
            ("--drift-every", m.driftEvery, Self.maxIterations),
        ]
        for (name, value, limit) in sizes {
            try require(value <= limit, "\(name) \(value) is larger than the \(limit) this tool supports")
        }
        // The optimiser and the step compute in float32.
        for (name, value) in [("--lr", o.lr), ("--weight-decay", o.weightDecay), ("--gamma", o.gamma), ("--xbm-weight", m.weight)] {
            try require(Float(value).isFinite, "--\(name.dropFirst(2)) \(value) is not a finite float32 number")
        }
        let memoryBytes = Double(m.size) * Double(model.dim + 3) * 4
        let machine = Double(ProcessInfo.processInfo.physicalMemory)
        try require(memoryBytes <= machine / 2, String(format: "--xbm-size %d with --dim %d needs %.1f GiB for the memory on every rank, "
                    + "more than half of this machine's %.1f GiB; lower --xbm-size", m.size, model.dim,
                    memoryBytes / 1_073_741_824, machine / 1_073_741_824))
        try require(o.batch >= 2, "--batch must be at least 2, got \(o.batch)")
        try require(o.instances >= 1, "--instances must be at least 1, got \(o.instances)")
        try require(o.batch % o.instances == 0, "--batch \(o.batch) is not a multiple of --instances \(o.instances)")
        try require(o.batch / o.instances >= 2, "--batch \(o.batch) / --instances \(o.instances) gives fewer than 2 classes per batch")
        try require(o.batch % ranks == 0, "--batch \(o.batch) (the global batch) is not divisible by the \(ranks) ranks")
        let local = o.batch / ranks
        try require(local % o.instances == 0,
                    "the local batch \(local) (= --batch \(o.batch) / \(ranks) ranks) is not a multiple of --instances \(o.instances)")
        try require(o.deterministicChunks >= 1, "--deterministic-chunks must be at least 1, got \(o.deterministicChunks)")
        if o.deterministic {
            let K = o.deterministicChunks
            try require(model.bn == .sync, "--deterministic needs --bn sync: with --bn local each rank normalises by its own "
                        + "batch's statistics, which depend on the number of ranks")
            try require(o.batch % K == 0, "--deterministic-chunks \(K) must divide --batch \(o.batch): "
                        + "the chunks are equal runs of whole samples")
            try require(K % ranks == 0, "--deterministic-chunks \(K) is not a multiple of the \(ranks) ranks: every rank must "
                        + "hold whole chunks; use a K that every rank count you will run on divides (e.g. \(K * ranks / gcd(K, ranks)))")
        }
        try require(model.dim >= 2, "--dim must be at least 2, got \(model.dim)")
        try require(model.hidden >= 1, "--hidden must be at least 1, got \(model.hidden)")
        try require(o.iters >= 0, "--iters must be non-negative, got \(o.iters)")
        try require((o.scheduleIters ?? 1) >= 1, "--schedule-iters must be at least 1, got \(o.scheduleIters ?? 0)")
        try require(o.lr > 0 && o.lr.isFinite, "--lr must be positive, got \(o.lr)")
        try require(o.warmup >= 0, "--warmup must be non-negative, got \(o.warmup)")
        try require(o.schedule != .cosine || o.scheduleLength > o.warmup,
                    "--schedule cosine needs --iters \(o.scheduleLength) greater than --warmup \(o.warmup)")
        try require(o.weightDecay >= 0 && o.weightDecay.isFinite, "--weight-decay must be finite and ≥ 0, got \(o.weightDecay)")
        try require(o.momentum >= 0 && o.momentum < 1, "--momentum must be in [0, 1), got \(o.momentum)")
        try require(o.gamma > 0 && o.gamma.isFinite, "--gamma must be positive, got \(o.gamma)")
        let l = loss
        try require(l.margin.map { $0.isFinite } ?? true, "--margin must be finite, got \(l.margin ?? 0)")
        try require(l.epsilon >= 0 && l.epsilon < 1, "--epsilon must be in [0, 1), got \(l.epsilon)")
        try require(l.msAlpha > 0 && l.msBeta > 0 && l.msAlpha.isFinite && l.msBeta.isFinite,
                    "--ms-alpha and --ms-beta must be positive, got \(l.msAlpha) and \(l.msBeta)")
        try require(l.msLambda.isFinite && l.msMu.isFinite, "--ms-lambda and --ms-mu must be finite")
        try require(l.temperature > 0 && l.temperature.isFinite, "--temperature must be positive, got \(l.temperature)")
        try require(m.size >= 0, "--xbm-size must be 0 (no memory) or positive, got \(m.size)")
        try require(m.size == 0 || m.size >= o.batch,
                    "--xbm-size \(m.size) is smaller than the global batch --batch \(o.batch): the memory must hold at least one batch")
        try require(m.start != .auto || m.driftEvery > 0,
                    "--xbm-start auto needs drift measurements: set --drift-every to a positive interval")
        try require(m.refresh >= 0, "--xbm-refresh must be non-negative, got \(m.refresh)")
        try require(m.driftEvery >= 0 && m.driftProbe >= 1 && m.driftThreshold > 0 && m.driftThreshold.isFinite,
                    "--drift-every must be ≥ 0, --drift-probe ≥ 1 and --drift-threshold > 0")
        try require(m.weight >= 0 && m.weight.isFinite, "--xbm-weight must be finite and ≥ 0, got \(m.weight)")
        try require(e.every >= 0 && run.logEvery >= 1 && run.checkpointEvery >= 0,
                    "--eval-every and --checkpoint-every must be ≥ 0 and --log-every ≥ 1")
        try require((1...1000).contains(run.keepCheckpoints),
                    "--keep-checkpoints \(run.keepCheckpoints): keep between 1 (the newest only) and 1000 checkpoints")
        try require(e.batch >= 1, "--eval-batch must be at least 1, got \(e.batch)")
        try require(run.stepTimeout > 0 && !run.stepTimeout.isNaN, "--step-timeout must be a positive number of seconds, got \(run.stepTimeout)")
        if let ks = e.recallK {
            try require(!ks.isEmpty && ks.allSatisfy { $0 >= 1 }, "--recall-k needs positive values, got \(ks)")
            try require(Set(ks).count == ks.count, "--recall-k names a cut-off twice: \(ks)")
        }
    }
}

/// The greatest common divisor of two non-negative integers.
private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
