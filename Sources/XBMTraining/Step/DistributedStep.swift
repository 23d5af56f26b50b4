import Collectives
import XBMKernels
import XBMModel

/// One rank's part of one training step (Docs/distributed.md), with N ranks, local batch b, global batch
/// B = N·b, embedding size d and memory capacity M:
///
///     e = f(x_local)                          (b, d)   forward, SyncBN over ranks
///     E = allgather(e)                        (B, d)   rank order
///     memory.enqueue(E, Y)                             when the memory is active
///     L = (1/B) Σ_{i ∈ this rank's anchors} [ ℓ(e_i; E∖{i}) + w · ℓ(e_i; Mem∖{i}) ]
///     dE = allreduce(∂L/∂E)                   (B, d)   exact: all anchors' reference terms
///     ∂L/∂θ = allreduce(backward(dE[rows of this rank]))    in buckets during the backward
///                                                       with `gradientOverlap`
///     θ ← optimizer(θ, ∂L/∂θ)                          identical on every rank
///
/// The memory term treats the memory as constants; the batch term is differentiated in both
/// arguments, which is why dE needs the allreduce: row j of E receives reference gradients
/// from anchors on every rank. The loss parts, the pair statistics and the stop flag ride on
/// the same allreduce.
public final class DistributedStep {
    public struct Result: Sendable {
        /// L of the global batch (identical on every rank).
        public var loss: Double
        public var batchTerm: Double
        public var memoryTerm: Double
        /// True on every rank when any rank asked to stop (signal).
        public var stopRequested: Bool
        /// The pairs of the B anchors of the global batch in the batch term and in the memory
        /// term (nil when the memory was not used), identical on every rank (Docs/losses.md,
        /// Diagnostics). Sums travel as Float: exact counts up to 2²⁴.
        public var batchStatistics = PairStatistics()
        public var memoryStatistics: PairStatistics?
        /// Mean age in iterations of the memory's rows at the memory term (nil without it).
        public var memoryAge: Double?
    }

    public let comm: Communicator
    public let network: EmbeddingNetwork
    public let loss: PairLoss
    public let memory: CrossBatchMemory?
    public let memoryWeight: Float
    public let memoryReduction: MemoryReduction
    /// Drift compensation of the memory's rows for the memory term (`--xbm-compensate`), or nil.
    public let compensation: MomentMatching?
    /// First iteration that uses the memory (`Int.max` until `--xbm-start auto` decides).
    public var memoryStart: Int
    public let optimizer: Optimizer

    /// Trainable parameters, their gradients and the network's running statistics.
    public let parameters: FlatBuffer<Float>
    public let gradients: FlatBuffer<Float>
    public let state: FlatBuffer<Float>

    /// Told the name of each phase of a step as it begins (the trainer's watchdog).
    public var phaseObserver: ((String) -> Void)?

    /// nil (the default): one allreduce of the whole gradient after the backward. Otherwise
    /// the gradient's allreduce starts in buckets during the backward (Docs/distributed.md,
    /// Overlap); the parameters come out the same.
    public var gradientOverlap: GradientOverlap? {
        didSet {
            precondition(gradientOverlap == nil || exactReduction == nil,
                         "--deterministic reduces the gradient after the backward; it does not overlap")
            buckets = gradientOverlap.map { GradientBuckets(comm: comm, gradients: gradients.buffer, overlap: $0) }
            gradientsFinal = buckets.map { buckets in { try buckets.gradientsFinal(from: $0) } }
        }
    }
    private var buckets: GradientBuckets?
    /// The backward's notification, made once so that the step allocates no closure.
    private var gradientsFinal: ((Int) throws -> Void)?
    /// The gradient buckets of the last step, high offsets first (one covering everything
    /// without overlap).
    public var lastGradientBuckets: [Range<Int>] { buckets?.startedBuckets ?? [0..<gradients.count] }

    public let globalBatch: Int   // B
    public let localBatch: Int    // b
    public let dimension: Int     // d

    private let globalEmbeddings: FlatBuffer<Float>   // (B, d)
    /// (B·d + 3 + 2·PairStatistics.floatCount): ∂L/∂E, then the batch term, the memory term,
    /// the stop flag, and the batch and memory terms' pair statistics.
    private let embeddingGradient: FlatBuffer<Float>
    private let objective: CrossBatchObjective

