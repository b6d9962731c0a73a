import NIOCore
import OTLPDCore

/// Who sent a request, resource by resource: what the per-service view
/// records. Read from the wire with one light walk: the resource's few
/// attributes, then only the ids of each span.
package enum RequestSummaries {
    /// One summary per resource of a validated request. For traces,
    /// `span(resourceIndex, fingerprint)` is called for every span with a
    /// 64-bit fingerprint of its trace and span ids (for duplicate detection).
    package static func summarize(
        _ payload: ByteBuffer,
        signal: Signal,
        span: (Int, UInt64) -> Void = { _, _ in }
    ) -> [ResourceObservation] {
        var summaries: [ResourceObservation] = []
        summaries.reserveCapacity(1)
        let path = ItemSplitter.path(for: signal)
        WireReader.withReader(payload) { (request: inout WireReader) in
            do throws(WireError) {
                while !request.isAtEnd {
                    let (number, wireType) = try request.readTag()
                    guard number == 1, wireType == 2 else {
                        try request.skip(wireType: wireType, number: number)
                        continue
                    }
                    let resource = try request.readLengthDelimited()
                    var summary = try Self.resourceAttributes(resource)
                    let index = summaries.count
                    if signal == .traces {
                        summary.itemCount = try Self.spans(resource) { span(index, $0) }
                    } else {
                        summary.itemCount = try ItemSplitter.countItems(resource, depth: 1, path: path)
                    }
                    summaries.append(summary)
                }
            } catch {
                // Validated bytes: nothing malformed follows.
            }
        }
        return summaries
    }

    /// service.name, service.instance.id, telemetry.sdk.language and .version of ResourceX.resource.
    static func resourceAttributes(_ resourceX: WireReader) throws(WireError) -> ResourceObservation {
        var summary = ResourceObservation()
        var scan = resourceX
        while !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            guard number == 1, wireType == 2 else {
                try scan.skip(wireType: wireType, number: number)
                continue
            }
            var resource = try scan.readLengthDelimited()
            while !resource.isAtEnd {
                let (field, type) = try resource.readTag()
                guard field == 1, type == 2 else {
                    try resource.skip(wireType: type, number: field)
                    continue
                }
                guard let keyValue = ScalarKeyValue.read(try resource.readLengthDelimited()), case .string(let value) = keyValue.value else {
                    continue
                }
                if keyValue.key.equals("service.name") {
                    summary.serviceName = value.string
                } else if keyValue.key.equals("service.instance.id") {
                    summary.serviceInstanceID = value.string
                } else if keyValue.key.equals("telemetry.sdk.language") {
                    summary.sdkLanguage = value.string
                } else if keyValue.key.equals("telemetry.sdk.version") {
                    summary.sdkVersion = value.string
                }
            }
        }
        return summary
    }

    /// Counts the spans of a ResourceSpans, reading only their ids.
    static func spans(_ resourceSpans: WireReader, _ body: (UInt64) -> Void) throws(WireError) -> Int {
        var count = 0
        var resource = resourceSpans
        while !resource.isAtEnd {
            let (number, wireType) = try resource.readTag()
            guard number == 2, wireType == 2 else {
                try resource.skip(wireType: wireType, number: number)
                continue
            }
            var scope = try resource.readLengthDelimited()
            while !scope.isAtEnd {
                let (field, type) = try scope.readTag()
                guard field == 2, type == 2 else {
                    try scope.skip(wireType: type, number: field)
                    continue
                }
                count += 1
                body(Self.fingerprint(try scope.readLengthDelimited()))
            }
        }
        return count
    }

    /// A 64-bit digest of a span's trace and span ids (0 when it has neither).
    static func fingerprint(_ span: WireReader) -> UInt64 {
        // SDKs write trace_id (field 1, 16 bytes) and span_id (field 2, 8 bytes)
        // first: then they are read in place, with no walk.
        let p = span.position
        if span.remaining >= 28, p[0] == 0x0A, p[1] == 16, p[18] == 0x12, p[19] == 8 {
            return Self.fingerprint(trace: WireBytes(start: p + 2, count: 16), span: WireBytes(start: p + 20, count: 8))
        }
        var reader = span
        var traceID: WireBytes?
        var spanID: WireBytes?
        while !reader.isAtEnd {
            guard let (number, wireType) = try? reader.readTag() else { return 0 }
            if (number == 1 || number == 2) && wireType == 2, let id = try? reader.readLengthDelimited() {
                if number == 1 { traceID = id.bytes } else { spanID = id.bytes }
            } else if (try? reader.skip(wireType: wireType, number: number)) == nil {
                return 0
            }
        }
        if traceID == nil && spanID == nil { return 0 }
        return Self.fingerprint(trace: traceID ?? .empty, span: spanID ?? .empty)
    }

    /// The same digest for the same ids, however the span was laid out.
    @inline(__always)
    static func fingerprint(trace: WireBytes, span: WireBytes) -> UInt64 {
        let hash: UInt64
        if trace.count == 16 && span.count == 8 {
            let t = UnsafeRawPointer(trace.start)
            let s = UnsafeRawPointer(span.start)
            hash = Self.mix(t.loadUnaligned(as: UInt64.self) ^ Self.mix(t.loadUnaligned(fromByteOffset: 8, as: UInt64.self) ^ Self.mix(s.loadUnaligned(as: UInt64.self))))
        } else {
            hash = Self.mix(Self.fold(trace, seed: 1) ^ Self.fold(span, seed: 2))
        }
        return hash == 0 ? 1 : hash
    }

    /// Mixes an id, eight bytes at a time, into a word.
    static func fold(_ bytes: WireBytes, seed: UInt64) -> UInt64 {
        var hash = Self.mix(seed &+ UInt64(bytes.count))
        var index = 0
        while index < bytes.count {
            var word: UInt64 = 0
            for offset in 0..<min(8, bytes.count - index) {
                word |= UInt64(bytes[index + offset]) << UInt64(8 * offset)
            }
            hash = Self.mix(hash ^ word)
            index += 8
        }
        return hash
    }

    /// splitmix64's finalizer.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
