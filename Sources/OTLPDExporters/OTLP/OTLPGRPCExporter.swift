import OTLPDCore

/// `exporters.otlp_grpc`, also named `otlp` as in the Collector: forwards
/// each batch to an upstream collector over OTLP/gRPC.
public struct OTLPGRPCExporterFactory: ExporterFactory {
    public let type: String
    public let signals: Set<Signal> = Set(Signal.allCases)

    /// `type`: `otlp_grpc`, or the Collector's name for it, `otlp`.
    public init(type: String = "otlp_grpc") {
        self.type = type
    }

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        OTLPGRPCExporterConfiguration.decode(reader)
    }

    public func warnings(_ configuration: ComponentConfiguration) -> [String] {
        let configuration = configuration as! OTLPGRPCExporterConfiguration
        var warnings: [String] = []
        if configuration.endpoint.port == 4318 {
            warnings.append(
                "endpoint \(configuration.endpoint) ends in :4318, the OTLP/HTTP port; an otlp_grpc exporter usually sends to 4317 (or use otlp_http for 4318)"
            )
        }
        return warnings
    }

    public func extensionsUsed(_ configuration: ComponentConfiguration) -> [ExtensionUse] {
        let configuration = configuration as! OTLPGRPCExporterConfiguration
        return ClientTarget.extensionsUsed(storage: configuration.helper.queue.storage, authenticator: configuration.authenticator)
    }

    public func target(_ configuration: ComponentConfiguration) -> String {
        (configuration as! OTLPGRPCExporterConfiguration).endpoint.description
    }

    public func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
        let configuration = configuration as! OTLPGRPCExporterConfiguration
        let sender = try OTLPGRPCSender(configuration: configuration, settings: settings)
        return try ForwardingExporter(helper: configuration.helper, sender: sender, signals: signals, settings: settings)
    }
}
