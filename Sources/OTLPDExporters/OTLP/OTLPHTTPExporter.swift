import OTLPDCore

/// `exporters.otlp_http`, also named `otlphttp` as in the Collector:
/// forwards each batch to an upstream collector over OTLP/HTTP.
public struct OTLPHTTPExporterFactory: ExporterFactory {
    public let type: String
    public let signals: Set<Signal> = Set(Signal.allCases)

    /// `type`: `otlp_http`, or the Collector's name for it, `otlphttp`.
    public init(type: String = "otlp_http") {
        self.type = type
    }

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        OTLPHTTPExporterConfiguration.decode(reader)
    }

    public func validate(_ configuration: ComponentConfiguration, signal: Signal) -> [String] {
        let configuration = configuration as! OTLPHTTPExporterConfiguration
        guard configuration.targets[signal] == nil else { return [] }
        return ["no endpoint for \(signal): set endpoint or \(signal.rawValue)_endpoint"]
    }

    public func warnings(_ configuration: ComponentConfiguration) -> [String] {
        let configuration = configuration as! OTLPHTTPExporterConfiguration
        return Set(configuration.targets.values.map(\.endpoint)).filter { $0.port == 4317 }.map {
            "endpoint \($0) is on port 4317, the OTLP/gRPC port; an otlp_http exporter usually sends to 4318 (or use otlp_grpc for 4317)"
        }
    }

    public func extensionsUsed(_ configuration: ComponentConfiguration) -> [ExtensionUse] {
        let configuration = configuration as! OTLPHTTPExporterConfiguration
        return ClientTarget.extensionsUsed(storage: configuration.helper.queue.storage, authenticator: configuration.authenticator)
    }

    public func target(_ configuration: ComponentConfiguration) -> String {
        let targets = (configuration as! OTLPHTTPExporterConfiguration).targets
        return Set(targets.values.map { "\($0.secure ? "https" : "http")://\($0.endpoint)" }).sorted().joined(separator: ",")
    }

    public func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
        let configuration = configuration as! OTLPHTTPExporterConfiguration
        let sender = try OTLPHTTPSender(configuration: configuration, settings: settings)
        return try ForwardingExporter(helper: configuration.helper, sender: sender, signals: signals, settings: settings)
    }
}
