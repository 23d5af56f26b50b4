/// `xbm-dist --version`. Raised with each release that changes the command line, the
/// checkpoint or the export format (Docs/architecture.md).
enum XBMVersion {
    static let current = "0.9.0"
}
