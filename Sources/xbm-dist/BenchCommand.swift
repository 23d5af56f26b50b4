import ArgumentParser
import Collectives
import XBMEval
import XBMKernels
import XBMTraining

/// `xbm-dist bench ...`: measurements users run on their own machines (README.md, Docs/performance.md).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Check and time the collectives, the training step, retrieval and clustering.",
        subcommands: [BenchStep.self, BenchCollectives.self, BenchRetrieval.self, BenchClustering.self, BenchBLAS.self])
}

struct BenchCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collectives",
        abstract: "Verify allreduce, allgather and broadcast against closed forms and time them (1 float to 16 MiB).")

    @OptionGroup var launchOptions: LaunchOptions

    @Option(help: "Timed repetitions per size (median reported).")
    var repetitions: Int = 5

    func run() throws {
        let repetitions = repetitions
        try launch(launchOptions) { comm in
            let rows = try CollectivesBenchmark.run(comm, repetitions: repetitions)
            if comm.rank == 0 {
                print(CollectivesBenchmark.table(rows, ranks: comm.size, backend: comm.backendName))
            }
            if rows.contains(where: { !$0.correct }) {
                throw CollectivesMismatch()
            }
        }
    }
}

struct CollectivesMismatch: SameOnEveryRankError {
    var description: String { "a collective returned a wrong result (see WRONG rows above): check the MPI installation and network" }
}

/// `bench step`: images per second of the real training step on random data.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Time the distributed training step on synthetic data; prints one JSON line with images_per_second.",
        discussion: """
            Takes the model, loss, batch and memory options of `train`. Samples are noisy copies of one random \
            prototype per class. Without --xbm-size the memory is off; with it, the network first trains \
            --pretrain steps, the memory is filled with its embeddings of the batches that follow, and every \
            timed step uses the full memory; the JSON line reports the fraction of memory pairs that were active.
            """)

    @OptionGroup var options: TrainOptions
    @OptionGroup var launchOptions: LaunchOptions
    @Option(help: "Timed steps (after 5 warm-up steps).") var steps: Int = 30
    @Option(help: "With a memory: training steps before it is filled, so that its pairs are as active as in training.")
    var pretrain: Int = 100
    @Option(help: "Train the mlp on random feature vectors of this size instead of 32×32 images.") var features: Int?
    @Flag(help: "Start the parameter gradient's allreduce in buckets during the backward (Docs/distributed.md, Overlap).")
    var overlapGradients = false
    @Option(help: "With --overlap-gradients: a bucket's allreduce starts once this many KiB of gradient are final.")
    var bucketKib: Int = GradientOverlap.defaultBucketBytes / 1024
    @Flag(inversion: .prefixedNo,
          help: "With --overlap-gradients: let MPI progress the started buckets after every block's backward.")
    var pollBetweenLayers = true
    /// Launch/netlink's latency: the kernel there has no netem (Docs/performance.md, Communication cost).
    @Option(help: .hidden) var emulatedLatencyUs: Double = 0

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard pretrain >= 0 else { throw ValidationError("--pretrain must be 0 or more, got \(pretrain)") }
        guard bucketKib >= 1 else { throw ValidationError("--bucket-kib must be at least 1, got \(bucketKib)") }
        if !overlapGradients && bucketKib != GradientOverlap.defaultBucketBytes / 1024 {
            throw ValidationError("--bucket-kib applies to --overlap-gradients; add it")
        }
        guard emulatedLatencyUs >= 0 && emulatedLatencyUs.isFinite else {
            throw ValidationError("--emulated-latency-us must be 0 or more microseconds, got \(emulatedLatencyUs)")
        }
    }

    func run() throws {
        var config = try options.configuration()
        if options.memory.xbmSize == nil && options.config == nil { config.memory.size = 0 }
        if features != nil { config.model.model = .mlp }
        let shape = features.map { [$0] } ?? [1, 32, 32]
        if overlapGradients && config.optimization.deterministic {
            throw ValidationError("--deterministic adds the gradient's chunks after the backward and cannot overlap it; drop --overlap-gradients")
        }
        let steps = steps, pretrain = pretrain, frozen = config
        let overlap = overlapGradients ? GradientOverlap(bucketBytes: bucketKib * 1024, pollsBetweenLayers: pollBetweenLayers) : nil
        let latency = emulatedLatencyUs > 0 ? LatencyModel(perMessage: emulatedLatencyUs * 1e-6) : nil
        try launch(launchOptions) { comm in
            let linked = latency.map { DelayedCommunicator(wrapping: comm, model: $0) } ?? comm
            let result = try StepBenchmark.run(config: frozen, sampleShape: shape, steps: steps, pretrain: pretrain,
                                               gradientOverlap: overlap, comm: linked)
            if comm.rank == 0 { print(result.jsonLine) }
        }
    }
}

