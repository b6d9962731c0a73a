import Logging
import NIOCore
import OTLPDCore
import OTLPDHTTP
import OTLPDTransport
import Synchronization

/// `extensions.health_check`.
public struct HealthCheckConfiguration: Sendable {
    public var endpoint = Endpoint(host: "localhost", port: 13133)
    public var path = "/"

    static func decode(_ reader: ConfigReader) -> HealthCheckConfiguration {
        defer { reader.finish() }
        var configuration = HealthCheckConfiguration()
        configuration.endpoint = reader.endpoint("endpoint", default: configuration.endpoint)
        configuration.path = reader.string("path", default: "/")
        if !configuration.path.hasPrefix("/") { reader.error("path", "'\(configuration.path)' must start with '/'") }
        reader.refuse("tls", because: "TLS for the health check is not supported by this build")
        reader.accept("check_collector_pipeline")
        return configuration
    }
}

/// Answers 200 while every pipeline runs, 503 while otlpd starts or stops,
/// with the Collector's JSON body, so load balancers and Kubernetes probes
/// configured for the Collector work unchanged.
public final class HealthCheckExtension: Extension {
    let configuration: HealthCheckConfiguration
    let settings: ComponentSettings
    private let handler: HealthCheckHandler
    private let listener = Mutex<Listener?>(nil)

    init(configuration: HealthCheckConfiguration, settings: ComponentSettings) {
        self.configuration = configuration
        self.settings = settings
        self.handler = HealthCheckHandler(path: configuration.path, logger: settings.logger)
    }

    public func start() async throws {
        let listener = try await Listener.start(
            ListenerConfiguration(host: self.configuration.endpoint.host, port: self.configuration.endpoint.port, role: .http),
            handler: self.handler, group: self.settings.eventLoopGroup)
        self.listener.withLock { $0 = listener }
        self.settings.logger.info(
            "health check listening",
            metadata: ["endpoint": "\(Endpoint(host: self.configuration.endpoint.host, port: listener.localAddress.port ?? 0))", "path": "\(self.configuration.path)"])
    }

    public func pipelinesReady() async {
        self.handler.state.withLock { $0 = .ready(since: Timestamp.nowNanoseconds()) }
    }

    public func pipelinesStopping() async {
        self.handler.state.withLock { $0 = .stopping }
    }

    public func shutdown() async {
        guard let listener = self.listener.withLock({ $0 }) else { return }
        await listener.quiesce()
        _ = await listener.waitForConnections(timeout: .seconds(1))
        listener.closeAll()
    }
}

final class HealthCheckHandler: RequestHandler {
    enum State {
        case starting
        case ready(since: Int64)
        case stopping
    }

    let path: String
    let logger: Logger
    let state = Mutex(State.starting)

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    func bodyLimit(for head: ServerRequestHead) -> Int { 4096 }

    func bodyTooLarge(_ head: ServerRequestHead, limit: Int) -> ServerResponse {
        ServerResponse(status: 413)
    }

    func connectionFailed(client: ClientInfo, reason: String) {
        self.logger.debug("health check connection failed", metadata: ["client": "\(client.endpoint)", "reason": "\(reason)"])
    }

    func handle(_ request: consuming ServerRequest) async -> ServerResponse {
        let path = request.head.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        guard path == self.path else {
            return ServerResponse(status: 404, headers: [HTTPHeaderField("content-type", "text/plain")], body: ByteBuffer(string: "the health check is at \(self.path)\n"))
        }
        let body: String
        let status: Int
        switch self.state.withLock({ $0 }) {
        case .ready(let since):
            status = 200
            let uptime = Duration.nanoseconds(Timestamp.nowNanoseconds() - since)
            body = "{\"status\":\"Server available\",\"upSince\":\"\(Timestamp.iso8601(nanoseconds: since))\",\"uptime\":\"\(GoDuration.format(uptime))\"}"
        case .starting, .stopping:
            status = 503
            body = "{\"status\":\"Server not available\",\"upSince\":\"0001-01-01T00:00:00Z\",\"uptime\":\"\"}"
        }
        return ServerResponse(status: status, headers: [HTTPHeaderField("content-type", "application/json")], body: ByteBuffer(string: body))
    }
}

/// Go's notation for durations, which the Collector's JSON bodies use.
package enum GoDuration {
    /// Go's `Duration.String()`, as the Collector prints uptime:
    /// `1h2m3.5s`, `1m0s`, `123.456789ms`, `0s`.
    package static func format(_ duration: Duration) -> String {
        let nanoseconds = max(0, duration.nanosecondsValue)
        switch nanoseconds {
        case 0: return "0s"
        case ..<1_000: return "\(nanoseconds)ns"
        case ..<1_000_000: return Self.fraction(nanoseconds, digits: 3) + "µs"
        case ..<1_000_000_000: return Self.fraction(nanoseconds, digits: 6) + "ms"
        default:
            let seconds = nanoseconds / 1_000_000_000
            let text = Self.fraction(seconds % 60 * 1_000_000_000 + nanoseconds % 1_000_000_000, digits: 9) + "s"
            let minutes = seconds / 60
            guard minutes > 0 else { return text }
            guard minutes >= 60 else { return "\(minutes)m" + text }
            return "\(minutes / 60)h\(minutes % 60)m" + text
        }
    }

    /// `value / 10^digits` with its fraction, trailing zeros dropped.
    private static func fraction(_ value: Int64, digits: Int) -> String {
        var scale: Int64 = 1
        for _ in 0..<digits { scale *= 10 }
        var fraction = String(value % scale)
        fraction = String(repeating: "0", count: digits - fraction.count) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        return fraction.isEmpty ? "\(value / scale)" : "\(value / scale).\(fraction)"
    }
}

public struct HealthCheckExtensionFactory: ExtensionFactory {
    public let type = "health_check"
    public let signals: Set<Signal> = []

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        HealthCheckConfiguration.decode(reader)
    }

    public func makeExtension(_ configuration: ComponentConfiguration, settings: ComponentSettings) throws -> any Extension {
        HealthCheckExtension(configuration: configuration as! HealthCheckConfiguration, settings: settings)
    }
}
