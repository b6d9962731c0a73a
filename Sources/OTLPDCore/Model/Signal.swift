/// The three OTLP signals. Pipelines, files and counters are per signal.
public enum Signal: String, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    case traces
    case metrics
    case logs

    public var description: String { self.rawValue }

    /// What one item of the signal is called: what batch sizes and counters count.
    public var itemName: String {
        switch self {
        case .traces: "spans"
        case .metrics: "metric points"
        case .logs: "log records"
        }
    }

    public static func < (lhs: Signal, rhs: Signal) -> Bool {
        lhs.order < rhs.order
    }

    private var order: Int {
        switch self {
        case .traces: 0
        case .metrics: 1
        case .logs: 2
        }
    }
}
