import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCompression
import OTLPDCore
import OTLPDOutput
import OTLPDSystem
import OTLPDWire

/// The `file` exporter: OTLP/JSON lines (one resource per line) or
/// length-prefixed protobuf, appended to one file per signal, optionally
/// compressed (each write a complete gzip member or zstd frame, so the file
/// is a valid stream at every moment), rotated by size, and optionally
/// split into a file per value of a resource attribute.
public final class FileExporter: Exporter {
    let configuration: FileExporterConfiguration
    let signals: Set<Signal>
    let settings: ComponentSettings
    /// One appender per output path.
    private let appenders = NIOLockedValueBox(Appenders())
    private let syncTask = NIOLockedValueBox<RepeatedTask?>(nil)

    private struct Appenders {
        var byPath: [String: FileAppender] = [:]
        /// Least recently used first, for group_by's open-file limit.
        var recency: [String] = []
    }

    public init(configuration: FileExporterConfiguration, signals: Set<Signal>, settings: ComponentSettings) {
        self.configuration = configuration
        self.signals = signals
        self.settings = settings
    }

    public func start() async throws {
        if self.configuration.groupBy == nil {
            for signal in self.signals {
                try self.appender(for: signal, group: nil).open()
            }
        }
        if self.configuration.flushInterval > .zero {
            let interval = TimeAmount.nanoseconds(self.configuration.flushInterval.nanosecondsValue)
            let task = self.settings.eventLoopGroup.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let appenders = self.appenders.withLockedValue { Array($0.byPath.values) }
                NIOThreadPool.singleton.submit { _ in
                    for appender in appenders { appender.sync() }
                }
            }
            self.syncTask.withLockedValue { $0 = task }
        }
    }

    /// How many times `flush_interval` put written data on disk, over every file.
    public var syncCount: Int {
        self.appenders.withLockedValue { $0.byPath.values.reduce(0) { $0 + $1.syncCount } }
    }

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        guard let groupBy = self.configuration.groupBy else {
            try await self.appender(for: batch.signal, group: nil).append(self.record(batch.parts, signal: batch.signal))
            return .all
        }
        // A file per attribute value: split the request by resource (slices, no copies).
        var groups: [String: [ByteBuffer]] = [:]
        var order: [String] = []
        for request in batch.parts {
            for part in ResourceSplitter.split(request, attribute: groupBy.resourceAttribute) {
                let key = part.attributeValue.map(Self.safeFileName) ?? "unknown"
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(part.request)
            }
        }
        for key in order {
            try await self.appender(for: batch.signal, group: key).append(self.record(groups[key]!, signal: batch.signal))
        }
        return .all
    }

    /// What one request adds to its file. Uncompressed JSON is rendered by
    /// the writing thread, straight before the write; compressed output is
    /// encoded here, so compression runs on the receiving threads.
    /// `parts` are requests that together make the one request recorded.
    private func record(_ parts: [ByteBuffer], signal: Signal) -> FileRecord {
        if self.configuration.format == .json && self.configuration.compression == .none {
            return .rendered { sink, boundary in
                for part in parts { OTLPJSONEncoder.appendLines(part, signal: signal, to: &sink, lineEnd: boundary) }
            }
        }
        var bytes: ByteBuffer
        switch self.configuration.format {
        case .json:
            bytes = OTLPJSONEncoder.encodeLines(parts, signal: signal)
        case .proto:
            let size = parts.reduce(0) { $0 + $1.readableBytes }
            bytes = ByteBufferAllocator().buffer(capacity: size + 4)
            bytes.writeInteger(UInt32(size))
            for part in parts { bytes.writeImmutableBuffer(part) }
        }
        if self.configuration.compression != .none {
            bytes = Compression.compress(bytes, coding: self.configuration.compression.coding)
        }
        return .bytes(bytes)
    }

    private func appender(for signal: Signal, group: String?) -> FileAppender {
        var path = self.configuration.path(for: signal, signalCount: self.signals.count)
        if let group { path = path.replacingFirstStar(with: group) }
        let (appender, evicted) = self.appenders.withLockedValue { appenders -> (FileAppender, FileAppender?) in
            if let existing = appenders.byPath[path] {
                if group != nil, let index = appenders.recency.firstIndex(of: path) {
                    appenders.recency.remove(at: index)
                    appenders.recency.append(path)
                }
                return (existing, nil)
            }
            let appender = FileAppender(path: path, rotation: self.configuration.rotation, logger: self.settings.logger, memory: self.settings.memoryGuard)
            appenders.byPath[path] = appender
            var evicted: FileAppender?
            if group != nil {
                appenders.recency.append(path)
                if let limit = self.configuration.groupBy?.maxOpenFiles, appenders.recency.count > limit {
                    let oldest = appenders.recency.removeFirst()
                    evicted = appenders.byPath.removeValue(forKey: oldest)
                }
            }
            return (appender, evicted)
        }
        if let evicted {
            // Closed after its pending writes; a later write to that group reopens it.
            Task { await evicted.close() }
        }
        return appender
    }

    public func shutdown() async {
        self.syncTask.withLockedValue { $0?.cancel() }
        let appenders = self.appenders.withLockedValue { Array($0.byPath.values) }
        for appender in appenders { await appender.close() }
    }

    /// An attribute value as part of a file name: no folders, no hidden files.
    static func safeFileName(_ value: String) -> String {
        var name = String(value.map { $0 == "/" || $0 == "\\" || $0 == "\0" || $0.isNewline ? "_" : $0 })
        if name.isEmpty || name == "." || name == ".." { name = "unknown" }
        if name.hasPrefix(".") { name = "_" + name.dropFirst() }
        return String(name.prefix(200))
    }
}

extension String {
    fileprivate func replacingFirstStar(with value: String) -> String {
        guard let star = self.firstIndex(of: "*") else { return self }
        return String(self[..<star]) + value + String(self[self.index(after: star)...])
    }
}

/// Builds `file` exporters.
public struct FileExporterFactory: ExporterFactory {
    public let type = "file"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        FileExporterConfiguration.decode(reader)
    }

    public func validate(_ configuration: ComponentConfiguration) -> [String] {
        let configuration = configuration as! FileExporterConfiguration
        guard !configuration.path.isEmpty else { return [] }
        let probe = configuration.path.replacingFirstStar(with: "unknown")
        if let error = FileOperations.checkWritable(probe) {
            return ["path: cannot write there (\(error))"]
        }
        return []
    }

    public func target(_ configuration: ComponentConfiguration) -> String {
        (configuration as! FileExporterConfiguration).path
    }

    public func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
        FileExporter(configuration: configuration as! FileExporterConfiguration, signals: signals, settings: settings)
    }
}
