import Logging
import NIOCore
import OTLPDCore
import OTLPDHTTP
import OTLPDSystem
import OTLPDTransport
import Prometheus
import Synchronization

/// Serves otlpd's own view of itself at `service.telemetry.metrics`:
/// `/metrics` (Prometheus text, otelcol names) and `/services` (the
/// per-service view as JSON; `?format=text` is what `otlpd status` prints).
public final class TelemetryServer: Sendable {
    let endpoint: Endpoint
    let handler: TelemetryRequestHandler
    let logger: Logger
    private let listener = Mutex<Listener?>(nil)

    public init(endpoint: Endpoint, telemetry: SelfTelemetry, services: ServiceRegistry, memory: MemoryGuard, logger: Logger) {
        self.endpoint = endpoint
        self.handler = TelemetryRequestHandler(telemetry: telemetry, services: services, memory: memory, logger: logger)
        self.logger = logger
    }

    public func start(group: any EventLoopGroup) async throws {
        let listener = try await Listener.start(
            ListenerConfiguration(host: self.endpoint.host, port: self.endpoint.port, role: .http), handler: self.handler, group: group)
        self.listener.withLock { $0 = listener }
        self.logger.info("serving self-telemetry", metadata: ["endpoint": "\(Endpoint(host: self.endpoint.host, port: listener.localAddress.port ?? 0))", "paths": "/,/metrics,/services"])
    }

    /// The config files (or the embedded default) shown on the status page.
    public func setConfig(_ description: String) {
        self.handler.lifecycle.withLock { $0.config = description }
    }

    /// A reload finished: `result` says how ("reloaded", or why the running config stayed).
    public func reloaded(_ result: String) {
        self.handler.lifecycle.withLock { $0.lastReload = (Timestamp.nowNanoseconds(), result) }
    }

    public func stop() async {
        guard let listener = self.listener.withLock({ $0 }) else { return }
        await listener.quiesce()
        _ = await listener.waitForConnections(timeout: .seconds(1))
        listener.closeAll()
    }
}

final class TelemetryRequestHandler: RequestHandler {
    let telemetry: SelfTelemetry
    let services: ServiceRegistry
    let logger: Logger
    let memory: MemoryGuard
    /// Read at each scrape: the process's size, and the telemetry bytes it holds (what the memory_limiter bounds).
    let residentBytes: Gauge
    let heldBytes: Gauge
    /// For the status page's uptime.
    let startedAt = Timestamp.nowNanoseconds()
    /// The config it runs and how the last reload went, for the status page's health.
    let lifecycle = Mutex(Lifecycle())

    struct Lifecycle: Sendable {
        var config = ""
        var lastReload: (time: Int64, result: String)?
    }

    init(telemetry: SelfTelemetry, services: ServiceRegistry, memory: MemoryGuard, logger: Logger) {
        self.telemetry = telemetry
        self.services = services
        self.memory = memory
        self.logger = logger
        self.residentBytes = telemetry.gauge("otelcol_process_memory_rss_bytes")
        self.heldBytes = telemetry.gauge("otlpd_memory_held_bytes")
    }

    func bodyLimit(for head: ServerRequestHead) -> Int { 4096 }

    func bodyTooLarge(_ head: ServerRequestHead, limit: Int) -> ServerResponse {
        Self.text(413, "request body too large\n")
    }

    func connectionFailed(client: ClientInfo, reason: String) {
        self.logger.debug("self-telemetry connection failed", metadata: ["client": "\(client.endpoint)", "reason": "\(reason)"])
    }

