import OTLPDCore
import OTLPDOutput
import OTLPDWire

/// `exporters.debug`: the debuglog lines, as a final stage.
public struct DebugExporterConfiguration: Sendable {
    public var verbosity = DebugVerbosity.basic
    public var sampling = DebugSampling(initial: 0, thereafter: 1)

    static func decode(_ reader: ConfigReader) -> DebugExporterConfiguration {
        defer { reader.finish() }
        var configuration = DebugExporterConfiguration()
        configuration.verbosity = reader.choice("verbosity", default: .basic)
        configuration.sampling = DebugSampling.decode(reader)
        return configuration
    }
}

/// Prints a line per resource, per record, or every field, on stdout.
public final class DebugExporter: Exporter {
    let printer: DebugLinePrinter

    public init(configuration: DebugExporterConfiguration, settings: ComponentSettings) {
        self.printer = DebugLinePrinter(verbosity: configuration.verbosity, sampling: configuration.sampling, output: .stdout, logger: settings.logger)
    }

    public func start() async throws {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        await self.printer.print(batch)
        return .all
    }

    public func shutdown() async {
        await self.printer.close()
    }
}

public struct DebugExporterFactory: ExporterFactory {
    public let type = "debug"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        DebugExporterConfiguration.decode(reader)
    }

    public func target(_ configuration: ComponentConfiguration) -> String { "stdout" }

    public func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
        DebugExporter(configuration: configuration as! DebugExporterConfiguration, settings: settings)
    }
}
