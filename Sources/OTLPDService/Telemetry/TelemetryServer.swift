import Logging
import NIOCore
import OTLPDCore
import OTLPDHTTP
import OTLPDSystem
import OTLPDTransport
import Prometheus
import Synchronization

/// Serves otlpd's own view of itself at `service.telemetry.metrics`:
/// `/metrics` (Prometheus text, otelcol names), `/services` (the
/// per-service view as JSON; `?format=text` is what `otlpd status` prints),
/// the status page at `/`, and its live feed at `/events`.
public final class TelemetryServer: Sendable {
    let endpoint: Endpoint
    let handler: TelemetryRequestHandler
    let logger: Logger
    private let listener = Mutex<Listener?>(nil)

    public init(
        endpoint: Endpoint, telemetry: SelfTelemetry, services: ServiceRegistry, memory: MemoryGuard, logger: Logger, maxFeedClients: Int = 16
    ) {
        self.endpoint = endpoint
        self.handler = TelemetryRequestHandler(telemetry: telemetry, services: services, memory: memory, logger: logger, maxFeedClients: maxFeedClients)
        self.logger = logger
    }

    public func start(group: any EventLoopGroup) async throws {
        let listener = try await Listener.start(
            ListenerConfiguration(host: self.endpoint.host, port: self.endpoint.port, role: .http), handler: self.handler, group: group)
        self.listener.withLock { $0 = listener }
        self.logger.info("serving self-telemetry", metadata: ["endpoint": "\(Endpoint(host: self.endpoint.host, port: listener.localAddress.port ?? 0))", "paths": "/,/events,/metrics,/services"])
    }

    /// The config files (or the embedded default) shown on the status page.
    public func setConfig(_ description: String) {
        self.handler.report.lifecycle.withLock { $0.config = description }
    }

    /// The pipelines now running (at the start and after each reload), for the status page.
    public func running(_ graph: PipelineGraph) {
        self.handler.report.running(graph)
    }

    /// A reload finished: `result` says how ("reloaded", or why the running config stayed).
    public func reloaded(_ result: String) {
        self.handler.report.lifecycle.withLock { $0.lastReload = (Timestamp.nowNanoseconds(), result) }
    }

    public func stop() async {
        self.handler.feed.close()
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
    /// What `/services` and `/events` send.
    let report: StatusReport
    /// `/events`: the same JSON as `/services`, pushed each second.
    let feed: StatusFeed

    init(telemetry: SelfTelemetry, services: ServiceRegistry, memory: MemoryGuard, logger: Logger, maxFeedClients: Int) {
        self.telemetry = telemetry
        self.services = services
        self.memory = memory
        self.logger = logger
        self.residentBytes = telemetry.gauge("otelcol_process_memory_rss_bytes")
        self.heldBytes = telemetry.gauge("otlpd_memory_held_bytes")
        let report = StatusReport(telemetry: telemetry, services: services, memory: memory, maxFeedClients: maxFeedClients)
        self.report = report
        self.feed = StatusFeed(maxClients: maxFeedClients) { clients in report.json(feedClients: clients) }
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
            if query.split(separator: "&").contains("format=text") {
                return Self.text(200, self.services.table() + ExporterStatusView.table(self.telemetry.exporterStatus.snapshot()))
            }
            return ServerResponse(
                status: 200, headers: [HTTPHeaderField("content-type", "application/json"), HTTPHeaderField("cache-control", "no-store")],
                body: ByteBuffer(string: self.report.json(feedClients: self.feed.clientCount)))
        case "/events":
            guard let events = self.feed.subscribe() else {
                let reason =
                    self.feed.maxClients == 0
                    ? "the live feed is turned off (service.telemetry.metrics.max_feed_clients: 0); poll /services instead"
                    : "the live feed has \(self.feed.maxClients) clients already (service.telemetry.metrics.max_feed_clients); poll /services instead"
                self.logger.warning("status feed refused", metadata: ["client": "\(request.head.client.endpoint)", "reason": "\(reason)"])
                var response = Self.text(503, reason + "\n")
                response.headers.append(HTTPHeaderField("retry-after", "10"))
                return response
            }
            return ServerResponse(
                status: 200,
                headers: [
                    HTTPHeaderField("content-type", "text/event-stream"), HTTPHeaderField("cache-control", "no-store"),
                    // Tells proxies such as nginx to pass each event on at once.
                    HTTPHeaderField("x-accel-buffering", "no"),
                ],
                live: events)
        case "/":
            return Self.page(StatusPage.html, type: "text/html; charset=utf-8")
        case "/status.js":
            return Self.page(StatusPage.script, type: "text/javascript; charset=utf-8")
        case "/status.css":
            return Self.page(StatusPage.css, type: "text/css; charset=utf-8")
        default:
            return Self.text(404, "unknown path \(path); paths here: / (the status page), /events, /metrics, /services\n")
        }
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