    func handle(_ request: consuming ServerRequest) async -> ServerResponse {
        let parts = request.head.path.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? "/"
        let query = parts.count > 1 ? String(parts[1]) : ""
        guard request.head.method == "GET" || request.head.method == "HEAD" else {
            var response = Self.text(405, "use GET\n")
            response.headers.append(HTTPHeaderField("allow", "GET"))
            return response
        }
        switch path {
        case "/metrics":
            if let resident = ProcessMemory.residentBytes() { self.residentBytes.set(Double(resident)) }
            self.heldBytes.set(Double(self.memory.heldBytes))
            return ServerResponse(
                status: 200, headers: [HTTPHeaderField("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                body: ByteBuffer(string: self.telemetry.prometheusText()))
        case "/services":
            let exporters = self.telemetry.exporterStatus.snapshot()
            if query.split(separator: "&").contains("format=text") {
                return Self.text(200, self.services.table() + ExporterStatusView.table(exporters))
            }
            var json = self.services.json()
            json.removeLast()  // the closing brace: the exporters and the process go in the same object
            json += ",\"exporters\":\(ExporterStatusView.json(exporters))"
            let uptime = Double((Timestamp.nowNanoseconds() - self.startedAt) / 1_000_000) / 1000
            json += ",\"otlpd\":{\"version\":\(ServiceRegistry.quote(OTLPDVersion.number)),\"uptimeSeconds\":\(uptime)"
            json += ",\"rssBytes\":\(ProcessMemory.residentBytes() ?? 0),\"heldBytes\":\(self.memory.heldBytes)"
            json += ",\"memoryLimitBytes\":\(self.memory.limits.map { String($0.hard) } ?? "null")"
            let lifecycle = self.lifecycle.withLock { $0 }
            json += ",\"config\":\(ServiceRegistry.quote(lifecycle.config))"
            json += ",\"lastReload\":\(lifecycle.lastReload.map { "{\"time\":\(ServiceRegistry.quote(Timestamp.iso8601(nanoseconds: $0.time))),\"result\":\(ServiceRegistry.quote($0.result))}" } ?? "null")}"
            json += ",\"refusals\":\(Self.refusalsJSON(self.telemetry.refusals.latest()))}"
            return ServerResponse(
                status: 200, headers: [HTTPHeaderField("content-type", "application/json"), HTTPHeaderField("cache-control", "no-store")],
                body: ByteBuffer(string: json))
        case "/":
            return Self.page(StatusPage.html, type: "text/html; charset=utf-8")
        case "/status.js":
            return Self.page(StatusPage.script, type: "text/javascript; charset=utf-8")
        case "/status.css":
            return Self.page(StatusPage.css, type: "text/css; charset=utf-8")
        default:
            return Self.text(404, "unknown path \(path); paths here: / (the status page), /metrics, /services\n")
        }
    }

    /// The latest refusals, newest first, in the words of their log lines.
    static func refusalsJSON(_ refusals: [RefusalBoard.Refusal]) -> String {
        let items = refusals.map { refusal in
            "{\"time\":\(ServiceRegistry.quote(Timestamp.iso8601(nanoseconds: refusal.time))),\"client\":\(ServiceRegistry.quote(refusal.client))"
                + ",\"protocol\":\(refusal.protocolName.map(ServiceRegistry.quote) ?? "null"),\"path\":\(refusal.path.map(ServiceRegistry.quote) ?? "null")"
                + ",\"status\":\(refusal.status.map(ServiceRegistry.quote) ?? "null"),\"reason\":\(ServiceRegistry.quote(refusal.reason))}"
        }
        return "[" + items.joined(separator: ",") + "]"
    }

    /// A part of the status page, with the policy that lets it load only what this address serves.
    static func page(_ body: String, type: String) -> ServerResponse {
        ServerResponse(
            status: 200,
            headers: [
                HTTPHeaderField("content-type", type), HTTPHeaderField("content-security-policy", StatusPage.contentSecurityPolicy),
                HTTPHeaderField("x-content-type-options", "nosniff"), HTTPHeaderField("referrer-policy", "no-referrer"),
            ],
            body: ByteBuffer(string: body))
    }

    static func text(_ status: Int, _ body: String) -> ServerResponse {
        ServerResponse(status: status, headers: [HTTPHeaderField("content-type", "text/plain; charset=utf-8")], body: ByteBuffer(string: body))
    }
}
