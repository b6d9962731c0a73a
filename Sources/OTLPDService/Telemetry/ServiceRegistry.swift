import Logging
import OTLPDCore
import Synchronization

/// The per-service view: for every `service.name` that sends data, what
/// arrived and how. Fed by the receivers (`IngestObserver`), served at
/// `/services` and printed by `otlpd status`.
///
/// Bounded: at most `maxServices` services are tracked (later ones are
/// counted together as `other`), and at most `maxInstances` distinct
/// instance ids per service.
public final class ServiceRegistry: IngestObserver {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var spans = 0
        public var metricPoints = 0
        public var logRecords = 0
        /// Nanoseconds since the Unix epoch.
        public var lastSeen: Int64 = 0
        public var sdkLanguage: String?
        public var sdkVersion: String?
        public var protocols: Set<IngestProtocol> = []
        /// The ports its data came in on (a few at most).
        public var ports: Set<Int> = []
        /// Some of its data came in on the port meant for the other protocol.
        public var wrongPort = false
        public var instances: Set<String> = []
        public var duplicateSpans = 0
        /// Requests answered with an error.
        public var errors = 0
        var lastDuplicateWarning: Int64 = 0
        /// The last 10 minutes, for the status page's rates and sparkline.
        var history = ActivityHistory()

        init(name: String) {
            self.name = name
        }
    }

    /// The name of resources without `service.name` (what SDKs default to).
    public static let unknownService = "unknown_service"
    public static let otherServices = "other"

    private struct State {
        var entries: [String: Entry] = [:]
        var other = Entry(name: ServiceRegistry.otherServices)
    }

    private let state = Mutex(State())
    private let duplicates: DuplicateSpanDetector
    private let logger: Logger
    let maxServices: Int
    let maxInstances: Int

    public init(logger: Logger, maxServices: Int = 1000, maxInstances: Int = 1000, duplicates: DuplicateSpanDetector = DuplicateSpanDetector()) {
        self.logger = logger
        self.maxServices = maxServices
        self.maxInstances = maxInstances
        self.duplicates = duplicates
    }

    // MARK: IngestObserver

    public func withDuplicateCheck<Result>(_ body: ((UInt64) -> Bool) -> Result) -> Result {
        self.duplicates.withCheck(body)
    }

    public func accepted(signal: Signal, via: IngestProtocol, port: Int, wrongPort: Bool, resources: [ResourceObservation]) {
        let now = Timestamp.nowNanoseconds()
        var warnings: [(String, Int)] = []
        self.state.withLock { state in
            for resource in resources {
                self.update(&state, resource.serviceName) { entry in
                    switch signal {
                    case .traces: entry.spans += resource.itemCount
                    case .metrics: entry.metricPoints += resource.itemCount
                    case .logs: entry.logRecords += resource.itemCount
                    }
                    entry.history.add(signal, resource.itemCount, at: now)
                    entry.lastSeen = now
                    if let language = resource.sdkLanguage { entry.sdkLanguage = language }
                    if let version = resource.sdkVersion { entry.sdkVersion = version }
                    entry.protocols.insert(via)
                    if entry.ports.count < 8 { entry.ports.insert(port) }
                    entry.wrongPort = entry.wrongPort || wrongPort
                    if let instance = resource.serviceInstanceID, entry.instances.count < self.maxInstances {
                        entry.instances.insert(instance)
                    }
                    if resource.duplicateSpans > 0 {
                        entry.duplicateSpans += resource.duplicateSpans
                        // One warning per service per minute.
                        if now - entry.lastDuplicateWarning >= 60_000_000_000 {
                            entry.lastDuplicateWarning = now
                            warnings.append((entry.name, resource.duplicateSpans))
                        }
                    }
                }
            }
        }
        for (service, count) in warnings {
            self.logger.warning(
                "service sent spans again that it had sent before (same trace and span ids): is its OpenTelemetry SDK initialised twice, or a span processor or exporter registered twice?",
                metadata: ["service": "\(service)", "duplicates": "\(count)"])
        }
    }

    public func refused(signal: Signal, via: IngestProtocol, port: Int, wrongPort: Bool, resources: [ResourceObservation]) {
        let now = Timestamp.nowNanoseconds()
        self.state.withLock { state in
            var seen = Set<String>()
            for resource in resources where seen.insert(resource.serviceName ?? Self.unknownService).inserted {
                self.update(&state, resource.serviceName) { entry in
                    entry.errors += 1
                    entry.lastSeen = now
                    entry.protocols.insert(via)
                    if entry.ports.count < 8 { entry.ports.insert(port) }
                    entry.wrongPort = entry.wrongPort || wrongPort
                }
            }
        }
    }

    private func update(_ state: inout State, _ name: String?, _ change: (inout Entry) -> Void) {
        let name = name ?? Self.unknownService
        if state.entries[name] != nil {
            change(&state.entries[name]!)
        } else if state.entries.count < self.maxServices {
            var entry = Entry(name: name)
            change(&entry)
            state.entries[name] = entry
        } else {
            change(&state.other)
        }
    }

    // MARK: Reading

    /// Every service, by name; `other` last when services beyond the cap sent data.
    public func snapshot() -> [Entry] {
        // Copied under the lock the receivers take per request (the entries' storage is shared, not copied); sorted after.
        let (entries, other) = self.state.withLock { state in (Array(state.entries.values), state.other) }
        return entries.sorted { $0.name < $1.name } + (other.lastSeen > 0 ? [other] : [])
    }

    /// `/services`: the snapshot as JSON.
    public func json(now: Int64 = Timestamp.nowNanoseconds()) -> String {
        let entries = self.snapshot()
        var out = "{\"services\":["
        for (index, entry) in entries.enumerated() {
            if index > 0 { out += "," }
            out += "{\"name\":\(Self.quote(entry.name))"
            out += ",\"spans\":\(entry.spans),\"metricPoints\":\(entry.metricPoints),\"logRecords\":\(entry.logRecords)"
            out += ",\"lastSeen\":\(Self.quote(entry.lastSeen > 0 ? Timestamp.iso8601(nanoseconds: entry.lastSeen) : ""))"
            out += ",\"sdk\":{\"language\":\(entry.sdkLanguage.map(Self.quote) ?? "null"),\"version\":\(entry.sdkVersion.map(Self.quote) ?? "null")}"
            out += ",\"protocols\":[\(entry.protocols.map(\.rawValue).sorted().map(Self.quote).joined(separator: ","))]"
            out += ",\"ports\":[\(entry.ports.sorted().map(String.init).joined(separator: ","))]"
            out += ",\"wrongPort\":\(entry.wrongPort)"
            out += ",\"instances\":\(entry.instances.count)"
            out += ",\"duplicateSpans\":\(entry.duplicateSpans),\"errors\":\(entry.errors)"
            let rate = entry.history.perSecond(at: now)
            out += ",\"perSecond\":{\"spans\":\(Self.decimal(rate.x)),\"metricPoints\":\(Self.decimal(rate.y)),\"logRecords\":\(Self.decimal(rate.z))}"
            // Ten minutes in 10-second slots, oldest first: items of every signal together.
            out += ",\"history\":[\(entry.history.series(at: now).map { String($0.x + $0.y + $0.z) }.joined(separator: ","))]}"
        }
        out += "],\"historySlotSeconds\":10,\"tracked\":\(entries.count),\"maxServices\":\(self.maxServices)}"
        return out
    }

    /// Two decimals, as JSON: `12.50`, `0.03` (a service sending a span now and then still shows).
    static func decimal(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    static func quote(_ text: String) -> String {
        OTLPDLogHandler.jsonString(text)
    }
}

