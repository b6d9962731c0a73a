import OTLPDCore
import OTLPDOutput
import OTLPDWire

/// `processors.debuglog`.
public struct DebugLogConfiguration: Sendable {
    public var verbosity = DebugVerbosity.normal
    public var sampling = DebugSampling(initial: 0, thereafter: 1)
    public var output = DebugOutput.stdout

    static func decode(_ reader: ConfigReader) -> DebugLogConfiguration {
        defer { reader.finish() }
        var configuration = DebugLogConfiguration()
        configuration.verbosity = reader.choice("verbosity", default: .normal)
        configuration.sampling = DebugSampling.decode(reader)
        configuration.output = reader.choice("output", default: .stdout)
        return configuration
    }
}

/// Prints what passes through (the `debug` exporter's lines), then passes it
/// on unchanged: to see what a pipeline holds at any point of it.
public final class DebugLogProcessor: Processor {
    let printer: DebugLinePrinter
    let next: any Consumer

    init(configuration: DebugLogConfiguration, next: any Consumer, settings: ComponentSettings) {
        self.printer = DebugLinePrinter(
            verbosity: configuration.verbosity, sampling: configuration.sampling, output: configuration.output, logger: settings.logger)
        self.next = next
    }

    public func start() async throws {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        await self.printer.print(batch)
        return try await self.next.consume(batch)
    }

    public func shutdown() async {
        await self.printer.close()
    }
}

public struct DebugLogProcessorFactory: ProcessorFactory {
    public let type = "debuglog"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        DebugLogConfiguration.decode(reader)
    }

    public func makeProcessor(_ configuration: ComponentConfiguration, signal: Signal, next: any Consumer, settings: ComponentSettings) throws -> any Processor {
        DebugLogProcessor(configuration: configuration as! DebugLogConfiguration, next: next, settings: settings)
    }
}
