import XBMData
import XBMFormats

/// What a model retrieves, as one picture (`xbm-dist eval --show`, Docs/evaluation.md): a row per
/// query, the query first in a blue frame with its class under it, then its nearest gallery
/// items, nearest first, each in a green frame when it is of the query's class and a red one
/// when not, with its similarity to the query under it (2 decimals). Works for grey and
/// colour images; the picture is RGB.
///
/// Geometry (pixels): samples are scaled up by the whole factor `scale` (the smallest that
/// makes them at least 64 pixels on each side); a cell is the sample inside a frame
/// `frameThickness` wide, then `textGap` and a line of `DigitFont` text at `textScale`. Cells
/// of a row are `cellGap` apart, with `queryGap` after the query; rows are `rowGap` apart
/// inside a `margin`.
public struct RetrievalPicture {
    public static let frameThickness = 3, textGap = 3, cellGap = 4, queryGap = 16, rowGap = 10, margin = 8
    public static let queryColour = RasterImage.RGB(31, 119, 180)
    public static let rightColour = RasterImage.RGB(0, 160, 0)
    public static let wrongColour = RasterImage.RGB(214, 39, 40)

    public let examples: [RetrievalExample]
    /// Each sample's channels, height and width, and the factor they are drawn at.
    public let channels: Int, sampleHeight: Int, sampleWidth: Int
    public let scale: Int
    /// The factor of the text: 2, or 1 when a similarity at 2 would be wider than a cell.
    public let textScale: Int
    /// The neighbours per row (the longest row's).
    public let columns: Int

    /// Throws `EvaluationError.noImagesToShow` unless `dataset` holds images: call it before
    /// the work the picture needs.
    public static func requireImages(_ dataset: Dataset) throws {
        guard dataset.isImages else { throw EvaluationError.noImagesToShow(dataset.directory.path) }
    }

    /// The layout of `examples` drawn from `dataset`'s images (`requireImages`).
    public init(examples: [RetrievalExample], dataset: Dataset) throws {
        try Self.requireImages(dataset)
        guard case let .images(channels, height, width) = dataset.kind else { preconditionFailure("checked by requireImages") }
        self.examples = examples
        self.channels = channels
        sampleHeight = height
        sampleWidth = width
        let scale = max(1, (64 + min(height, width) - 1) / min(height, width))     // ⌈64 / shorter side⌉
        self.scale = scale
        textScale = DigitFont.textWidth("-0.00", scale: 2) <= width * scale + 2 * Self.frameThickness ? 2 : 1
        columns = examples.map(\.neighbours.count).max() ?? 0
    }

    /// A cell's size: the framed sample and its line of text.
    public var cellWidth: Int { sampleWidth * scale + 2 * Self.frameThickness }
    public var cellHeight: Int { sampleHeight * scale + 2 * Self.frameThickness + Self.textGap + DigitFont.height * textScale }
    public var width: Int { 2 * Self.margin + cellWidth * (columns + 1) + Self.queryGap + Self.cellGap * max(0, columns - 1) }
    public var height: Int { 2 * Self.margin + cellHeight * examples.count + Self.rowGap * max(0, examples.count - 1) }

    /// The top left corner of the frame of `row`'s cell `column` (0 the query, 1… its neighbours).
    public func cellOrigin(row: Int, column: Int) -> (x: Int, y: Int) {
        let x = Self.margin + (column == 0 ? 0 : cellWidth + Self.queryGap + (column - 1) * (cellWidth + Self.cellGap))
        return (x, Self.margin + row * (cellHeight + Self.rowGap))
    }

    /// The text under a cell: the query's class, a neighbour's similarity.
    public func caption(row: Int, column: Int) -> String {
        let example = examples[row]
        return column == 0 ? String(example.label) : formatted(Double(example.neighbours[column - 1].similarity), decimals: 2)
    }

    /// The colour of a cell's frame.
    public func frameColour(row: Int, column: Int) -> RasterImage.RGB {
        let example = examples[row]
        if column == 0 { return Self.queryColour }
        return example.neighbours[column - 1].label == example.label ? Self.rightColour : Self.wrongColour
    }

    /// Where a cell's text starts: centred under the frame.
    public func captionOrigin(row: Int, column: Int) -> (x: Int, y: Int) {
        let origin = cellOrigin(row: row, column: column)
        let textWidth = DigitFont.textWidth(caption(row: row, column: column), scale: textScale)
        return (origin.x + max(0, (cellWidth - textWidth) / 2), origin.y + sampleHeight * scale + 2 * Self.frameThickness + Self.textGap)
    }

    /// The picture, drawn from `dataset` (the one the examples' rows index).
    public func render(dataset: Dataset) -> RasterImage {
        var picture = RasterImage(width: max(width, 1), height: max(height, 1), colour: .rgb, background: .white)
        let raw = dataset.rawSamples, sampleBytes = channels * sampleHeight * sampleWidth
        for (row, example) in examples.enumerated() {
            for column in 0...example.neighbours.count {
                let origin = cellOrigin(row: row, column: column)
                let item = column == 0 ? example.row : example.neighbours[column - 1].row
                picture.frame(x: origin.x, y: origin.y, width: cellWidth, height: sampleHeight * scale + 2 * Self.frameThickness,
                              thickness: Self.frameThickness, with: frameColour(row: row, column: column))
                picture.draw(sample: UnsafeRawBufferPointer(rebasing: raw[(item * sampleBytes)..<((item + 1) * sampleBytes)]),
                             channels: channels, height: sampleHeight, width: sampleWidth,
                             x: origin.x + Self.frameThickness, y: origin.y + Self.frameThickness, scale: scale)
                let text = captionOrigin(row: row, column: column)
                picture.draw(text: caption(row: row, column: column), x: text.x, y: text.y, scale: textScale, with: .black)
            }
        }
        return picture
    }
}