extension ServiceRegistry {
    /// `otlpd status`: one service per line, columns aligned, so
    /// `otlpd status | grep checkout` works.
    public func table(now: Int64 = Timestamp.nowNanoseconds()) -> String {
        var rows = [["SERVICE", "SPANS", "POINTS", "LOGS", "LAST SEEN", "SDK", "PROTOCOLS", "INSTANCES", "DUPLICATES", "ERRORS"]]
        for entry in self.snapshot() {
            let sdk = [entry.sdkLanguage, entry.sdkVersion].compactMap { $0 }.joined(separator: " ")
            var protocols = entry.protocols.map(\.rawValue).sorted().joined(separator: ",")
            if entry.wrongPort { protocols += " (wrong port)" }
            rows.append([
                entry.name, String(entry.spans), String(entry.metricPoints), String(entry.logRecords),
                Self.ago(now - entry.lastSeen), sdk.isEmpty ? "-" : sdk, protocols.isEmpty ? "-" : protocols,
                entry.instances.count >= self.maxInstances ? "\(entry.instances.count)+" : String(entry.instances.count),
                String(entry.duplicateSpans), String(entry.errors),
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var out = ""
        for row in rows {
            // Spaces inside values (the SDK column) are kept; two spaces separate columns.
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        if rows.count == 1 { out += "(no data received yet)\n" }
        return out
    }

    static func ago(_ nanoseconds: Int64) -> String {
        let seconds = max(0, nanoseconds / 1_000_000_000)
        if seconds < 60 { return "\(seconds)s ago" }
        if seconds < 3600 { return "\(seconds / 60)m ago" }
        if seconds < 86_400 { return "\(seconds / 3600)h ago" }
        return "\(seconds / 86_400)d ago"
    }
}
