import NIOConcurrencyHelpers

/// What a forwarding exporter says of itself for `/services` and `otlpd
/// status`: where it sends, whether the upstream confirms, what waits.
public struct ExporterStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        /// The last attempt was confirmed (or none was made yet).
        case connected
        /// Attempts fail and batches wait to be retried.
        case retrying
        /// Attempts fail and nothing waits: the clients were told to retry.
        case down
    }

    public var exporter: String
    public var target: String
    public var state: State
    /// Batches held (waiting or being sent), their bytes, and how long the oldest has waited.
    public var queuedRequests: Int
    public var queuedBytes: Int
    public var oldestAge: Duration?
    /// Items confirmed by the upstream, and items whose delivery failed.
    public var sent: Int
    public var failed: Int
    /// Requests the upstream refused for good after they were acknowledged, kept in the dead-letter file.
    public var deadLettered = 0
    /// Whether the queue is on disk (`sending_queue.storage`).
    public var persistent = false
    /// Why the queue refuses requests now (full): nil while it takes them.
    public var queueFull: String?
    public var lastError: String?
    public var lastErrorAge: Duration?

    public init(
        exporter: String, target: String, state: State, queuedRequests: Int, queuedBytes: Int, oldestAge: Duration?, sent: Int, failed: Int,
        lastError: String?, lastErrorAge: Duration?
    ) {
        self.exporter = exporter
        self.target = target
        self.state = state
        self.queuedRequests = queuedRequests
        self.queuedBytes = queuedBytes
        self.oldestAge = oldestAge
        self.sent = sent
        self.failed = failed
        self.lastError = lastError
        self.lastErrorAge = lastErrorAge
    }
}

/// The running exporters that report a status, by registration: a reload's
/// new exporter registers before the old one leaves, and the old one's
/// leaving does not remove the new one.
public final class ExporterStatusBoard: Sendable {
    private let sources = NIOLockedValueBox<[(token: ObjectIdentifier, id: String, status: @Sendable () -> ExporterStatus)]>([])

    public init() {}

    public func register(_ owner: AnyObject, id: String, status: @escaping @Sendable () -> ExporterStatus) {
        let token = ObjectIdentifier(owner)
        self.sources.withLockedValue { sources in
            sources.removeAll { $0.id == id }
            sources.append((token, id, status))
        }
    }

    public func unregister(_ owner: AnyObject) {
        let token = ObjectIdentifier(owner)
        self.sources.withLockedValue { $0.removeAll { $0.token == token } }
    }

    /// Every registered exporter's status, by id.
    public func snapshot() -> [ExporterStatus] {
        let sources = self.sources.withLockedValue { $0 }
        return sources.map { $0.status() }.sorted { $0.exporter < $1.exporter }
    }
}
