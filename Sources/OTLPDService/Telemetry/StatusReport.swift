import OTLPDCore
import OTLPDSystem
import Synchronization

/// What the status page shows, read from what the daemon already keeps:
/// the senders, the forwarding exporters, the running pipelines, the
/// latest refusals and otlpd's health. Served whole at `/services` and
/// pushed by `/events`.
package final class StatusReport: Sendable {
    let telemetry: SelfTelemetry
    let services: ServiceRegistry
    let memory: MemoryGuard
    /// For the uptime.
    let startedAt = Timestamp.nowNanoseconds()
    /// The config it runs and how the last reload went.
    let lifecycle = Mutex(Lifecycle())
    /// The pipelines running now.
    private let graph = Mutex<PipelineGraph?>(nil)

    struct Lifecycle: Sendable {
        var config = ""
        var lastReload: (time: Int64, result: String)?
    }

    /// `service.telemetry.metrics.max_feed_clients`.
    let maxFeedClients: Int

    package init(telemetry: SelfTelemetry, services: ServiceRegistry, memory: MemoryGuard, maxFeedClients: Int) {
        self.maxFeedClients = maxFeedClients
        self.telemetry = telemetry
        self.services = services
        self.memory = memory
    }

    /// The pipelines now running (at the start and after each reload).
    package func running(_ graph: PipelineGraph) {
        self.graph.withLock { $0 = graph }
    }

    /// Everything the status page shows, as one JSON object: the senders, the
    /// forwarding exporters, the pipelines, otlpd's health, the refusals.
    /// `feedClients`: the live feed's subscribers now.
    package func json(feedClients: Int) -> String {
        var json = self.services.json()
        json.removeLast()  // the closing brace: the rest goes in the same object
        json += ",\"exporters\":\(ExporterStatusView.json(self.telemetry.exporterStatus.snapshot()))"
        if let graph = self.graph.withLock({ $0 }) { json += ",\"pipelines\":\(PipelinesView.json(graph, telemetry: self.telemetry))" }
        let uptime = Double((Timestamp.nowNanoseconds() - self.startedAt) / 1_000_000) / 1000
        json += ",\"otlpd\":{\"version\":\(ServiceRegistry.quote(OTLPDVersion.number)),\"uptimeSeconds\":\(uptime)"
        json += ",\"rssBytes\":\(ProcessMemory.residentBytes() ?? 0),\"heldBytes\":\(self.memory.heldBytes)"
        json += ",\"memoryLimitBytes\":\(self.memory.limits.map { String($0.hard) } ?? "null")"
        let lifecycle = self.lifecycle.withLock { $0 }
        json += ",\"config\":\(ServiceRegistry.quote(lifecycle.config))"
        json += ",\"lastReload\":\(lifecycle.lastReload.map { "{\"time\":\(ServiceRegistry.quote(Timestamp.iso8601(nanoseconds: $0.time))),\"result\":\(ServiceRegistry.quote($0.result))}" } ?? "null")"
        json += ",\"feedClients\":\(feedClients),\"maxFeedClients\":\(self.maxFeedClients)}"
        json += ",\"refusals\":\(Self.refusalsJSON(self.telemetry.refusals.latest()))}"
        return json
    }

    /// The latest refusals, newest first, in the words of their log lines.
    static func refusalsJSON(_ refusals: [RefusalBoard.Refusal]) -> String {
        let items = refusals.map { refusal in
            "{\"time\":\(ServiceRegistry.quote(Timestamp.iso8601(nanoseconds: refusal.time))),\"client\":\(ServiceRegistry.quote(refusal.client))"
                + ",\"protocol\":\(refusal.protocolName.map(ServiceRegistry.quote) ?? "null"),\"path\":\(refusal.path.map(ServiceRegistry.quote) ?? "null")"
                + ",\"status\":\(refusal.status.map(ServiceRegistry.quote) ?? "null"),\"reason\":\(ServiceRegistry.quote(refusal.reason))"
                + ",\"service\":\(refusal.service.map(ServiceRegistry.quote) ?? "null")}"
        }
        return "[" + items.joined(separator: ",") + "]"
    }
}
