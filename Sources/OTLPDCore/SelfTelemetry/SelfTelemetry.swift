import NIOConcurrencyHelpers
import Prometheus
import Synchronization

/// otlpd's own metrics, served as Prometheus text at
/// `service.telemetry.metrics`: named and labelled as the OpenTelemetry
/// Collector names them (counters with the `_total` suffix its Prometheus
/// endpoint adds), so dashboards built for the Collector work.
public final class SelfTelemetry: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// On every series, as the Collector labels its own metrics with its resource.
    let resourceLabels: [(String, String)]
    /// otlpd's version, which clients it makes announce (`User-Agent`).
    public let serviceVersion: String
    /// The forwarding exporters' own account of themselves, for `/services` and `otlpd status`.
    public let exporterStatus = ExporterStatusBoard()
    /// The latest refusals, for the status page.
    public let refusals = RefusalBoard()
    /// Each exporter's items sent and failed, all signals together, for the status page's rates.
    private let exporterTotals = NIOLockedValueBox<[ComponentID: ItemTotals]>([:])
    private let scrapeHooks = NIOLockedValueBox<[(owner: ObjectIdentifier, hook: @Sendable () -> Void)]>([])

    public init(serviceVersion: String = "", serviceInstanceID: String = SelfTelemetry.randomInstanceID()) {
        self.serviceVersion = serviceVersion
        self.resourceLabels = [("service_instance_id", serviceInstanceID), ("service_name", "otlpd"), ("service_version", serviceVersion)]
    }

    /// A random (version 4) UUID, as the Collector makes its `service.instance.id`.
    public static func randomInstanceID() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = bytes.map { byte in (byte < 0x10 ? "0" : "") + String(byte, radix: 16) }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }

    /// A component's labels with the resource labels, in name order as the Collector writes them.
    func labels(_ own: [(String, String)]) -> [(String, String)] {
        (own + self.resourceLabels).sorted { $0.0 < $1.0 }
    }

    /// A gauge of its own.
    public func gauge(_ name: String, labels: [(String, String)] = []) -> Gauge {
        self.registry.makeGauge(name: name, labels: self.labels(labels))
    }

    /// The counters of one receiver and transport (`grpc` or `http`).
    public func receiver(_ id: ComponentID, transport: String) -> ReceiverCounters {
        ReceiverCounters(registry: self.registry, labels: self.labels([("receiver", id.description), ("transport", transport)]))
    }

    /// The counters of one exporter.
    public func exporter(_ id: ComponentID) -> ExporterCounters {
        let totals = self.exporterTotals.withLockedValue { totals in
            if let existing = totals[id] { return existing }
            let made = ItemTotals()
            totals[id] = made
            return made
        }
        return ExporterCounters(registry: self.registry, labels: self.labels([("exporter", id.description)]), totals: totals)
    }

    /// Items an exporter sent and failed to send since the start (nil for one that never counted).
    public func exporterItems(_ id: ComponentID) -> (sent: Int, failed: Int)? {
        guard let totals = self.exporterTotals.withLockedValue({ $0[id] }) else { return nil }
        return (totals.sent.count, totals.failed.count)
    }

    /// Items in and out of one processor, per signal (`otel_signal`).
    public func processor(_ id: ComponentID, signal: Signal) -> ProcessorCounters {
        let labels = self.labels([("processor", id.description), ("otel_signal", signal.rawValue)])
        return ProcessorCounters(
            incoming: TelemetryCounter(counter: self.registry.makeCounter(name: "otelcol_processor_incoming_items_total", labels: labels)),
            outgoing: TelemetryCounter(counter: self.registry.makeCounter(name: "otelcol_processor_outgoing_items_total", labels: labels)))
    }

    /// A counter of its own (`name` ends in `_total`).
    public func counter(_ name: String, labels: [(String, String)]) -> TelemetryCounter {
        TelemetryCounter(counter: self.registry.makeCounter(name: name, labels: self.labels(labels)))
    }

    /// A histogram of values.
    public func histogram(_ name: String, labels: [(String, String)], buckets: [Double]) -> TelemetryHistogram {
        TelemetryHistogram(histogram: self.registry.makeValueHistogram(name: name, labels: self.labels(labels), buckets: buckets))
    }

    /// Runs `hook` before each scrape (a gauge set from a state read then,
    /// such as a queue's oldest age), until `removeScrapeHooks(owner)`.
    public func onScrape(_ owner: AnyObject, _ hook: @escaping @Sendable () -> Void) {
        self.scrapeHooks.withLockedValue { $0.append((ObjectIdentifier(owner), hook)) }
    }

    public func removeScrapeHooks(_ owner: AnyObject) {
        let token = ObjectIdentifier(owner)
        self.scrapeHooks.withLockedValue { $0.removeAll { $0.owner == token } }
    }

    /// The Prometheus text of every metric.
    public func prometheusText() -> String {
        for (_, hook) in self.scrapeHooks.withLockedValue({ $0 }) { hook() }
        var bytes: [UInt8] = []
        self.registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The item noun of each signal in otelcol's metric names.
    static func itemWord(_ signal: Signal) -> String {
        switch signal {
        case .traces: "spans"
        case .metrics: "metric_points"
        case .logs: "log_records"
        }
    }

    /// One counter per signal: `{prefix}_{items}_total`.
    static func perSignal(_ registry: PrometheusCollectorRegistry, _ prefix: String, _ labels: [(String, String)]) -> SignalCounter {
        SignalCounter(
            counters: Signal.allCases.map { signal in
                registry.makeCounter(name: "\(prefix)_\(Self.itemWord(signal))_total", labels: labels)
            })
    }
}

