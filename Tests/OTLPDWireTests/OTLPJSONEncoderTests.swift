import Foundation
import NIOCore
import OTLPDCore
import OTLPDWire
import Testing

struct OTLPJSONEncoderTests {
    @Test("one line per resource, equal to protobuf's own JSON printer", arguments: Signal.allCases)
    func matchesProtobufJSONPrinter(signal: Signal) throws {
        let payload = try Fixture.buffer("\(signal).binpb")
        let expected = try Fixture.json("\(signal).json") as! [String: Any]
        let key = Fixture.resourceKey(signal)
        let expectedResources = expected[key] as! [Any]

        var sink = ByteSink()
        let lines = OTLPJSONEncoder.appendLines(payload, signal: signal, to: &sink)
        let text = sink.string
        #expect(lines == expectedResources.count)
        #expect(text.hasSuffix("\n"))
        let written = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(written.count == expectedResources.count)
        for (line, resource) in zip(written, expectedResources) {
            #expect(!line.contains("\n"))
            let parsed = try parseJSON(line)
            #expect(parsed == [key: [resource]] as NSDictionary)
        }
    }

    @Test func escapesStringsAndRepairsInvalidUTF8() throws {
        // A LogRecord body with control characters, quotes and invalid UTF-8.
        var body = ByteBuffer()
        let text: [UInt8] = Array("a\"b\\c\n\u{1}".utf8) + [0xFF, 0x41, 0xE2, 0x82] + Array("é✓🚀".utf8)
        body.writeBytes([0x0A, UInt8(text.count)] + text)  // AnyValue.string_value
        let schema = WireSchema.shared
        let json = try OTLPJSONEncoder.encode(body, message: schema.messageIndex("opentelemetry.proto.common.v1.AnyValue"))
        let output = String(buffer: json)
        #expect(output == "{\"stringValue\":\"a\\\"b\\\\c\\n\\u0001\u{FFFD}A\u{FFFD}\u{FFFD}é✓🚀\"}")
        #expect((try? parseJSON(output)) != nil)
    }

    @Test("U+2028 and U+2029 are written escaped: valid JSON either way, but they end a line for JavaScript and Python")
    func escapesLineAndParagraphSeparators() throws {
        var body = ByteBuffer()
        let text = Array("a\u{2028}b\u{2029}c\u{2027}".utf8)
        body.writeBytes([0x0A, UInt8(text.count)] + text)
        let json = try OTLPJSONEncoder.encode(body, message: WireSchema.shared.messageIndex("opentelemetry.proto.common.v1.AnyValue"))
        #expect(String(buffer: json) == "{\"stringValue\":\"a\\u2028b\\u2029c\u{2027}\"}")
    }

    @Test func gathersRepeatedFieldsThatAreNotAdjacent() throws {
        // KeyValueList with values (field 1) split by an unknown field 9.
        var message = ByteBuffer()
        let first: [UInt8] = [0x0A, 0x01, 0x61]  // KeyValue.key = "a"
        let second: [UInt8] = [0x0A, 0x01, 0x62]
        message.writeBytes([0x0A, UInt8(first.count)] + first)
        message.writeBytes([0x48, 0x01])  // field 9, varint: unknown
        message.writeBytes([0x0A, UInt8(second.count)] + second)
        let json = try OTLPJSONEncoder.encode(
            message, message: WireSchema.shared.messageIndex("opentelemetry.proto.common.v1.KeyValueList"))
        #expect(String(buffer: json) == "{\"values\":[{\"key\":\"a\"},{\"key\":\"b\"}]}")
    }

