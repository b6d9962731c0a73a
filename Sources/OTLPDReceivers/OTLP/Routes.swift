import OTLPDCore

/// The OTLP/gRPC service paths.
enum GRPCRoutes {
    static func signal(forPath path: String) -> Signal? {
        switch path {
        case "/opentelemetry.proto.collector.trace.v1.TraceService/Export": .traces
        case "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": .metrics
        case "/opentelemetry.proto.collector.logs.v1.LogsService/Export": .logs
        default: nil
        }
    }

    static func path(for signal: Signal) -> String {
        switch signal {
        case .traces: "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        case .metrics: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        case .logs: "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        }
    }
}

/// The body encodings of OTLP/HTTP.
enum HTTPEncoding: Equatable {
    case protobuf
    case json

    /// From a Content-Type header (parameters such as charset ignored); nil when unsupported.
    init?(contentType: String?) {
        guard let contentType else { return nil }
        let mediaType = contentType.split(separator: ";").first.map { $0.lowercased().filter { !$0.isWhitespace } } ?? ""
        switch mediaType {
        case "application/x-protobuf", "application/protobuf": self = .protobuf
        case "application/json": self = .json
        default: return nil
        }
    }

    var contentType: String {
        switch self {
        case .protobuf: "application/x-protobuf"
        case .json: "application/json"
        }
    }
}
