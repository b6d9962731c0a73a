import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDWire

/// `exporters.debug`: the debuglog lines, as a final stage.
public struct DebugExporterConfiguration: Sendable {
    public var verbosity = DebugVerbosity.basic
    public var sampling = DebugSampling(initial: 0, thereafter: 1)

    static func decode(_ reader: ConfigReader) -> DebugExporterConfiguration {
        defer { reader.finish() }
        var configuration = DebugExporterConfiguration()
        configuration.verbosity = reader.choice("verbosity", default: .basic)
        configuration.sampling = DebugSampling(
            initial: reader.int("sampling_initial", default: 0, in: 0...1_000_000_000),
            thereafter: reader.int("sampling_thereafter", default: 1, in: 1...1_000_000_000))
        return configuration
    }
}

/// Per second, the first `initial` records, then one in `thereafter`;
/// `initial: 0` turns sampling off (every record is printed).
public struct DebugSampling: Sendable, Equatable {
    public var initial: Int
    public var thereafter: Int

    public init(initial: Int, thereafter: Int) {
        self.initial = initial
        self.thereafter = thereafter
    }
}

/// Counts records per second for `DebugSampling`.
final class DebugSampler: Sendable {
    let sampling: DebugSampling
    private let state = NIOLockedValueBox((second: Int64(0), count: 0))

    init(_ sampling: DebugSampling) {
        self.sampling = sampling
    }

    var isOff: Bool { self.sampling.initial == 0 }

    func keep() -> Bool {
        let second = Timestamp.nowNanoseconds() / 1_000_000_000
        return self.state.withLockedValue { state in
            if state.second != second { state = (second, 0) }
            state.count += 1
            if state.count <= self.sampling.initial { return true }
            return (state.count - self.sampling.initial) % self.sampling.thereafter == 0
        }
    }
}

/// Its lines are a view of the data, not a copy kept for later: when stdout
/// cannot be written (a closed pipe), the lines are dropped with one warning
/// instead of failing requests whose data the other exporters did keep.
public final class DebugExporter: Exporter {
    let configuration: DebugExporterConfiguration
    private let output: FileAppender
    private let sampler: DebugSampler
    private let logger: Logger
    private let outputFailed = NIOLockedValueBox(false)

    public init(configuration: DebugExporterConfiguration, settings: ComponentSettings, output: FileAppender? = nil) {
        self.configuration = configuration
        self.output = output ?? FileAppender(standardStream: 1, logger: settings.logger)
        self.sampler = DebugSampler(configuration.sampling)
        self.logger = settings.logger
    }

    public func start() async throws {}

    public func consume(_ batch: TelemetryBatch) async throws(ConsumeError) {
        var sink = ByteSink(capacity: 256 + batch.itemCount * 160)
        let sampler = self.sampler
        DebugFormatter.appendLines(
            batch.payload, signal: batch.signal, verbosity: self.configuration.verbosity, time: Timestamp.iso8601(), to: &sink,
            sample: { keep in if !sampler.isOff { keep = sampler.keep() } })
        guard sink.byteCount > 0 else { return }
        do {
            try await self.output.append(sink.byteBuffer())
        } catch {
            let firstFailure = self.outputFailed.withLockedValue { failed -> Bool in
                defer { failed = true }
                return !failed
            }
            if firstFailure {
                self.logger.warning("cannot write debug lines to stdout; dropping them from now on", metadata: ["error": "\(error)"])
            }
        }
    }

    public func shutdown() async {
        await self.output.close()
    }
}

public struct DebugExporterFactory: ExporterFactory {
    public let type = "debug"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        DebugExporterConfiguration.decode(reader)
    }

    public func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
        DebugExporter(configuration: configuration as! DebugExporterConfiguration, settings: settings)
    }
}
