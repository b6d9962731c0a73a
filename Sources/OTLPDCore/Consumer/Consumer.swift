/// The seam between pipeline stages: a receiver hands a batch to the first
/// processor, each processor to the next, the last to the fan-out, the fan-out
/// to every exporter.
///
/// Returning normally means the batch is kept: written, or in a queue that
/// will deliver it. Until then the client's request stays unanswered.
///
/// The batch is handed over: a stage that replaces it (an attribute rewrite)
/// lets the original go, so its bytes are freed while the new ones wait on.
/// What comes back says what was kept: everything, or all but the items an
/// upstream rejected (OTLP's partial success), which the client is told.
public protocol Consumer: Sendable {
    @discardableResult
    func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept
}

/// What a stage kept of a batch: all of it, or all but `rejected` items,
/// with the reason (an upstream's `partial_success`).
public struct Kept: Sendable, Equatable {
    public var rejected: Int
    public var message: String?

    public init(rejected: Int = 0, message: String? = nil) {
        self.rejected = rejected
        self.message = message
    }

    public static let all = Kept()

    /// The same items went to both (a fan-out to two exporters): the larger rejection, both reasons.
    public func alongside(_ other: Kept) -> Kept {
        guard other.rejected > 0 || other.message != nil else { return self }
        guard self.rejected > 0 || self.message != nil else { return other }
        let messages = [self.message, other.message].compactMap { $0 }
        return Kept(rejected: max(self.rejected, other.rejected), message: messages.isEmpty ? nil : messages.joined(separator: "; "))
    }

    /// Another part of the same batch (a split): the rejections add up.
    public func plus(_ other: Kept) -> Kept {
        let messages = [self.message, other.message].compactMap { $0 }
        return Kept(rejected: self.rejected + other.rejected, message: messages.isEmpty ? nil : messages.joined(separator: "; "))
    }

    /// What one request of a merged batch is told: the rejection, at most its own items.
    public func share(of items: Int) -> Kept {
        self.rejected > items ? Kept(rejected: items, message: self.message) : self
    }
}

/// Why a stage could not take a batch, and whether the client may retry it.
public struct ConsumeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The data itself is bad: retrying will not help (HTTP 400).
        case permanent
        /// A passing condition: over a limit, shutting down, a full disk (HTTP 503 / gRPC UNAVAILABLE).
        case retryable(after: Duration?)
    }

    public var kind: Kind
    public var message: String
    /// The `google.rpc.Code` to answer with, where a stage knows better than
    /// the kind's default (INVALID_ARGUMENT / UNAVAILABLE): an upstream's
    /// refusal passed back as it came.
    public var code: Int32?

    public init(_ kind: Kind, _ message: String, code: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.code = code
    }

    public static func permanent(_ message: String, code: Int32? = nil) -> ConsumeError {
        ConsumeError(.permanent, message, code: code)
    }

    /// `code` is `resourceExhausted` where a bound was reached (a full
    /// persistent queue), which clients hear as RESOURCE_EXHAUSTED / 429.
    public static func retryable(_ message: String, after: Duration? = nil, code: Int32? = nil) -> ConsumeError {
        ConsumeError(.retryable(after: after), message, code: code)
    }

    /// `google.rpc.Code` RESOURCE_EXHAUSTED.
    public static let resourceExhausted: Int32 = 8

    public var isRetryable: Bool {
        if case .retryable = self.kind { return true }
        return false
    }

    public var description: String { self.message }
}

/// Hands each batch to every consumer in turn and succeeds only when all of
/// them kept it. Consumers see the same bytes: none of them mutates a batch.
public struct FanOutConsumer: Consumer {
    public let consumers: [any Consumer]

    public init(_ consumers: [any Consumer]) {
        self.consumers = consumers
    }

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        guard let last = self.consumers.last else { return .all }
        var kept = Kept.all
        for consumer in self.consumers.dropLast() {
            kept = kept.alongside(try await consumer.consume(copy batch))
        }
        return kept.alongside(try await last.consume(batch))
    }
}
