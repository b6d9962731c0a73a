/// The OTLP/gRPC service paths, which receivers route by and exporters call.
public enum GRPCRoutes {
    public static func signal(forPath path: String) -> Signal? {
        switch path {
        case "/opentelemetry.proto.collector.trace.v1.TraceService/Export": .traces
        case "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": .metrics
        case "/opentelemetry.proto.collector.logs.v1.LogsService/Export": .logs
        default: nil
        }
    }

    public static func path(for signal: Signal) -> String {
        switch signal {
        case .traces: "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        case .metrics: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        case .logs: "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        }
    }
}

/// The body encodings of OTLP/HTTP.
public enum HTTPEncoding: Sendable, Equatable {
    case protobuf
    case json

    /// From a Content-Type header (parameters such as charset ignored); nil when unsupported.
    public init?(contentType: String?) {
        guard let contentType else { return nil }
        let mediaType = contentType.split(separator: ";").first.map { $0.lowercased().filter { !$0.isWhitespace } } ?? ""
        switch mediaType {
        case "application/x-protobuf", "application/protobuf": self = .protobuf
        case "application/json": self = .json
        default: return nil
        }
    }

    public var contentType: String {
        switch self {
        case .protobuf: "application/x-protobuf"
        case .json: "application/json"
        }
    }
}
