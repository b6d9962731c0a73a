import Foundation
import NIOCore
import OTLPDCore
import OTLPDWire
import Testing

struct OTLPJSONDecoderTests {
    /// Decodes `name`, then prints the result back as OTLP/JSON and compares
    /// it with protobuf's own JSON of the same data.
    func roundTrip(_ name: String, signal: Signal) throws {
        let wire = try OTLPJSONDecoder.decode(try Fixture.buffer(name), signal: signal)
        let expected = try Fixture.json("\(signal).json") as! NSDictionary
        let summary = try WireValidator.validate(wire, signal: signal)
        #expect(summary.resourceCount == (expected[Fixture.resourceKey(signal)] as! NSArray).count)
        let json = try OTLPJSONEncoder.encode(wire, message: WireSchema.shared.requestIndex(for: signal))
        #expect(try parseJSON(String(buffer: json)) == expected)
    }

    @Test("canonical OTLP/JSON decodes to the same data", arguments: Signal.allCases)
    func canonical(signal: Signal) throws {
        try self.roundTrip("\(signal).json", signal: signal)
    }

    @Test("snake_case keys, enum names, numeric 64-bit ints and unknown keys", arguments: Signal.allCases)
    func lenient(signal: Signal) throws {
        try self.roundTrip("\(signal).input.json", signal: signal)
    }

    @Test func decodesToTheSameBytesAsProtobuf() throws {
        // Logs' fixture keys are in field order only after sorting; compare by re-encoding instead.
        let wire = try OTLPJSONDecoder.decode(try Fixture.buffer("logs.json"), signal: .logs)
        let reference = try Fixture.buffer("logs.binpb")
        let index = WireSchema.shared.requestIndex(for: .logs)
        #expect(
            try parseJSON(String(buffer: try OTLPJSONEncoder.encode(wire, message: index)))
                == parseJSON(String(buffer: try OTLPJSONEncoder.encode(reference, message: index))))
    }

    @Test func emptyObjectsAndNulls() throws {
        let wire = try OTLPJSONDecoder.decode(
            ByteBuffer(string: #" {"resourceSpans": [ {}, {"resource": null, "scopeSpans": [{"spans": [{"name": null}]}]} ] } "#),
            signal: .traces)
        #expect(try WireValidator.validate(wire, signal: .traces) == RequestSummary(itemCount: 1, resourceCount: 2))
    }

    @Test func stringEscapesAndSurrogates() throws {
        let wire = try OTLPJSONDecoder.decode(
            ByteBuffer(string: #"{"stringValue": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude80"}"#),
            message: WireSchema.shared.messageIndex("opentelemetry.proto.common.v1.AnyValue"))
        let expected = Array("a\"\\/\u{8}\u{C}\n\r\té🚀".utf8)
        #expect(Array(wire.readableBytesView) == [0x0A, UInt8(expected.count)] + expected)
    }

    @Test(
        "refuses what is not OTLP/JSON",
        arguments: [
            "", "[]", "{", #"{"resourceSpans": {}}"#, #"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}"#,
            #"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "abc"}]}]}]}"#,
            #"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}"#,
            #"{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_NOPE"}]}]}]}"#,
            #"{"resourceSpans": [{"scopeSpans": [{"spans": [{"droppedAttributesCount": -1}]}]}]}"#,
            #"{"resourceSpans": []} trailing"#, #"{"resourceSpans": [}"#, "{\"a\": \"\u{1}\"}",
        ])
    func refuses(text: String) {
        #expect(throws: WireError.self) { try OTLPJSONDecoder.decode(ByteBuffer(string: text), signal: .traces) }
    }

    @Test func acceptsIntegersWrittenAsFloatsAndStrings() throws {
        let index = WireSchema.shared.messageIndex("opentelemetry.proto.trace.v1.Span")
        let a = try OTLPJSONDecoder.decode(ByteBuffer(string: #"{"startTimeUnixNano": 1e3, "droppedAttributesCount": "7"}"#), message: index)
        let b = try OTLPJSONDecoder.decode(ByteBuffer(string: #"{"start_time_unix_nano": "1000", "dropped_attributes_count": 7.0}"#), message: index)
        #expect(a == b)
        #expect(String(buffer: try OTLPJSONEncoder.encode(a, message: index)) == #"{"startTimeUnixNano":"1000","droppedAttributesCount":7}"#)
    }
}
