import XBMKernels
/// Per-thread workspace that turns one similarity row into a `QueryScore`: selection of the
/// candidates (`TopKSelection`), then the R best in order and the rank of the best relevant.
final class RowScorer {
    private var selection: TopKSelection
    private let best: FlatBuffer<UInt64>          // (k) the R best keys of a row, best first
    private let relevantInTopR: FlatBuffer<Bool>  // (k) rel(1) … rel(R)

    init(capacity k: Int) {
        selection = TopKSelection(capacity: k)
        best = FlatBuffer<UInt64>(count: k)
        relevantInTopR = FlatBuffer<Bool>(count: k, initialValue: false)
    }

    /// Scores the query whose similarities to the gallery are row[0..<width], with label
    /// `label` and R = relevantCount ≥ 1 relevant gallery items; `excluded` is its own gallery
    /// index when query set = gallery set, else −1.
    func score(row: UnsafePointer<Float>, width: Int, excluded: Int, label: Int32, relevantCount: Int,
               galleryLabels: [Int32]) -> QueryScore {
        selection.scan(row: row, width: width, excluded: excluded)
        assert(selection.count >= relevantCount, "kept \(selection.count) candidates, fewer than R = \(relevantCount)")
        selection.best(relevantCount, into: best.pointer)
        for i in 0..<relevantCount {
            relevantInTopR[i] = galleryLabels[TopKSelection.index(ofKey: best[i])] == label
        }
        return QueryScore(firstRelevantRank: firstRelevantRank(label: label, galleryLabels: galleryLabels),
                          relevantInTopR: UnsafeBufferPointer(start: relevantInTopR.pointer, count: relevantCount))
    }

    /// The rank of the best relevant candidate if it is among the k best (else Int.max): one
    /// plus the candidates better than it, exact for any entry of the k best (see TopKSelection).
    private func firstRelevantRank(label: Int32, galleryLabels: [Int32]) -> Int {
        var bestRelevant: UInt64? = nil
        for key in selection.candidates where key > (bestRelevant ?? 0) {
            if galleryLabels[TopKSelection.index(ofKey: key)] == label { bestRelevant = key }
        }
        guard let target = bestRelevant else { return Int.max }
        var better = 0
        for key in selection.candidates where key > target { better += 1 }
        return better < selection.capacity ? better + 1 : Int.max
    }
}
