import NIOCore

/// What flows through a pipeline: one serialized `Export*ServiceRequest`,
/// kept as the bytes that arrived.
///
/// OTLP requests are a single repeated top-level field, so serialized
/// requests one after another are one valid request. A batch of merged
/// requests is therefore the list of their buffers (`parts`), not a copy:
/// stages that read the bytes read each part in turn, and only a stage that
/// needs one contiguous request pays for `payload`.
public struct TelemetryBatch: Sendable {
    public var signal: Signal
    /// Complete, structurally valid requests, in order; together, the batch's request.
    public private(set) var parts: [ByteBuffer]
    /// Spans, metric data points or log records in all the parts.
    public var itemCount: Int
    /// When the earliest of its clients stops waiting for an answer (gRPC's
    /// `grpc-timeout`); nil when none said. A forwarding exporter retries
    /// only until then, so a client hears a retryable error, not its own timeout.
    public var deadline: ContinuousClock.Instant?

    public init(signal: Signal, payload: ByteBuffer, itemCount: Int, deadline: ContinuousClock.Instant? = nil) {
        self.signal = signal
        self.parts = [payload]
        self.itemCount = itemCount
        self.deadline = deadline
    }

    public init(signal: Signal, parts: [ByteBuffer], itemCount: Int, deadline: ContinuousClock.Instant? = nil) {
        precondition(!parts.isEmpty, "a batch holds at least one request")
        self.signal = signal
        self.parts = parts
        self.itemCount = itemCount
        self.deadline = deadline
    }

    /// The batches' requests as one batch, without copying their bytes; its
    /// deadline is the earliest of theirs.
    public init(signal: Signal, merging batches: [TelemetryBatch]) {
        self.init(
            signal: signal, parts: batches.flatMap(\.parts), itemCount: batches.reduce(0) { $0 + $1.itemCount },
            deadline: batches.lazy.compactMap(\.deadline).min())
    }

    /// The request in one buffer: the only part as it is, or the parts copied one after another.
    public var payload: ByteBuffer {
        guard self.parts.count > 1 else { return self.parts[0] }
        var payload = ByteBufferAllocator().buffer(capacity: self.byteCount)
        for part in self.parts { payload.writeImmutableBuffer(part) }
        return payload
    }

    /// The request's size in bytes.
    public var byteCount: Int { self.parts.reduce(0) { $0 + $1.readableBytes } }
}
