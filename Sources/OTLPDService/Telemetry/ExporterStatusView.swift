import OTLPDCore

/// The forwarding exporters' status as `/services` serves it (JSON) and
/// `otlpd status` prints it (a line per exporter, under the services).
enum ExporterStatusView {
    static func json(_ statuses: [ExporterStatus]) -> String {
        let items = statuses.map { status in
            var out = "{\"exporter\":\(ServiceRegistry.quote(status.exporter)),\"target\":\(ServiceRegistry.quote(status.target))"
            out += ",\"state\":\(ServiceRegistry.quote(status.state.rawValue))"
            out += ",\"queue\":{\"persistent\":\(status.persistent),\"requests\":\(status.queuedRequests),\"bytes\":\(status.queuedBytes)"
            out += ",\"oldestSeconds\":\(status.oldestAge.map { Self.seconds($0) } ?? "null")"
            out += ",\"full\":\(status.queueFull.map(ServiceRegistry.quote) ?? "null")}"
            out += ",\"sent\":\(status.sent),\"failed\":\(status.failed),\"deadLettered\":\(status.deadLettered)"
            out += ",\"lastError\":\(status.lastError.map(ServiceRegistry.quote) ?? "null")"
            out += ",\"lastErrorSecondsAgo\":\(status.lastErrorAge.map { Self.seconds($0) } ?? "null")}"
            return out
        }
        return "[" + items.joined(separator: ",") + "]"
    }

    static func table(_ statuses: [ExporterStatus]) -> String {
        guard !statuses.isEmpty else { return "" }
        var rows = [["EXPORTER", "TARGET", "STATE", "QUEUE", "OLDEST", "SENT", "FAILED", "DEAD-LETTERED", "LAST ERROR"]]
        for status in statuses {
            let queue = "\(status.queuedRequests) req, \(ConfigUnits.formatBytes(status.queuedBytes))\(status.persistent ? " on disk" : "")"
            // A full queue is what a client meets first: it comes before the upstream's last error.
            let error = status.queueFull.map { "queue full: \($0)" } ?? status.lastError.map { "\($0) (\(ServiceRegistry.ago((status.lastErrorAge ?? .zero).nanosecondsValue)))" } ?? "-"
            rows.append([
                status.exporter, status.target, status.state.rawValue, queue, status.oldestAge.map { Self.seconds($0) + "s" } ?? "-",
                String(status.sent), String(status.failed), String(status.deadLettered), error,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var out = "\n"
        for row in rows {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        return out
    }

    static func seconds(_ duration: Duration) -> String {
        let tenths = duration.nanosecondsValue / 100_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