/// `bench retrieval`: exact Recall@K on random data against its matrix products alone.
struct BenchRetrieval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval",
        abstract: "Time exact k-NN retrieval (Recall@K, MAP@R) against the time of its matrix products alone.")

    @Option(help: "Number of embeddings (query set = gallery).") var count: Int = 50_000
    @Option(help: "Embedding size.") var dim: Int = 128
    @Option(help: "Number of classes.") var classes: Int = 1877
    @OptionGroup var launchOptions: LaunchOptions

    func run() throws {
        let count = count, dim = dim, classes = classes
        try launch(launchOptions) { comm in
            guard comm.rank == 0 else { return }
            let result = RetrievalBenchmark.run(count: count, dimension: dim, classes: classes)
            print(String(format: "{\"count\": %d, \"dim\": %d, \"seconds\": %.3f, \"gemm_seconds\": %.3f, \"ratio\": %.2f, \"R@1\": %.2f}",
                         count, dim, result.totalSeconds, result.gemmSeconds, result.totalSeconds / result.gemmSeconds,
                         result.metrics.recallAtOne))
        }
    }
}

/// `bench clustering`: NMI and AMI's k-means on synthetic embeddings, k = the classes.
struct BenchClustering: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clustering",
        abstract: "Time the clustering metrics (k-means++ and Lloyd's iterations with k = the classes, then NMI and AMI).")

    @Option(help: "Number of embeddings.") var count: Int = 50_000
    @Option(help: "Embedding size.") var dim: Int = 128
    @Option(help: "Number of classes (k).") var classes: Int = 1877
    @OptionGroup var launchOptions: LaunchOptions

    func run() throws {
        let count = count, dim = dim, classes = classes
        try launch(launchOptions) { comm in
            let timing = try ClusteringBenchmark.run(count: count, dimension: dim, classes: classes, comm: comm)
            if comm.rank == 0 { print(timing.jsonLine(count: count, dimension: dim)) }
        }
    }
}

/// `bench blas`: the OpenBLAS kernels in use against the naive reference.
struct BenchBLAS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas", abstract: "Check OpenBLAS' matrix products on this CPU against a naive reference.")

    @OptionGroup var launchOptions: LaunchOptions

    func run() throws {
        try launch(launchOptions) { comm in
            let failures = BLASCheck.run()
            if comm.rank == 0 {
                print("OpenBLAS \(BLASKernels.current) kernels, \(BLASThreads.current) thread(s): "
                      + (failures.isEmpty ? "all products match the reference" : "\(failures.count) products WRONG"))
                for failure in failures { print("  \(failure)") }
            }
            if try comm.any(!failures.isEmpty) { throw WrongBLAS() }
        }
    }
}

struct WrongBLAS: SameOnEveryRankError {
    var description: String {
        "OpenBLAS computes wrong products with these kernels; set OPENBLAS_CORETYPE to another family (e.g. Haswell) or XBM_KEEP_BLAS_KERNELS=1"
    }
}
