import NIOCore
import OTLPDCore

/// Writes OTLP/JSON straight from protobuf wire bytes, driven by the schema
/// tables: lowerCamelCase keys, trace and span ids as hex, enums as
/// integers, 64-bit integers as decimal strings, other bytes as base64,
/// non-finite doubles as "NaN" / "Infinity" / "-Infinity". Strings are
/// copied through with JSON escaping; invalid UTF-8 becomes U+FFFD so every
/// line stays valid JSON.
///
/// It expects bytes that `WireValidator` accepted; on anything else it drops
/// the malformed resource rather than write broken JSON.
package enum OTLPJSONEncoder {
    /// The key of the top-level list of each signal's request.
    package static func resourceKey(_ signal: Signal) -> StaticString {
        switch signal {
        case .traces: "{\"resourceSpans\":["
        case .metrics: "{\"resourceMetrics\":["
        case .logs: "{\"resourceLogs\":["
        }
    }

    /// Appends one line per resource of `payload`, each a complete
    /// `Export*ServiceRequest` holding that one resource, calling `lineEnd`
    /// after each (where a writer may hand the output on). Returns how many lines.
    @discardableResult
    package static func appendLines(
        _ payload: ByteBuffer, signal: Signal, to sink: inout ByteSink, lineEnd: (inout ByteSink) -> Void = { _ in }
    ) -> Int {
        let schema = WireSchema.shared
        let request = schema.requestIndex(for: signal)
        let resourceField = schema.fields[Int(schema.fieldIndex(message: request, number: 1))]
        let prefix = Self.resourceKey(signal)
        var lines = 0
        WireReader.withReader(payload) { (reader: inout WireReader) in
            while !reader.isAtEnd {
                let lineStart = sink.byteCount
                do throws(WireError) {
                    let (number, wireType) = try reader.readTag()
                    guard number == 1, wireType == 2 else {
                        try reader.skip(wireType: wireType, number: number)
                        continue
                    }
                    var resource = try reader.readLengthDelimited()
                    sink.append(prefix)
                    try Self.writeMessage(&resource, message: resourceField.messageIndex, to: &sink, schema: schema)
                    sink.append("]}\n")
                    lines += 1
                    lineEnd(&sink)
                } catch {
                    sink.removeLast(sink.byteCount - lineStart)
                    return
                }
            }
        }
        return lines
    }

    /// One line per resource, written straight into a `ByteBuffer` (no copy
    /// from a scratch buffer): what the file exporter appends.
    package static func encodeLines(_ payload: ByteBuffer, signal: Signal) -> ByteBuffer {
        Self.encodeLines([payload], signal: signal)
    }

    /// The lines of requests that together are one request, in one buffer.
    package static func encodeLines(_ parts: [ByteBuffer], signal: Signal) -> ByteBuffer {
        // OTLP/JSON is about twice the protobuf size (hex ids, keys).
        let estimate = parts.reduce(0) { $0 + $1.readableBytes } * 5 / 2 + 4096
        var output = ByteBufferAllocator().buffer(capacity: estimate)
        ByteSink.write(into: &output, estimate: estimate) { sink in
            for part in parts { Self.appendLines(part, signal: signal, to: &sink) }
        }
        return output
    }

    /// One message of type `message` as a JSON object.
    package static func encode(_ payload: ByteBuffer, message: Int32) throws(WireError) -> ByteBuffer {
        var sink = ByteSink(capacity: payload.readableBytes * 3 + 16)
        try Self.append(payload, message: message, to: &sink)
        return sink.byteBuffer()
    }

    package static func append(_ payload: ByteBuffer, message: Int32, to sink: inout ByteSink) throws(WireError) {
        let schema = WireSchema.shared
        try WireReader.withReader(payload) { (reader: inout WireReader) throws(WireError) in
            try Self.writeMessage(&reader, message: message, to: &sink, schema: schema)
        }
    }

    static func writeMessage(
        _ reader: inout WireReader,
        message: Int32,
        to sink: inout ByteSink,
        schema: WireSchema,
        depth: Int = 0
    ) throws(WireError) {
        guard depth < WireReader.maxDepth else { throw WireError(.tooDeep) }
        let entry = schema.messageTable[Int(message)]
        sink.append(UInt8(ascii: "{"))
        var wroteField = false
        // Repeated fields already written: their later occurrences were gathered into one array.
        var written: UInt64 = 0
        while !reader.isAtEnd {
            let (number, wireType) = try reader.readTag()
            let index = number <= entry.maxNumber ? schema.numberTable[Int(entry.numberTableStart) + Int(number)] : -1
            guard index >= 0 else {
                try reader.skip(wireType: wireType, number: number)
                continue
            }
            let field = schema.fields[Int(index)]
            if field.isRepeated {
                let bit: UInt64 = 1 << UInt64(number & 63)
                guard written & bit == 0, Self.accepts(field, wireType) else {
                    try reader.skip(wireType: wireType, number: number)
                    continue
                }
                written |= bit
                if wroteField { sink.append(UInt8(ascii: ",")) }
                wroteField = true
                Self.writeKey(field, to: &sink, schema: schema)
                sink.append(UInt8(ascii: "["))
                var first = true
                try Self.writeElements(field, wireType: wireType, &reader, first: &first, to: &sink, schema: schema, depth: depth)
                // The elements that follow at once (the usual case) are taken here, so the
                // main loop does not meet them again; later stray ones are gathered below.
                while !reader.isAtEnd {
                    let mark = reader.mark
                    let (nextNumber, nextType) = try reader.readTag()
                    guard nextNumber == number && Self.accepts(field, nextType) else {
                        reader.rewind(to: mark)
                        break
                    }
                    try Self.writeElements(field, wireType: nextType, &reader, first: &first, to: &sink, schema: schema, depth: depth)
                }
                var scan = reader
                while !scan.isAtEnd {
                    let (laterNumber, laterType) = try scan.readTag()
                    if laterNumber == number && Self.accepts(field, laterType) {
                        try Self.writeElements(field, wireType: laterType, &scan, first: &first, to: &sink, schema: schema, depth: depth)
                    } else {
                        try scan.skip(wireType: laterType, number: laterNumber)
                    }
                }
                sink.append(UInt8(ascii: "]"))
            } else {
                guard wireType == field.kind.wireType.rawValue else {
                    try reader.skip(wireType: wireType, number: number)
                    continue
                }
                if wroteField { sink.append(UInt8(ascii: ",")) }
                wroteField = true
                Self.writeKey(field, to: &sink, schema: schema)
                try Self.writeValue(field, &reader, to: &sink, schema: schema, depth: depth)
            }
        }
        sink.append(UInt8(ascii: "}"))
    }

    @inline(__always)
    private static func accepts(_ field: FieldLayout, _ wireType: UInt8) -> Bool {
        wireType == field.kind.wireType.rawValue || (wireType == 2 && field.kind.isPackable)
    }

    @inline(__always)
    private static func writeKey(_ field: FieldLayout, to sink: inout ByteSink, schema: WireSchema) {
        sink.append(start: schema.keyBytes.baseAddress! + Int(field.jsonKeyStart), count: Int(field.jsonKeyCount))
    }

    /// Writes one occurrence of a repeated field: one element, or all the
    /// elements of a packed run.
    private static func writeElements(
        _ field: FieldLayout,
        wireType: UInt8,
        _ reader: inout WireReader,
        first: inout Bool,
        to sink: inout ByteSink,
        schema: WireSchema,
        depth: Int
    ) throws(WireError) {
        if wireType == 2 && field.kind.isPackable {
            var packed = try reader.readLengthDelimited()
            while !packed.isAtEnd {
                if !first { sink.append(UInt8(ascii: ",")) }
                first = false
                try Self.writeValue(field, &packed, to: &sink, schema: schema, depth: depth)
            }
        } else {
            if !first { sink.append(UInt8(ascii: ",")) }
            first = false
            try Self.writeValue(field, &reader, to: &sink, schema: schema, depth: depth)
        }
    }

    private static func writeValue(
        _ field: FieldLayout,
        _ reader: inout WireReader,
        to sink: inout ByteSink,
        schema: WireSchema,
        depth: Int
    ) throws(WireError) {
        switch field.kind {
        case .message:
            var nested = try reader.readLengthDelimited()
            if field.messageIndex == schema.span {
                let start = sink.byteCount
                if try Self.writeSpan(nested, to: &sink, schema: schema, depth: depth + 1) { return }
                sink.removeLast(sink.byteCount - start)
            }
            if field.messageIndex == schema.keyValue {
                if ScalarKeyValue.writePlainStringAttribute(nested, to: &sink) { return }
                if let keyValue = ScalarKeyValue.read(nested) {
                    Self.write(keyValue, to: &sink)
                    return
                }
            }
            try Self.writeMessage(&nested, message: field.messageIndex, to: &sink, schema: schema, depth: depth + 1)
        case .string:
            let value = try reader.readLengthDelimited()
            Self.writeString(value.bytes, to: &sink)
        case .bytes:
            let value = try reader.readLengthDelimited()
            sink.append(UInt8(ascii: "\""))
            if field.isHexID {
                sink.appendHex(value.bytes)
            } else {
                sink.appendBase64(value.bytes)
            }
            sink.append(UInt8(ascii: "\""))
        case .int32, .enumeration:
            sink.appendDecimal(Int64(Int32(truncatingIfNeeded: try reader.readVarint())))
        case .uint32:
            sink.appendDecimal(UInt64(UInt32(truncatingIfNeeded: try reader.readVarint())))
        case .sint32:
            let raw = UInt32(truncatingIfNeeded: try reader.readVarint())
            sink.appendDecimal(Int64(Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))))
        case .bool:
            if try reader.readVarint() != 0 { sink.append("true") } else { sink.append("false") }
        case .fixed32:
            sink.appendDecimal(UInt64(try reader.readFixed32()))
        case .sfixed32:
            sink.appendDecimal(Int64(Int32(bitPattern: try reader.readFixed32())))
        case .float:
            Self.writeDouble(Double(Float(bitPattern: try reader.readFixed32())), to: &sink)
        case .double:
            Self.writeDouble(Double(bitPattern: try reader.readFixed64()), to: &sink)
        case .int64:
            sink.append(UInt8(ascii: "\""))
            sink.appendDecimal(Int64(bitPattern: try reader.readVarint()))
            sink.append(UInt8(ascii: "\""))
        case .uint64:
            sink.append(UInt8(ascii: "\""))
            sink.appendDecimal(try reader.readVarint())
            sink.append(UInt8(ascii: "\""))
        case .sint64:
            let raw = try reader.readVarint()
            sink.append(UInt8(ascii: "\""))
            sink.appendDecimal(Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1))))
            sink.append(UInt8(ascii: "\""))
        case .fixed64:
            sink.append(UInt8(ascii: "\""))
            sink.appendDecimal(try reader.readFixed64())
            sink.append(UInt8(ascii: "\""))
        case .sfixed64:
            sink.append(UInt8(ascii: "\""))
            sink.appendDecimal(Int64(bitPattern: try reader.readFixed64()))
            sink.append(UInt8(ascii: "\""))
        }
    }

    /// A span, written field by field with literal keys: spans are most of a
    /// trace request. Returns false, having written part of it, for anything
    /// the generic walk must handle (an unknown field, an unexpected wire
    /// type, a repeated field that comes back after others); the caller then
    /// drops what was written and takes the generic walk, which gives the
    /// same JSON.
    private static func writeSpan(_ span: WireReader, to sink: inout ByteSink, schema: WireSchema, depth: Int) throws(WireError) -> Bool {
        guard depth < WireReader.maxDepth else { return false }
        var reader = span
        var repeatedSeen: UInt32 = 0
        var comma = false
        sink.append(UInt8(ascii: "{"))
        while !reader.isAtEnd {
            let (number, wireType) = try reader.readTag()
            if comma { sink.append(UInt8(ascii: ",")) }
            comma = true
            switch (number, wireType) {
            case (1, 2):
                try Self.writeHexField("\"traceId\":\"", &reader, to: &sink)
            case (2, 2):
                try Self.writeHexField("\"spanId\":\"", &reader, to: &sink)
            case (3, 2):
                sink.append("\"traceState\":")
                Self.writeString(try reader.readLengthDelimited().bytes, to: &sink)
            case (4, 2):
                try Self.writeHexField("\"parentSpanId\":\"", &reader, to: &sink)
            case (5, 2):
                sink.append("\"name\":")
                Self.writeString(try reader.readLengthDelimited().bytes, to: &sink)
            case (6, 0):
                sink.append("\"kind\":")
                sink.appendDecimal(Int64(Int32(truncatingIfNeeded: try reader.readVarint())))
            case (7, 1):
                try Self.writeQuotedFixed64("\"startTimeUnixNano\":\"", &reader, to: &sink)
            case (8, 1):
                try Self.writeQuotedFixed64("\"endTimeUnixNano\":\"", &reader, to: &sink)
            case (10, 0):
                sink.append("\"droppedAttributesCount\":")
                sink.appendDecimal(UInt64(UInt32(truncatingIfNeeded: try reader.readVarint())))
            case (12, 0):
                sink.append("\"droppedEventsCount\":")
                sink.appendDecimal(UInt64(UInt32(truncatingIfNeeded: try reader.readVarint())))
            case (14, 0):
                sink.append("\"droppedLinksCount\":")
                sink.appendDecimal(UInt64(UInt32(truncatingIfNeeded: try reader.readVarint())))
            case (15, 2):
                sink.append("\"status\":")
                var status = try reader.readLengthDelimited()
                let start = sink.byteCount
                if try !Self.writeStatus(status, to: &sink) {
                    sink.removeLast(sink.byteCount - start)
                    try Self.writeMessage(&status, message: schema.spanStatus, to: &sink, schema: schema, depth: depth + 1)
                }
            case (16, 5):
                sink.append("\"flags\":")
                sink.appendDecimal(UInt64(try reader.readFixed32()))
            case (9, 2), (11, 2), (13, 2):
                // attributes, events, links: the whole run of one field at once.
                let bit: UInt32 = 1 << number
                guard repeatedSeen & bit == 0 else { return false }
                repeatedSeen |= bit
                switch number {
                case 9:
                    sink.append("\"attributes\":[")
                    try Self.writeRun(of: .attribute, number: number, &reader, to: &sink, schema: schema, depth: depth + 1)
                case 11:
                    sink.append("\"events\":[")
                    try Self.writeRun(of: .event, number: number, &reader, to: &sink, schema: schema, depth: depth + 1)
                default:
                    sink.append("\"links\":[")
                    try Self.writeRun(of: .link, number: number, &reader, to: &sink, schema: schema, depth: depth + 1)
                }
                sink.append(UInt8(ascii: "]"))
            default:
                return false
            }
        }
        sink.append(UInt8(ascii: "}"))
        return true
    }

    /// The messages a span's fast path writes in runs.
    private enum RunElement {
        case attribute, event, link
    }

    /// The elements of a repeated message field, comma-separated: the one
    /// whose tag was just read and those that follow it at once; stops
    /// before any other field. Attributes and events take their fast paths.
    @inline(__always)
    private static func writeRun(
        of kind: RunElement, number: UInt32, _ reader: inout WireReader, to sink: inout ByteSink, schema: WireSchema, depth: Int
    ) throws(WireError) {
        var element = try reader.readLengthDelimited()
        while true {
            switch kind {
            case .attribute:
                if !ScalarKeyValue.writePlainStringAttribute(element, to: &sink) {
                    if let keyValue = ScalarKeyValue.read(element) {
                        Self.write(keyValue, to: &sink)
                    } else {
                        try Self.writeMessage(&element, message: schema.keyValue, to: &sink, schema: schema, depth: depth)
                    }
                }
            case .event:
                let start = sink.byteCount
                if try !Self.writeEvent(element, to: &sink, schema: schema, depth: depth) {
                    sink.removeLast(sink.byteCount - start)
                    try Self.writeMessage(&element, message: schema.spanEvent, to: &sink, schema: schema, depth: depth)
                }
            case .link:
                try Self.writeMessage(&element, message: schema.spanLink, to: &sink, schema: schema, depth: depth)
            }
            let mark = reader.mark
            guard !reader.isAtEnd else { return }
            let (nextNumber, nextType) = try reader.readTag()
            guard nextNumber == number && nextType == 2 else {
                reader.rewind(to: mark)
                return
            }
            sink.append(UInt8(ascii: ","))
            element = try reader.readLengthDelimited()
        }
    }

    /// A span event, as `writeSpan` writes a span: literal keys, and false
    /// (with part written) for anything the generic walk must handle.
    private static func writeEvent(_ event: WireReader, to sink: inout ByteSink, schema: WireSchema, depth: Int) throws(WireError) -> Bool {
        guard depth < WireReader.maxDepth else { return false }
        var reader = event
        var attributesSeen = false
        var comma = false
        sink.append(UInt8(ascii: "{"))
        while !reader.isAtEnd {
            let (number, wireType) = try reader.readTag()
            if comma { sink.append(UInt8(ascii: ",")) }
            comma = true
            switch (number, wireType) {
            case (1, 1):
                try Self.writeQuotedFixed64("\"timeUnixNano\":\"", &reader, to: &sink)
            case (2, 2):
                sink.append("\"name\":")
                Self.writeString(try reader.readLengthDelimited().bytes, to: &sink)
            case (3, 2):
                guard !attributesSeen else { return false }
                attributesSeen = true
                sink.append("\"attributes\":[")
                try Self.writeRun(of: .attribute, number: number, &reader, to: &sink, schema: schema, depth: depth + 1)
                sink.append(UInt8(ascii: "]"))
            case (4, 0):
                sink.append("\"droppedAttributesCount\":")
                sink.appendDecimal(UInt64(UInt32(truncatingIfNeeded: try reader.readVarint())))
            default:
                return false
            }
        }
        sink.append(UInt8(ascii: "}"))
        return true
    }

    /// A span's status (`message`, `code`), as `writeSpan` writes a span.
    private static func writeStatus(_ status: WireReader, to sink: inout ByteSink) throws(WireError) -> Bool {
        var reader = status
        var comma = false
        sink.append(UInt8(ascii: "{"))
        while !reader.isAtEnd {
            let (number, wireType) = try reader.readTag()
            if comma { sink.append(UInt8(ascii: ",")) }
            comma = true
            switch (number, wireType) {
            case (2, 2):
                sink.append("\"message\":")
                Self.writeString(try reader.readLengthDelimited().bytes, to: &sink)
            case (3, 0):
                sink.append("\"code\":")
                sink.appendDecimal(Int64(Int32(truncatingIfNeeded: try reader.readVarint())))
            default:
                return false
            }
        }
        sink.append(UInt8(ascii: "}"))
        return true
    }

    /// `"key":"<hex>"`: the key (with its opening quote) is given.
    @inline(__always)
    private static func writeHexField(_ key: StaticString, _ reader: inout WireReader, to sink: inout ByteSink) throws(WireError) {
        sink.append(key)
        sink.appendHex(try reader.readLengthDelimited().bytes)
        sink.append(UInt8(ascii: "\""))
    }

    /// `"key":"<decimal>"` of a fixed64 (a 64-bit integer as a JSON string).
    @inline(__always)
    private static func writeQuotedFixed64(_ key: StaticString, _ reader: inout WireReader, to sink: inout ByteSink) throws(WireError) {
        sink.append(key)
        sink.appendDecimal(try reader.readFixed64())
        sink.append(UInt8(ascii: "\""))
    }

    /// The generic walk's output for a scalar KeyValue, written directly.
    private static func write(_ keyValue: ScalarKeyValue, to sink: inout ByteSink) {
        sink.append("{\"key\":\"")
        JSONStringEscaper.append(keyValue.key, to: &sink)
        switch keyValue.value {
        case .absent:
            sink.append("\"}")
        case .empty:
            sink.append("\",\"value\":{}}")
        case .string(let value):
            sink.append("\",\"value\":{\"stringValue\":\"")
            JSONStringEscaper.append(value, to: &sink)
            sink.append("\"}}")
        case .bool(let value):
            sink.append(value ? "\",\"value\":{\"boolValue\":true}}" : "\",\"value\":{\"boolValue\":false}}")
        case .int(let value):
            sink.append("\",\"value\":{\"intValue\":\"")
            sink.appendDecimal(value)
            sink.append("\"}}")
        case .double(let value):
            sink.append("\",\"value\":{\"doubleValue\":")
            Self.writeDouble(value, to: &sink)
            sink.append("}}")
        }
    }

    package static func writeDouble(_ value: Double, to sink: inout ByteSink) {
        if value.isNaN {
            sink.append("\"NaN\"")
        } else if value.isInfinite {
            sink.append(value < 0 ? "\"-Infinity\"" : "\"Infinity\"")
        } else if value == value.rounded(.towardZero) && abs(value) < 1e15 {
            // Integral values print without ".0", as the Collector's encoder does.
            sink.appendDecimal(Int64(value))
            if value == 0 && value.sign == .minus {
                sink.removeLast(1)
                sink.append("-0")
            }
        } else {
            sink.append(contentsOf: value.description)
        }
    }

    /// A JSON string literal of the UTF-8 bytes: `"` `\` and control
    /// characters escaped, invalid sequences replaced with U+FFFD.
    package static func writeString(_ bytes: WireBytes, to sink: inout ByteSink) {
        sink.append(UInt8(ascii: "\""))
        JSONStringEscaper.append(bytes, to: &sink)
        sink.append(UInt8(ascii: "\""))
    }
}
