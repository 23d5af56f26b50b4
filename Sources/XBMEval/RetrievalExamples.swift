import XBMKernels

/// A query and its nearest gallery items, for the retrieval picture (`RetrievalPicture`).
public struct RetrievalExample: Sendable, Equatable {
    public struct Neighbour: Sendable, Equatable {
        /// The gallery item's dataset row and class.
        public var row: Int
        public var label: Int32
        /// Its similarity to the query (the dot product of their embeddings).
        public var similarity: Float

        public init(row: Int, label: Int32, similarity: Float) {
            self.row = row
            self.label = label
            self.similarity = similarity
        }
    }

    /// The query's dataset row and class.
    public var row: Int
    public var label: Int32
    /// The nearest gallery items, nearest first, in the order `Retrieval` ranks them (higher
    /// similarity first, then the lower gallery index).
    public var neighbours: [Neighbour]

    public init(row: Int, label: Int32, neighbours: [Neighbour]) {
        self.row = row
        self.label = label
        self.neighbours = neighbours
    }

    /// Whether the nearest neighbour is of the query's class.
    public var topOneIsRight: Bool { neighbours.first?.label == label }
}

extension Retrieval {
    /// Queries of `split` and their `k` nearest gallery items: the queries are taken in an order
    /// shuffled by `seed`, skipping those with no other item of their class (R = 0, as the
    /// metrics do) and, with `failuresOnly`, those whose nearest neighbour is of their class,
    /// until `count` are found (fewer when the split has fewer). Neighbours are ranked as the
    /// metrics rank them (`TopKSelection`), a query never its own neighbour when query set =
    /// gallery set. The queries are scored in blocks of `blockSize` products, so asking for
    /// failures of a good model costs up to one pass of the evaluation.
    public static func examples(of split: EmbeddedSplit, count: Int, neighbours k: Int, seed: UInt64,
                                failuresOnly: Bool, blockSize: Int = defaultBlockSize) -> [RetrievalExample] {
        precondition(count >= 1 && k >= 1 && blockSize >= 1,
                     "retrieval examples need count, neighbours and block size ≥ 1, got \(count), \(k), \(blockSize)")
        let queryCount = split.queryLabels.count, galleryCount = split.galleryLabels.count, d = split.dimension
        let relevant = relevantCountPerQuery(queryLabels: split.queryLabels, galleryLabels: split.galleryLabels,
                                             range: 0..<queryCount, sameSet: split.sameSet)
        let kept = min(k, galleryCount - (split.sameSet ? 1 : 0))
        guard kept >= 1 else { return [] }
        var random = RandomSource.derived(seed: seed, stream: 0x5348_4F57)      // "SHOW"
        var order = Array(0..<queryCount)
        order.shuffle(using: &random)
        order.removeAll { relevant[$0] == 0 }

        var selection = TopKSelection(capacity: kept)
        let best = FlatBuffer<UInt64>(count: kept)
        let block = FlatBuffer<Float>(count: min(blockSize, max(order.count, 1)) * d)      // (m, d) queries of a block
        let scores = FlatBuffer<Float>(count: min(blockSize, max(order.count, 1)) * galleryCount)   // (m, G)
        var examples: [RetrievalExample] = []
        var start = 0
        while start < order.count && examples.count < count {
            let queries = order[start..<min(start + blockSize, order.count)]
            for (slot, query) in queries.enumerated() {
                (block.pointer + slot * d).update(from: split.queries.pointer + query * d, count: d)
            }
            gemm(.none, .transposed, m: queries.count, n: galleryCount, k: d, a: block.pointer, lda: d,
                 b: split.gallery.pointer, ldb: d, c: scores.pointer, ldc: galleryCount)
            for (slot, query) in queries.enumerated() where examples.count < count {
                selection.scan(row: scores.pointer + slot * galleryCount, width: galleryCount, excluded: split.sameSet ? query : -1)
                selection.best(kept, into: best.pointer)
                let neighbours = (0..<kept).map { rank -> RetrievalExample.Neighbour in
                    let index = TopKSelection.index(ofKey: best[rank])
                    return .init(row: split.galleryIndices[index], label: split.galleryLabels[index],
                                 similarity: TopKSelection.similarity(ofKey: best[rank]))
                }
                let example = RetrievalExample(row: split.queryIndices[query], label: split.queryLabels[query], neighbours: neighbours)
                if !failuresOnly || !example.topOneIsRight { examples.append(example) }
            }
            start += queries.count
        }
        return examples
    }
}
