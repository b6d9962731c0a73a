import OTLPDCore
import OTLPDHTTP
import OTLPDWire

/// What one attempt to deliver a batch upstream came to.
package enum AttemptOutcome: Sendable {
    /// The upstream took the batch; it may have rejected some items of it.
    case confirmed(UpstreamAnswers.PartialSuccess?)
    case failed(AttemptFailure)
}

/// Why an attempt failed, as the retry stage and the log need it.
package struct AttemptFailure: Sendable, Equatable {
    /// Whether the OTLP specification lets the batch be sent again.
    package var retryable: Bool
    /// How long the upstream asked to wait (`RetryInfo`, `Retry-After`).
    package var retryAfter: Duration?
    /// The upstream's status (`UNAVAILABLE`, `HTTP 503`) or the transport's failure (`connect failed`).
    package var status: String
    package var message: String
    /// The `google.rpc.Code` a permanent refusal is passed back to clients with.
    package var code: Int32?
    /// A mistake in the exporter's settings that the failure shows (a wrong
    /// port or protocol, TLS against plain text): logged once per upstream.
    package var diagnosis: String?

    package init(
        retryable: Bool, retryAfter: Duration? = nil, status: String, message: String, code: Int32? = nil, diagnosis: String? = nil
    ) {
        self.retryable = retryable
        self.retryAfter = retryAfter
        self.status = status
        self.message = message
        self.code = code
        self.diagnosis = diagnosis
    }

    package var description: String { "\(self.status): \(self.message)" }

    /// A request that got no answer: always retryable (at least once allows a resend).
    package static func transport(_ error: HTTPClientError, diagnosis: String?) -> AttemptFailure {
        let status: String
        switch error.kind {
        case .connectFailed: status = "connect failed"
        case .connectionLost: status = "connection lost"
        case .refused: status = "refused"
        case .timedOut: status = "timed out"
        case .wrongProtocol: status = "wrong protocol"
        case .protocolError: status = "protocol error"
        }
        return AttemptFailure(retryable: true, status: status, message: error.message, diagnosis: diagnosis)
    }
}

/// What a forwarding exporter puts on the wire: one attempt to deliver one
/// batch, bounded by `deadline`. Retry, queue and deadlines are the
/// helper's (`ForwardingExporter`); a sender only speaks its protocol.
package protocol UpstreamSender: Sendable {
    /// Where it sends, for log lines: `gateway:4317`.
    var upstream: String { get }
    func send(_ batch: TelemetryBatch, deadline: ContinuousClock.Instant) async -> AttemptOutcome
    /// Closes connections once what is under way is answered.
    func shutdown() async
}
