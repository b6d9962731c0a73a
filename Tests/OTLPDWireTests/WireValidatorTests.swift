import NIOCore
import OTLPDCore
import OTLPDWire
import Testing

struct WireValidatorTests {
    @Test("counts items and resources", arguments: [(Signal.traces, 3, 2), (.metrics, 9, 2), (.logs, 3, 1)])
    func countsItems(signal: Signal, items: Int, resources: Int) throws {
        let summary = try WireValidator.validate(try Fixture.buffer("\(signal).binpb"), signal: signal)
        #expect(summary == RequestSummary(itemCount: items, resourceCount: resources))
    }

    @Test func emptyRequestIsValid() throws {
        #expect(try WireValidator.validate(ByteBuffer(), signal: .traces) == RequestSummary(itemCount: 0, resourceCount: 0))
    }

    @Test("every truncation of a valid request is refused or still a valid prefix")
    func truncations() throws {
        let payload = try Fixture.buffer("traces.binpb")
        for length in 0..<payload.readableBytes {
            let prefix = payload.getSlice(at: 0, length: length)!
            // A cut exactly between two top-level fields is itself a valid request.
            if let summary = try? WireValidator.validate(prefix, signal: .traces) {
                #expect(summary.resourceCount <= 2)
            }
        }
        // Cutting inside the first resource is always an error.
        #expect(throws: WireError.self) {
            try WireValidator.validate(payload.getSlice(at: 0, length: 10)!, signal: .traces)
        }
    }

    @Test func refusesGarbage() {
        for garbage: [UInt8] in [[0x0A, 0x05, 0x01], [0xFF, 0xFF, 0xFF], [0x0F], [0x0A, 0x02, 0x12, 0x7F], Array("{\"json\": true}".utf8)] {
            #expect(throws: WireError.self, "\(garbage)") {
                try WireValidator.validate(ByteBuffer(bytes: garbage), signal: .traces)
            }
        }
    }

    @Test func refusesNestingBeyondTheLimit() throws {
        // AnyValue { array_value { values { array_value { ... } } } } 100 deep.
        var inner: [UInt8] = [0x08, 0x01]  // bool_value = true
        for _ in 0..<100 {
            let array: [UInt8] = [0x0A] + varint(inner.count) + inner  // ArrayValue.values
            inner = [0x2A] + varint(array.count) + array  // AnyValue.array_value
        }
        let index = WireSchema.shared.messageIndex("opentelemetry.proto.common.v1.AnyValue")
        #expect(throws: WireError.self) { try WireValidator.validate(ByteBuffer(bytes: inner), message: index) }
    }

    @Test func keepsUnknownFields() throws {
        // An unknown field 99 in the request, then a resource: valid, counted.
        var payload = ByteBuffer(bytes: [0x98, 0x06, 0x01])
        payload.writeBytes([0x0A, 0x00])
        #expect(try WireValidator.validate(payload, signal: .logs) == RequestSummary(itemCount: 0, resourceCount: 1))
    }
}

func varint(_ value: Int) -> [UInt8] {
    var v = UInt64(value)
    var out: [UInt8] = []
    while v >= 0x80 {
        out.append(UInt8(v & 0x7F) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
    return out
}

struct ByteSinkTests {
    @Test func decimalsAtEveryLength() {
        var values: [UInt64] = [0, 1, 9, 10, 99, 100, UInt64.max, UInt64.max - 1]
        var power: UInt64 = 1
        for _ in 0..<19 {
            power *= 10
            values += [power - 1, power, power + 1]
        }
        for value in values {
            var sink = ByteSink()
            sink.appendDecimal(value)
            #expect(sink.string == String(value))
        }
        var negative = ByteSink()
        negative.appendDecimal(Int64.min)
        #expect(negative.string == String(Int64.min))
    }

    @Test func idsAsHexOtherBytesAsBase64() throws {
        let schema = WireSchema.shared
        // Span { trace_id = 1, span_id = 2 } and AnyValue { bytes_value = 7 }.
        let span = ByteBuffer(bytes: [0x0A, 0x04, 0x00, 0x0F, 0xA0, 0xFF, 0x12, 0x02, 0x4B, 0x01])
        #expect(
            String(buffer: try OTLPJSONEncoder.encode(span, message: schema.messageIndex("opentelemetry.proto.trace.v1.Span")))
                == #"{"traceId":"000fa0ff","spanId":"4b01"}"#)
        for (bytes, base64) in [([UInt8]([0x00]), "AA=="), ([0xFF, 0xEE], "/+4="), ([0x01, 0x02, 0x03], "AQID")] {
            let value = ByteBuffer(bytes: [0x3A, UInt8(bytes.count)] + bytes)
            #expect(
                String(buffer: try OTLPJSONEncoder.encode(value, message: schema.messageIndex("opentelemetry.proto.common.v1.AnyValue")))
                    == "{\"bytesValue\":\"\(base64)\"}")
        }
    }
}

struct ItemSplitterTests {
    @Test("every part within the limit, nothing lost, resources and scopes repeated", arguments: Signal.allCases)
    func splitsFixtures(signal: Signal) throws {
        let payload = try Fixture.buffer("\(signal).binpb")
        let total = try WireValidator.validate(payload, signal: signal).itemCount
        for maxItems in 1...total {
            let parts = ItemSplitter.split(payload, signal: signal, maxItems: maxItems)
            #expect(parts.reduce(0) { $0 + $1.itemCount } == total)
            for part in parts {
                #expect(part.itemCount <= maxItems && part.itemCount > 0)
                #expect(try WireValidator.validate(part.payload, signal: signal).itemCount == part.itemCount)
            }
            // The parts' lines hold every record of the original, in order, each with its resource.
            var original = ByteSink()
            DebugFormatter.appendLines(payload, signal: signal, verbosity: .normal, time: "t", to: &original)
            var rejoined = ByteSink()
            for part in parts { DebugFormatter.appendLines(part.payload, signal: signal, verbosity: .normal, time: "t", to: &rejoined) }
            #expect(rejoined.string == original.string, "max \(maxItems)")
        }
    }
}