    /// `--deterministic`: the chunks of the global batch that every sum over samples is taken
    /// per (nil: sums over each rank's local batch, added across ranks by allreduce).
    public let deterministicChunks: Int?
    /// The exact sum of the chunks' parameter gradients (deterministic only).
    private let exactReduction: ExactGradientReduction?
    /// (localChunks · chunkRecordCount + 1): this rank's memory-term records and stop flag, and
    /// (ranks, the same) gathered: the deterministic step's only collective before the backward.
    private let lossRecords: FlatBuffer<Double>
    private let gatheredLossRecords: FlatBuffer<Double>

    /// - Parameter deterministicChunks: with `--deterministic`, K chunks of the global batch, a
    ///   multiple of the rank count; the network's batch norm must be `.chunked` with K / N chunks.
    public init(comm: Communicator, network: EmbeddingNetwork, loss: PairLoss, memory: CrossBatchMemory?,
                memoryWeight: Float, memoryReduction: MemoryReduction, memoryStart: Int, optimizer: Optimizer,
                globalBatch: Int, compensation: MomentMatching? = nil, deterministicChunks: Int? = nil) {
        precondition(globalBatch % comm.size == 0, "global batch \(globalBatch) not divisible by \(comm.size) ranks")
        self.comm = comm
        self.network = network
        self.loss = loss
        self.memory = memory
        self.memoryWeight = memoryWeight
        self.memoryReduction = memoryReduction
        self.memoryStart = memoryStart
        self.compensation = compensation
        self.optimizer = optimizer
        self.globalBatch = globalBatch
        localBatch = globalBatch / comm.size
        dimension = network.embeddingSize
        parameters = FlatBuffer(count: network.parameterLayout.count)
        gradients = FlatBuffer(count: network.parameterLayout.count)
        state = FlatBuffer(count: network.stateLayout.count)
        globalEmbeddings = FlatBuffer(count: globalBatch * dimension)
        embeddingGradient = FlatBuffer(count: globalBatch * dimension + 3 + 2 * PairStatistics.floatCount)
        self.deterministicChunks = deterministicChunks
        let localChunks = deterministicChunks.map { chunks in
            precondition(chunks % comm.size == 0 && globalBatch % chunks == 0,
                         "\(chunks) deterministic chunks need a multiple of the \(comm.size) ranks and a divisor of the batch \(globalBatch)")
            precondition(network.gradientChunks(batchNorm: network.batchNorm).count == chunks / comm.size,
                         "--deterministic needs the network's batch norm chunked in \(chunks / comm.size) chunks")
            return chunks / comm.size
        }
        exactReduction = localChunks.map { ExactGradientReduction(comm: comm, layout: network.parameterLayout, localChunks: $0) }
        let recordCount = (localChunks ?? 0) * CrossBatchObjective.chunkRecordCount + 1
        lossRecords = FlatBuffer(count: localChunks == nil ? 0 : recordCount)
        gatheredLossRecords = FlatBuffer(count: localChunks == nil ? 0 : comm.size * recordCount)
        objective = CrossBatchObjective(loss: loss, memoryWeight: memoryWeight, memoryReduction: memoryReduction,
                                        globalBatch: globalBatch, rank: comm.rank, ranks: comm.size, chunks: localChunks)
    }

    /// Seeded initialisation on rank 0, then a broadcast, so every rank starts from the same
    /// parameters whatever the seed handling of other ranks (Docs/distributed.md).
    public func initializeParameters(seed: UInt64) throws {
        var random = RandomSource.derived(seed: seed, stream: 0x1417)
        network.initialize(parameters: parameters.pointer, state: state.pointer, random: &random)
        try comm.broadcast(parameters.buffer, root: 0)
        try comm.broadcast(state.buffer, root: 0)
    }

