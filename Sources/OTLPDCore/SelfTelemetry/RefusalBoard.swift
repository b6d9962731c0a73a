import NIOConcurrencyHelpers

/// The latest refused requests and connections, for the status page: every
/// one (the log is rate-limited, this is not), the newest 50 kept.
public final class RefusalBoard: Sendable {
    public struct Refusal: Sendable, Equatable {
        /// Nanoseconds since the Unix epoch.
        public var time: Int64
        public var client: String
        /// `grpc` or `http`; nil for a connection refused before a request.
        public var protocolName: String?
        public var path: String?
        /// gRPC status name or HTTP status; nil for a connection.
        public var status: String?
        /// In the words of the log line.
        public var reason: String
        /// The `service.name`s of the request, where it was read before the refusal.
        public var service: String?
    }

    public static let capacity = 50
    private let entries = NIOLockedValueBox<[Refusal]>([])

    public init() {}

    public func record(
        client: String, protocolName: String?, path: String?, status: String?, reason: String, service: String? = nil,
        time: Int64 = Timestamp.nowNanoseconds()
    ) {
        let refusal = Refusal(time: time, client: client, protocolName: protocolName, path: path, status: status, reason: reason, service: service)
        self.entries.withLockedValue { entries in
            entries.append(refusal)
            if entries.count > Self.capacity { entries.removeFirst(entries.count - Self.capacity) }
        }
    }

    /// Newest first.
    public func latest() -> [Refusal] {
        self.entries.withLockedValue { $0.reversed() }
    }
}
