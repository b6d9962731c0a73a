import OTLPDCore
import OTLPDExporters
import OTLPDExtensions
import OTLPDProcessors
import OTLPDReceivers

/// The one list of component types this build knows.
public struct ComponentRegistry: Sendable {
    public var receivers: [String: any ReceiverFactory]
    public var processors: [String: any ProcessorFactory]
    public var exporters: [String: any ExporterFactory]
    public var extensions: [String: any ExtensionFactory]

    public init(
        receivers: [any ReceiverFactory],
        processors: [any ProcessorFactory],
        exporters: [any ExporterFactory],
        extensions: [any ExtensionFactory] = []
    ) {
        self.receivers = Dictionary(uniqueKeysWithValues: receivers.map { ($0.type, $0) })
        self.processors = Dictionary(uniqueKeysWithValues: processors.map { ($0.type, $0) })
        self.exporters = Dictionary(uniqueKeysWithValues: exporters.map { ($0.type, $0) })
        self.extensions = Dictionary(uniqueKeysWithValues: extensions.map { ($0.type, $0) })
    }

    public static let builtIn = ComponentRegistry(
        receivers: [OTLPReceiverFactory()],
        processors: [
            BatchProcessorFactory(), DebugLogProcessorFactory(), AttributesProcessorFactory(), ResourceProcessorFactory(), MemoryLimiterProcessorFactory(),
        ],
        exporters: [
            FileExporterFactory(), DebugExporterFactory(), NopExporterFactory(), OTLPGRPCExporterFactory(), OTLPGRPCExporterFactory(type: "otlp"),
            OTLPHTTPExporterFactory(), OTLPHTTPExporterFactory(type: "otlphttp"),
        ],
        extensions: [HealthCheckExtensionFactory(), FileStorageExtensionFactory(), BearerTokenAuthExtensionFactory()])

    public func factory(kind: ComponentKind, type: String) -> (any ComponentFactory)? {
        switch kind {
        case .receiver: self.receivers[type]
        case .processor: self.processors[type]
        case .exporter: self.exporters[type]
        case .extension: self.extensions[type]
        }
    }

    public func types(of kind: ComponentKind) -> [String] {
        switch kind {
        case .receiver: self.receivers.keys.sorted()
        case .processor: self.processors.keys.sorted()
        case .exporter: self.exporters.keys.sorted()
        case .extension: self.extensions.keys.sorted()
        }
    }
}
