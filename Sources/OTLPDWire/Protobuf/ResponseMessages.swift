internal import COTLPProto
internal import CProtobufC
import NIOCore
import OTLPDCore

/// The small messages otlpd itself writes, packed with protobuf-c: the
/// `google.rpc.Status` of every error, with `RetryInfo` when a client should
/// retry. (A full success answers an empty `Export*ServiceResponse`.)
package enum ResponseMessages {
    /// A serialized `google.rpc.Status`; with `retryDelay`, one `RetryInfo` detail.
    package static func status(code: Int32, message: String, retryDelay: Duration? = nil) -> ByteBuffer {
        var status = Google__Rpc__Status()
        google__rpc__status__init(&status)
        status.has_code = 1
        status.code = code
        return message.withCString { text in
            status.message = UnsafeMutablePointer(mutating: text)
            guard let retryDelay else { return Self.pack(&status) }

            var duration = Google__Protobuf__Duration()
            google__protobuf__duration__init(&duration)
            let (seconds, attoseconds) = retryDelay.components
            duration.has_seconds = 1
            duration.seconds = seconds
            duration.has_nanos = 1
            duration.nanos = Int32(attoseconds / 1_000_000_000)
            var retryInfo = Google__Rpc__RetryInfo()
            google__rpc__retry_info__init(&retryInfo)
            return withUnsafeMutablePointer(to: &duration) { durationPointer in
                retryInfo.retry_delay = durationPointer
                let size = google__rpc__retry_info__get_packed_size(&retryInfo)
                var packedRetry = [UInt8](repeating: 0, count: size)
                _ = packedRetry.withUnsafeMutableBufferPointer { google__rpc__retry_info__pack(&retryInfo, $0.baseAddress) }
                return "type.googleapis.com/google.rpc.RetryInfo".withCString { typeURL in
                    packedRetry.withUnsafeMutableBufferPointer { retryBytes in
                        var any = Google__Protobuf__Any()
                        google__protobuf__any__init(&any)
                        any.type_url = UnsafeMutablePointer(mutating: typeURL)
                        any.has_value = 1
                        any.value = ProtobufCBinaryData(len: retryBytes.count, data: retryBytes.baseAddress)
                        return withUnsafeMutablePointer(to: &any) { anyPointer in
                            var details: UnsafeMutablePointer<Google__Protobuf__Any>? = anyPointer
                            return withUnsafeMutablePointer(to: &details) { detailsPointer in
                                status.n_details = 1
                                status.details = detailsPointer
                                return Self.pack(&status)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The same `google.rpc.Status` in proto3's JSON mapping (the detail as an
    /// `Any` with "@type", and the delay as a "5s" duration string).
    package static func statusJSON(code: Int32, message: String, retryDelay: Duration? = nil) -> ByteBuffer {
        var sink = ByteSink(capacity: 96 + message.utf8.count)
        sink.append("{\"code\":")
        sink.appendDecimal(Int64(code))
        sink.append(",\"message\":\"")
        sink.appendJSONEscaped(message)
        sink.append("\"")
        if let retryDelay {
            let (seconds, attoseconds) = retryDelay.components
            sink.append(",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"")
            sink.appendDecimal(Int64(seconds))
            let nanoseconds = attoseconds / 1_000_000_000
            if nanoseconds > 0 {
                sink.append(UInt8(ascii: "."))
                var digits = String(nanoseconds)
                digits = String(repeating: "0", count: 9 - digits.count) + digits
                while digits.hasSuffix("0") { digits.removeLast() }
                sink.append(contentsOf: digits)
            }
            sink.append("s\"}]")
        }
        sink.append("}")
        return sink.byteBuffer()
    }

    /// An `Export*ServiceResponse` whose `partial_success` (field 1) holds
    /// the rejected count (field 1 in every signal's message) and the reason (field 2).
    package static func partialSuccess(rejected: Int, message: String) -> ByteBuffer {
        var inner = ByteSink(capacity: 16 + message.utf8.count)
        if rejected > 0 {
            inner.appendVarint(1 << 3)
            inner.appendVarint(UInt64(rejected))
        }
        if !message.isEmpty {
            inner.appendVarint(2 << 3 | 2)
            inner.appendVarint(UInt64(message.utf8.count))
            inner.append(contentsOf: message)
        }
        let body = inner.byteBuffer()
        var outer = ByteSink(capacity: body.readableBytes + 8)
        outer.appendVarint(1 << 3 | 2)
        outer.appendVarint(UInt64(body.readableBytes))
        outer.append(body)
        return outer.byteBuffer()
    }

    /// The same in OTLP/JSON: `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"..."}}`.
    package static func partialSuccessJSON(signal: Signal, rejected: Int, message: String) -> ByteBuffer {
        var sink = ByteSink(capacity: 64 + message.utf8.count)
        let name: StaticString =
            switch signal {
            case .traces: "rejectedSpans"
            case .metrics: "rejectedDataPoints"
            case .logs: "rejectedLogRecords"
            }
        sink.append("{\"partialSuccess\":{\"")
        sink.append(name)
        sink.append("\":\"")
        sink.appendDecimal(Int64(rejected))
        sink.append("\",\"errorMessage\":\"")
        sink.appendJSONEscaped(message)
        sink.append("\"}}")
        return sink.byteBuffer()
    }

    private static func pack(_ status: inout Google__Rpc__Status) -> ByteBuffer {
        let size = google__rpc__status__get_packed_size(&status)
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            google__rpc__status__pack(&status, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return buffer
    }

    package static var statusIndex: Int32 { WireSchema.shared.messageIndex("google.rpc.Status") }
}
