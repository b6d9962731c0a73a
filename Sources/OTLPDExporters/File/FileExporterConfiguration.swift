import OTLPDCompression
import OTLPDCore
import OTLPDOutput
import OTLPDSystem

/// `exporters.file`.
public struct FileExporterConfiguration: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        /// OTLP/JSON, one resource per line.
        case json
        /// Each request as a 4-byte big-endian length and its protobuf bytes.
        case proto
    }

    public enum FileCompression: String, Sendable, CaseIterable {
        case none
        case gzip
        case zstd

        var coding: ContentCoding {
            switch self {
            case .none: .identity
            case .gzip: .gzip
            case .zstd: .zstd
            }
        }
    }

    public struct GroupBy: Sendable {
        public var resourceAttribute = "service.name"
        public var maxOpenFiles = 100
    }

    public var path: String
    public var format = Format.json
    public var compression = FileCompression.none
    /// How often written data is fsync'ed to disk. Data is with the kernel
    /// before a request is acknowledged whatever this says.
    public var flushInterval: Duration = .seconds(1)
    public var rotation: RotationPolicy? = RotationPolicy()
    public var groupBy: GroupBy?

    static func decode(_ reader: ConfigReader) -> FileExporterConfiguration {
        defer { reader.finish() }
        let path = reader.string("path") ?? ""
        if path.isEmpty { reader.error("path", "the file exporter needs a path") }
        var configuration = FileExporterConfiguration(path: path)
        configuration.format = reader.choice("format", default: .json)
        configuration.compression = reader.choice("compression", default: .none)
        configuration.flushInterval = reader.duration("flush_interval", default: .seconds(1))
        if reader.contains("append"), !reader.bool("append", default: true) {
            reader.error("append", "otlpd always appends to its output files and never truncates them; remove 'append: false'")
        }
        if let rotation = reader.child("rotation") {
            let maxMegabytes = rotation.int("max_megabytes", default: 100, in: 0...1_000_000)
            configuration.rotation = RotationPolicy(
                maxBytes: maxMegabytes << 20,
                maxDays: rotation.int("max_days", default: 0, in: 0...100_000),
                maxBackups: rotation.int("max_backups", default: 100, in: 0...1_000_000),
                localTime: rotation.bool("localtime", default: false))
            rotation.finish()
        }
        if let groupBy = reader.child("group_by") {
            if groupBy.bool("enabled", default: false) {
                var settings = GroupBy()
                settings.resourceAttribute = groupBy.string("resource_attribute", default: settings.resourceAttribute)
                settings.maxOpenFiles = groupBy.int("max_open_files", default: 100, in: 1...100_000)
                configuration.groupBy = settings
                if !path.contains("*") {
                    reader.error("path", "with group_by enabled, the path needs a '*' where the attribute's value goes")
                }
            } else {
                groupBy.accept("resource_attribute", "max_open_files")
            }
            groupBy.finish()
        }
        return configuration
    }

    /// The file of one signal: `otlpd.jsonl` becomes `otlpd.traces.jsonl` when
    /// the exporter takes several signals (one signal per file).
    func path(for signal: Signal, signalCount: Int) -> String {
        guard signalCount > 1 else { return self.path }
        let (directory, base, ext) = FileAppender.split(self.path)
        return directory + base + "." + signal.rawValue + ext
    }
}