    /// Runs one step. `input` holds this rank's b samples; `labels` the B labels of the
    /// global batch (known to every rank from the shared sampler).
    public func run(input: UnsafePointer<Float>, labels: UnsafePointer<Int32>, samples: UnsafePointer<Int32>? = nil,
                    iteration: Int, learningRate: Float, stopRequested: Bool) throws -> Result {
        let b = localBatch, B = globalBatch, d = dimension
        phaseObserver?("the forward pass")
        let local = try network.forward(input: input, count: b, parameters: parameters.pointer,
                                        state: state.pointer, mode: .training)
        phaseObserver?("the allgather of the embeddings")
        try comm.allgather(UnsafeBufferPointer(start: local, count: b * d), into: globalEmbeddings.buffer)
        phaseObserver?("the loss")
        // A NaN similarity fails every mining comparison and so adds nothing to the loss: the
        // loss alone would not reveal diverged weights. E is the same on every rank, so every
        // rank stops here together.
        if let index = firstNonFinite(globalEmbeddings.pointer, count: B * d) {
            throw TrainingError.nonFiniteEmbedding(iteration: iteration, row: index / d)
        }

        embeddingGradient.zero()
        let dE = embeddingGradient.pointer
        // The current batch is enqueued before its memory term, as in the paper.
        var memoryInUse: CrossBatchMemory?
        // Rows are stamped with the iteration whose model embedded them; after the step the
        // clock moves on, so that rows enqueued before the next step (`--xbm-init fill`, with
        // the updated model) carry the next iteration.
        memory?.clock = iteration
        defer { memory?.clock = iteration + 1 }
        if let memory, iteration >= memoryStart {
            try memory.enqueue(embeddings: globalEmbeddings.pointer, labels: labels, samples: samples, count: B)
            memoryInUse = memory
        }
        let memoryReferences = memoryInUse.flatMap { memory in compensation?.compensated(memory) }
        let parts = exactReduction == nil
            ? try allreducedLoss(labels: labels, memory: memoryInUse, memoryReferences: memoryReferences, stopRequested: stopRequested)
            : try gatheredLoss(labels: labels, memory: memoryInUse, memoryReferences: memoryReferences, stopRequested: stopRequested)
        let total = parts.batchTerm + Double(memoryWeight) * parts.memoryTerm
        guard total.isFinite else {
            throw TrainingError.nonFiniteLoss(iteration: iteration, batchTerm: parts.batchTerm, memoryTerm: parts.memoryTerm)
        }

        phaseObserver?("the backward pass")
        let outputGradient = dE + objective.rows.lowerBound * d
        if let exactReduction {
            // The backward writes every chunk's gradient: nothing to zero.
            try network.backward(outputGradient: outputGradient, parameters: parameters.pointer,
                                 gradients: exactReduction.chunkGradients.pointer, gradientsFinal: nil)
            phaseObserver?("the allreduce of the parameter gradient")
            try exactReduction.reduce(into: gradients.pointer)
        } else {
            gradients.zero()
            buckets?.begin()
            try network.backward(outputGradient: outputGradient, parameters: parameters.pointer,
                                 gradients: gradients.pointer, gradientsFinal: gradientsFinal)
            phaseObserver?("the allreduce of the parameter gradient")
            if let buckets {
                try buckets.finish()
            } else {
                try comm.allreduceSum(gradients.buffer)
            }
        }
        phaseObserver?("the optimizer step")
        optimizer.step(parameters: parameters.pointer, gradients: gradients.pointer, learningRate: learningRate)
        return Result(loss: total, batchTerm: parts.batchTerm, memoryTerm: parts.memoryTerm, stopRequested: parts.stopRequested,
                      batchStatistics: parts.batchStatistics, memoryStatistics: parts.memoryStatistics,
                      memoryAge: parts.memoryStatistics == nil ? nil : memoryInUse?.meanAge)
    }

    /// The loss's terms and what rides with them, identical on every rank.
    private struct LossParts {
        var batchTerm: Double
        var memoryTerm: Double
        var stopRequested: Bool
        var batchStatistics: PairStatistics
        var memoryStatistics: PairStatistics?
    }

    /// This rank's anchors' share of ∂L/∂E, then one allreduce of ∂L/∂E with the loss parts,
    /// the stop flag and the pair statistics riding on it.
    private func allreducedLoss(labels: UnsafePointer<Int32>, memory: CrossBatchMemory?,
                                memoryReferences: [ReferenceSegment]?, stopRequested: Bool) throws -> LossParts {
        let B = globalBatch, d = dimension, dE = embeddingGradient.pointer
        let sums = objective.accumulate(embeddings: globalEmbeddings.pointer, labels: labels, dimension: d,
                                        memory: memory, memoryReferences: memoryReferences, gradient: dE)
        dE[B * d] = Float(sums.batch)
        dE[B * d + 1] = Float(sums.memory)
        dE[B * d + 2] = stopRequested ? 1 : 0
        let batchStatisticsSlot = dE + B * d + 3, memoryStatisticsSlot = batchStatisticsSlot + PairStatistics.floatCount
        sums.batchStatistics.write(to: batchStatisticsSlot)
        (sums.memoryStatistics ?? PairStatistics()).write(to: memoryStatisticsSlot)
        phaseObserver?("the allreduce of the embedding gradient")
        try comm.allreduceSum(embeddingGradient.buffer)
        // Every rank knows whether the memory term ran (same memory, same start, same count).
        return LossParts(batchTerm: Double(dE[B * d]) / Double(B), memoryTerm: Double(dE[B * d + 1]) / Double(B),
                         stopRequested: dE[B * d + 2] > 0,
                         batchStatistics: PairStatistics(reading: batchStatisticsSlot, anchors: B),
                         memoryStatistics: sums.memoryStatistics.map { _ in PairStatistics(reading: memoryStatisticsSlot, anchors: B) })
    }

