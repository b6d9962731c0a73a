import OTLPDCore

/// The running pipelines as the status page shows them: each receiver's
/// listeners (protocol, TLS, auth, open connections), each pipeline's
/// components in order, and each exporter's target with the items it sent
/// and failed to send (the page turns successive totals into rates).
/// Read from what the graph and the counters already hold.
enum PipelinesView {
    static func json(_ graph: PipelineGraph, telemetry: SelfTelemetry) -> String {
        let quote = ServiceRegistry.quote
        let receivers = graph.receivers.map { id, receiver in
            let listeners = receiver.listeners.map { listener in
                "{\"protocol\":\(quote(listener.protocolName)),\"endpoint\":\(quote(listener.endpoint)),\"tls\":\(listener.tls)"
                    + ",\"auth\":\(listener.auth.map(quote) ?? "null"),\"connections\":\(listener.openConnections)}"
            }
            return "{\"id\":\(quote(id.description)),\"listeners\":[\(listeners.joined(separator: ","))]}"
        }
        let names = { (ids: [ComponentID]) in "[" + ids.map { quote($0.description) }.joined(separator: ",") + "]" }
        let pipelines = graph.configuration.pipelines.map { pipeline in
            "{\"id\":\(quote(pipeline.id.description)),\"receivers\":\(names(pipeline.receivers)),\"processors\":\(names(pipeline.processors))"
                + ",\"exporters\":\(names(pipeline.exporters))}"
        }
        let exporters = graph.exporters.map { id, _ in
            let component = graph.configuration.exporters[id]
            let target = component.flatMap { ($0.factory as? any ExporterFactory)?.target($0.settings) } ?? ""
            let items = telemetry.exporterItems(id)
            return "{\"id\":\(quote(id.description)),\"type\":\(quote(id.type)),\"target\":\(quote(target))"
                + ",\"sent\":\(items?.sent ?? 0),\"failed\":\(items?.failed ?? 0)}"
        }
        return "{\"receivers\":[\(receivers.joined(separator: ","))],\"pipelines\":[\(pipelines.joined(separator: ","))]"
            + ",\"exporters\":[\(exporters.joined(separator: ","))]}"
    }
}
