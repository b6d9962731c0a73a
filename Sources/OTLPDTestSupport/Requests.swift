import NIOCore
import OTLPDCore

/// Small valid OTLP requests built byte by byte, for tests that need
/// requests with a given number of resources and items.
public enum TestRequests {
    /// An ExportTraceServiceRequest with one resource (service.name = `service`) holding `spans` spans.
    public static func traces(service: String? = "checkout", spans: Int, name: String = "GET /cart") -> ByteBuffer {
        var span = Self.field(5, Array(name.utf8))  // Span.name
        span = Self.field(1, [UInt8](repeating: 0xAB, count: 16)) + Self.field(2, [UInt8](repeating: 0xCD, count: 8)) + span
        let scope = (0..<spans).flatMap { _ in Self.field(2, span) }  // ScopeSpans.spans
        var resourceSpans: [UInt8] = []
        if let service {
            let value = Self.field(1, Array(service.utf8))  // AnyValue.string_value
            let keyValue = Self.field(1, Array("service.name".utf8)) + Self.field(2, value)
            resourceSpans += Self.field(1, Self.field(1, keyValue))  // ResourceSpans.resource { attributes }
        }
        resourceSpans += Self.field(2, scope)  // ResourceSpans.scope_spans
        return ByteBuffer(bytes: Self.field(1, resourceSpans))  // ExportTraceServiceRequest.resource_spans
    }

    public static func batch(service: String? = "checkout", spans: Int) -> TelemetryBatch {
        TelemetryBatch(signal: .traces, payload: Self.traces(service: service, spans: spans), itemCount: spans)
    }

    /// A length-delimited field.
    public static func field(_ number: UInt32, _ bytes: [UInt8]) -> [UInt8] {
        Self.varint(UInt64(number) << 3 | 2) + Self.varint(UInt64(bytes.count)) + bytes
    }

    public static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }
}
