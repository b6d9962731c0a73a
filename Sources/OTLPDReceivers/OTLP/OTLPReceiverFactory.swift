import OTLPDCore

/// Builds `otlp` receivers.
public struct OTLPReceiverFactory: ReceiverFactory {
    public let type = "otlp"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        OTLPReceiverConfiguration.decode(reader)
    }

    public func makeReceiver(
        _ configuration: ComponentConfiguration,
        consumers: [Signal: any Consumer],
        settings: ComponentSettings
    ) throws -> any Receiver {
        OTLPReceiver(configuration: configuration as! OTLPReceiverConfiguration, consumers: consumers, settings: settings)
    }
}
