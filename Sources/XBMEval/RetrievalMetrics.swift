import XBMFormats
/// Final retrieval metrics of one evaluation (Docs/evaluation.md), all in percent.
public struct RetrievalMetrics: Codable, Sendable, Equatable {
    /// Recall@K in percent, keyed by K: the share of scored queries with a relevant item in
    /// their top K.
    public var recall: [Int: Double]
    /// MAP@R in percent (Musgrave, Belongie, Lim, "A Metric Learning Reality Check", 2020).
    public var mapAtR: Double
    /// R-precision in percent.
    public var rPrecision: Double
    /// Queries that were scored (R ≥ 1).
    public var queries: Int
    /// Queries left out because no other gallery item shares their label (R = 0).
    public var skipped: Int
    /// NMI and AMI of k-means on the query embeddings, when the evaluation clustered them.
    public var clustering: ClusteringMetrics?

    public init(recall: [Int: Double], mapAtR: Double, rPrecision: Double, queries: Int, skipped: Int,
                clustering: ClusteringMetrics? = nil) {
        self.recall = recall
        self.mapAtR = mapAtR
        self.rPrecision = rPrecision
        self.queries = queries
        self.skipped = skipped
        self.clustering = clustering
    }

    /// Recall@1 in percent (0 when 1 is not among the Ks).
    public var recallAtOne: Double { recall[1] ?? 0 }

    /// Metric name and value, in report order: "R@K" ascending, then "MAP@R", "R-precision",
    /// and "NMI", "AMI" when the evaluation clustered.
    public var namedValues: [(name: String, value: Double)] {
        recall.keys.sorted().map { (name: "R@\($0)", value: recall[$0]!) }
            + [(name: "MAP@R", value: mapAtR), (name: "R-precision", value: rPrecision)]
            + (clustering.map { [(name: "NMI", value: $0.nmi), (name: "AMI", value: $0.ami)] } ?? [])
    }

    /// The metrics by name: "R@1", "R@10", "R@100", "R@1000", "MAP@R", "R-precision" (and "NMI", "AMI").
    public var jsonObject: [String: Double] {
        Dictionary(uniqueKeysWithValues: namedValues.map { ($0.name, $0.value) })
    }

    /// One JSON object with the keys in report order plus "queries" and "skipped_queries",
    /// values with 4 decimals; for `metrics.json` and log lines.
    public var jsonString: String {
        let fields = namedValues.map { "\"\($0.name)\": \(formatted($0.value, decimals: 4))" }
            + ["\"queries\": \(queries)", "\"skipped_queries\": \(skipped)"]
        return "{" + fields.joined(separator: ", ") + "}"
    }

    /// A two-column text table for stdout, e.g.
    /// ```
    /// metric        value (%)
    /// ------------  ---------
    /// R@1               90.50
    /// ...
    /// queries: 50700 (skipped 0 with no other item of their class)
    /// ```
    public var table: String {
        let rows = namedValues.map { ($0.name, formatted($0.value, decimals: 2)) }
        let nameWidth = max(12, rows.map(\.0.count).max() ?? 0)
        let valueHeader = "value (%)"
        let valueWidth = max(valueHeader.count, rows.map(\.1.count).max() ?? 0)
        func pad(_ text: String, _ width: Int, right: Bool) -> String {
            let padding = String(repeating: " ", count: max(0, width - text.count))
            return right ? padding + text : text + padding
        }
        var lines = [pad("metric", nameWidth, right: false) + "  " + pad(valueHeader, valueWidth, right: true),
                     String(repeating: "-", count: nameWidth) + "  " + String(repeating: "-", count: valueWidth)]
        for (name, value) in rows { lines.append(pad(name, nameWidth, right: false) + "  " + pad(value, valueWidth, right: true)) }
        lines.append("queries: \(queries) (skipped \(skipped) with no other item of their class)")
        if let clustering { lines.append(clustering.summary) }
        return lines.joined(separator: "\n")
    }
}
