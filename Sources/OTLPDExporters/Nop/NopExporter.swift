import OTLPDCore

/// `exporters.nop`: takes every batch and keeps nothing. For tests and
/// benchmarks: it measures everything but the output.
public struct NopExporter: Exporter {
    public init() {}

    public func start() async throws {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept { .all }

    public func shutdown() async {}
}

public struct NopExporterFactory: ExporterFactory {
    public let type = "nop"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        reader.finish()
        return NopExporter()
    }

    public func target(_ configuration: ComponentConfiguration) -> String { "nowhere (drops)" }

    public func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
        NopExporter()
    }
}