    @Test func readsPackedAndUnpackedRepeatedScalars() throws {
        let index = WireSchema.shared.messageIndex("opentelemetry.proto.metrics.v1.HistogramDataPoint")
        var packed = ByteBuffer()
        packed.writeBytes([0x32, 16])  // bucket_counts (6), packed fixed64 x2
        packed.writeBytes([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        var unpacked = ByteBuffer()
        unpacked.writeBytes([0x31, 1, 0, 0, 0, 0, 0, 0, 0, 0x31, 2, 0, 0, 0, 0, 0, 0, 0])
        #expect(String(buffer: try OTLPJSONEncoder.encode(packed, message: index)) == "{\"bucketCounts\":[\"1\",\"2\"]}")
        #expect(String(buffer: try OTLPJSONEncoder.encode(unpacked, message: index)) == "{\"bucketCounts\":[\"1\",\"2\"]}")
    }
}

struct DirectEncodingTests {
    @Test("encoding into a ByteBuffer gives the same lines, whatever the first estimate")
    func sameAsSink() throws {
        for signal in Signal.allCases {
            let payload = try Fixture.buffer("\(signal).binpb")
            var sink = ByteSink()
            OTLPJSONEncoder.appendLines(payload, signal: signal, to: &sink)
            #expect(String(buffer: OTLPJSONEncoder.encodeLines(payload, signal: signal)) == sink.string)
            // A tiny first estimate overflows and is retried with more room.
            var small = ByteBuffer()
            ByteSink.write(into: &small, estimate: 10) { OTLPJSONEncoder.appendLines(payload, signal: signal, to: &$0) }
            #expect(String(buffer: small) == sink.string)
        }
    }
}

struct SpanPathTests {
    @Test("a span the fast path cannot take (attributes split by other fields, an unknown field) gives the generic JSON")
    func fallsBackToTheGenericWalk() throws {
        let attribute: (String) -> [UInt8] = { key in
            let value: [UInt8] = [0x0A, 0x01, 0x76]  // AnyValue.string_value = "v"
            let keyValue: [UInt8] = [0x0A, UInt8(key.utf8.count)] + Array(key.utf8) + [0x12, UInt8(value.count)] + value
            return [0x4A, UInt8(keyValue.count)] + keyValue  // Span.attributes (9)
        }
        var span: [UInt8] = [0x2A, 0x01, 0x78]  // name = "x"
        span += attribute("a")
        span += [0x30, 0x02]  // kind = 2
        span += attribute("b")
        span += [0xF8, 0x06, 0x01]  // field 111: unknown
        let request = ByteBuffer(bytes: [0x0A, UInt8(span.count + 4), 0x12, UInt8(span.count + 2), 0x12, UInt8(span.count)] + span)
        var sink = ByteSink()
        OTLPJSONEncoder.appendLines(request, signal: .traces, to: &sink)
        #expect(
            sink.string
                == #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x","attributes":[{"key":"a","value":{"stringValue":"v"}},{"key":"b","value":{"stringValue":"v"}}],"kind":2}]}]}]}"# + "\n")
    }

    @Test("an event or a status the fast path cannot take (attributes split by another field, an unknown field) gives the generic JSON")
    func eventsAndStatusFallBack() throws {
        let keyValue: (String) -> [UInt8] = { key in [0x0A, UInt8(key.utf8.count)] + Array(key.utf8) + [0x12, 0x03, 0x0A, 0x01, 0x76] }
        var event: [UInt8] = [0x1A, UInt8(keyValue("a").count)] + keyValue("a")  // Event.attributes (3)
        event += [0x12, 0x01, 0x65]  // name = "e"
        event += [0x1A, UInt8(keyValue("b").count)] + keyValue("b")
        let status: [UInt8] = [0x18, 0x02, 0x48, 0x01]  // code = 2, then unknown field 9
        let plainEvent: [UInt8] = [0x09] + [UInt8](repeating: 0, count: 7) + [0x01] + [0x12, 0x01, 0x66]  // time = 2^56, name = "f"
        var span: [UInt8] = [0x2A, 0x01, 0x78]  // name = "x"
        span += [0x5A, UInt8(event.count)] + event  // Span.events (11)
        span += [0x5A, UInt8(plainEvent.count)] + plainEvent
        span += [0x7A, UInt8(status.count)] + status  // Span.status (15)
        let request = ByteBuffer(bytes: [0x0A, UInt8(span.count + 4), 0x12, UInt8(span.count + 2), 0x12, UInt8(span.count)] + span)
        var sink = ByteSink()
        OTLPJSONEncoder.appendLines(request, signal: .traces, to: &sink)
        #expect(
            sink.string
                == #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x","events":[{"attributes":[{"key":"a","value":{"stringValue":"v"}},{"key":"b","value":{"stringValue":"v"}}],"name":"e"},{"timeUnixNano":"72057594037927936","name":"f"}],"status":{"code":2}}]}]}]}"# + "\n")
    }
}