    /// `--deterministic`: the batch term's whole ∂L/∂E on every rank, the memory term per chunk
    /// of this rank's anchors, and one allgather of the chunks' records (Σ ℓ and statistics)
    /// and the stop flags, added in chunk order: no sum depends on the rank count.
    private func gatheredLoss(labels: UnsafePointer<Int32>, memory: CrossBatchMemory?,
                              memoryReferences: [ReferenceSegment]?, stopRequested: Bool) throws -> LossParts {
        let B = globalBatch, d = dimension, records = lossRecords.pointer
        let sums = objective.accumulateChunked(embeddings: globalEmbeddings.pointer, labels: labels, dimension: d,
                                               memory: memory, memoryReferences: memoryReferences,
                                               gradient: embeddingGradient.pointer, records: records)
        let perRank = lossRecords.count, chunkRecords = perRank - 1, recordCount = CrossBatchObjective.chunkRecordCount
        records[chunkRecords] = stopRequested ? 1 : 0
        phaseObserver?("the allgather of the loss")
        try comm.allgather(UnsafeBufferPointer(lossRecords.buffer), into: gatheredLossRecords.buffer)
        var memorySum = 0.0, memoryStatistics = PairStatistics(), stop = false
        for rank in 0..<comm.size {
            let base = gatheredLossRecords.pointer + rank * perRank
            for record in stride(from: 0, to: chunkRecords, by: recordCount) {
                memorySum += base[record]
                memoryStatistics = memoryStatistics + PairStatistics(reading: base + record + 1, anchors: 0)
            }
            stop = stop || base[chunkRecords] > 0
        }
        memoryStatistics.anchors = B
        return LossParts(batchTerm: sums.batch / Double(B), memoryTerm: memorySum / Double(B), stopRequested: stop,
                         batchStatistics: sums.batchStatistics,
                         memoryStatistics: sums.memoryStatistics.map { _ in memoryStatistics })
    }

    /// FNV-1a over the parameters, the running statistics and the memory: equal on every rank
    /// when the replicas agree (`--check-replicas`).
    public func replicaChecksum() -> UInt64 {
        var hash = FNV1a64()
        hash.update(parameters.pointer, count: parameters.count)
        hash.update(state.pointer, count: state.count)
        if let memory { hash.update(memory.checksum()) }
        return hash.value
    }

    /// Compares the replica checksums of all ranks; throws naming the ranks that differ.
    public func checkReplicas(iteration: Int) throws {
        let local = replicaChecksum()
        let all = try comm.allgather([local])
        if let bad = all.firstIndex(where: { $0 != all[0] }) {
            throw TrainingError.replicasDiverged(iteration: iteration, rank: bad)
        }
    }
}

/// Failures of a training run that every rank detects together.
public enum TrainingError: SameOnEveryRankError, Equatable {
    case nonFiniteLoss(iteration: Int, batchTerm: Double, memoryTerm: Double)
    case nonFiniteEmbedding(iteration: Int, row: Int)
    case nonFiniteParameters(iteration: Int, name: String)
    case replicasDiverged(iteration: Int, rank: Int)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(iteration, batchTerm, memoryTerm):
            return "non-finite loss at iteration \(iteration) (batch term \(batchTerm), memory term \(memoryTerm)); "
                + "stopped without applying it — the last checkpoint is intact; lower --lr or check the input data"
        case let .nonFiniteEmbedding(iteration, row):
            return "non-finite embedding (row \(row) of the global batch) at iteration \(iteration): the weights have diverged; "
                + "stopped without applying the step — the last checkpoint is intact; lower --lr or check the input data"
        case let .nonFiniteParameters(iteration, name):
            return "non-finite parameter in \(name) after iteration \(iteration): the weights have diverged; "
                + "not checkpointed — the last checkpoint is intact; lower --lr"
        case let .replicasDiverged(iteration, rank):
            return "--check-replicas: parameters or memory of rank \(rank) differ from rank 0 at iteration \(iteration)"
        }
    }
}
