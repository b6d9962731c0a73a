import NIOCore

/// What flows through a pipeline: one serialized `Export*ServiceRequest`,
/// kept as the bytes that arrived.
///
/// OTLP requests are a single repeated top-level field, so two serialized
/// requests concatenated are one valid request: batching merges bytes, and a
/// stage decodes only what it needs to touch.
public struct TelemetryBatch: Sendable {
    public var signal: Signal
    /// A complete, structurally valid `Export{Trace,Metrics,Logs}ServiceRequest`.
    public var payload: ByteBuffer
    /// Spans, metric data points or log records in `payload`.
    public var itemCount: Int

    public init(signal: Signal, payload: ByteBuffer, itemCount: Int) {
        self.signal = signal
        self.payload = payload
        self.itemCount = itemCount
    }
}