/// A counter of one metric, per signal, and optionally a sum over signals that can be read back.
public struct SignalCounter: Sendable {
    let counters: [Counter]
    var total: ItemTotal? = nil

    public func add(_ count: Int, for signal: Signal) {
        guard count > 0 else { return }
        let index = signal == .traces ? 0 : signal == .metrics ? 1 : 2
        self.counters[index].increment(by: Int64(count))
        self.total?.add(count)
    }
}

/// A count that can be read back (the Prometheus counters cannot).
final class ItemTotal: Sendable {
    private let value = Atomic<Int>(0)

    func add(_ count: Int) {
        self.value.wrappingAdd(count, ordering: .relaxed)
    }

    var count: Int { self.value.load(ordering: .relaxed) }
}

/// Items an exporter sent and failed to send, all signals together.
final class ItemTotals: Sendable {
    let sent = ItemTotal()
    let failed = ItemTotal()
}

/// One counter.
public struct TelemetryCounter: Sendable {
    let counter: Counter

    public func add(_ count: Int = 1) {
        if count > 0 { self.counter.increment(by: Int64(count)) }
    }
}

/// One histogram.
public struct TelemetryHistogram: Sendable {
    let histogram: ValueHistogram

    public func record(_ value: Int) {
        self.histogram.record(Double(value))
    }
}

public struct ReceiverCounters: Sendable {
    public let accepted: SignalCounter
    /// Refused by the pipeline: it could not take the data now (retryable).
    public let refused: SignalCounter
    /// Failed in the pipeline for good (a permanent error).
    public let failed: SignalCounter

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)]) {
        self.accepted = SelfTelemetry.perSignal(registry, "otelcol_receiver_accepted", labels)
        self.refused = SelfTelemetry.perSignal(registry, "otelcol_receiver_refused", labels)
        self.failed = SelfTelemetry.perSignal(registry, "otelcol_receiver_failed", labels)
    }
}

public struct ExporterCounters: Sendable {
    public private(set) var sent: SignalCounter
    public private(set) var sendFailed: SignalCounter
    /// Refused because the sending queue was full.
    public let enqueueFailed: SignalCounter

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)], totals: ItemTotals) {
        self.sent = SelfTelemetry.perSignal(registry, "otelcol_exporter_sent", labels)
        self.sent.total = totals.sent
        self.sendFailed = SelfTelemetry.perSignal(registry, "otelcol_exporter_send_failed", labels)
        self.sendFailed.total = totals.failed
        self.enqueueFailed = SelfTelemetry.perSignal(registry, "otelcol_exporter_enqueue_failed", labels)
    }
}

/// One exporter's sending queue for one signal, as the Collector reports it
/// (`otelcol_exporter_queue_size` / `_capacity`, by `exporter` and
/// `data_type`), and otlpd's count of attempts that were retries.
public struct SendingQueueGauges: Sendable {
    public let size: TelemetryGauge
    public let capacity: TelemetryGauge
    public let retries: TelemetryCounter
    /// otlpd's own: the queue's bytes (on disk, for a persistent queue), the oldest request's age, and requests dead-lettered.
    public let bytes: TelemetryGauge
    public let oldestAgeSeconds: TelemetryGauge
    public let deadLetterRecords: TelemetryCounter
    /// A persistent queue's group commits put on disk (an fsync each, with `fsync: true`).
    public let syncs: TelemetryCounter
}

/// One gauge.
public struct TelemetryGauge: Sendable {
    let gauge: Gauge

    public func set(_ value: Int) {
        self.gauge.set(Int64(value))
    }
}

extension SelfTelemetry {
    public func sendingQueue(_ id: ComponentID, signal: Signal) -> SendingQueueGauges {
        let labels = self.labels([("data_type", signal.rawValue), ("exporter", id.description)])
        return SendingQueueGauges(
            size: TelemetryGauge(gauge: self.registry.makeGauge(name: "otelcol_exporter_queue_size", labels: labels)),
            capacity: TelemetryGauge(gauge: self.registry.makeGauge(name: "otelcol_exporter_queue_capacity", labels: labels)),
            retries: TelemetryCounter(counter: self.registry.makeCounter(name: "otlpd_exporter_send_retries_total", labels: labels)),
            bytes: TelemetryGauge(gauge: self.registry.makeGauge(name: "otlpd_exporter_queue_bytes", labels: labels)),
            oldestAgeSeconds: TelemetryGauge(gauge: self.registry.makeGauge(name: "otlpd_exporter_queue_oldest_age_seconds", labels: labels)),
            deadLetterRecords: TelemetryCounter(counter: self.registry.makeCounter(name: "otlpd_exporter_dead_letter_records_total", labels: labels)),
            syncs: TelemetryCounter(counter: self.registry.makeCounter(name: "otlpd_exporter_queue_syncs_total", labels: labels)))
    }
}

public struct ProcessorCounters: Sendable {
    public let incoming: TelemetryCounter
    public let outgoing: TelemetryCounter
}
