import NIOCore
import OTLPDCore

/// Turns an OTLP/JSON request body into the protobuf wire bytes of the same
/// `Export*ServiceRequest`, driven by the schema tables, so that everything
/// after the receiver sees one format.
///
/// It accepts what the OTLP specification and the OpenTelemetry Collector
/// accept: lowerCamelCase or snake_case keys, trace and span ids as hex,
/// enums as integers or names, 64-bit integers as strings or numbers,
/// non-finite doubles as "NaN" / "Infinity" / "-Infinity", bytes as base64;
/// unknown keys and null values are ignored.
package enum OTLPJSONDecoder {
    package static func decode(_ body: ByteBuffer, signal: Signal) throws(WireError) -> ByteBuffer {
        try Self.decode(body, message: WireSchema.shared.requestIndex(for: signal))
    }

    package static func decode(_ body: ByteBuffer, message: Int32) throws(WireError) -> ByteBuffer {
        var parser = JSONToWire(bytes: Array(body.readableBytesView), schema: WireSchema.shared)
        var sink = ByteSink(capacity: body.readableBytes / 2 + 64)
        try parser.parseDocument(message: message, into: &sink)
        return sink.byteBuffer()
    }
}

/// A recursive-descent JSON parser that writes protobuf as it goes.
private struct JSONToWire {
    let bytes: [UInt8]
    let schema: WireSchema
    var index = 0

    init(bytes: [UInt8], schema: WireSchema) {
        self.bytes = bytes
        self.schema = schema
    }

    mutating func parseDocument(message: Int32, into sink: inout ByteSink) throws(WireError) {
        // A UTF-8 byte order mark is tolerated, as most JSON readers do.
        if self.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { self.index = 3 }
        self.skipWhitespace()
        try self.parseMessage(message, into: &sink, depth: 0)
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw self.error("unexpected data after the JSON object") }
    }

    // MARK: Messages and fields

    mutating func parseMessage(_ message: Int32, into sink: inout ByteSink, depth: Int) throws(WireError) {
        guard depth < WireReader.maxDepth else { throw self.error("objects nested more than \(WireReader.maxDepth) deep") }
        try self.expect(UInt8(ascii: "{"))
        self.skipWhitespace()
        if self.peek() == UInt8(ascii: "}") {
            self.index += 1
            return
        }
        let keys = self.schema.fieldsByKey[Int(message)]
        while true {
            self.skipWhitespace()
            let key = try self.parseString()
            self.skipWhitespace()
            try self.expect(UInt8(ascii: ":"))
            self.skipWhitespace()
            if self.consumeNull() {
                // A null value means the field is absent.
            } else if let fieldIndex = keys[String(decoding: key, as: UTF8.self)] {
                try self.parseField(Int(fieldIndex), into: &sink, depth: depth)
            } else {
                try self.skipValue(depth: depth)
            }
            self.skipWhitespace()
            let separator = try self.next()
            if separator == UInt8(ascii: "}") { return }
            guard separator == UInt8(ascii: ",") else { throw self.error("expected ',' or '}' in an object", back: 1) }
        }
    }

    mutating func parseField(_ fieldIndex: Int, into sink: inout ByteSink, depth: Int) throws(WireError) {
        let field = self.schema.fields[fieldIndex]
        guard field.isRepeated else {
            try self.parseValue(field, fieldIndex: fieldIndex, into: &sink, depth: depth, packed: false)
            return
        }
        try self.expect(UInt8(ascii: "["), what: "a list for \(self.schema.jsonNames[fieldIndex])")
        self.skipWhitespace()
        if self.peek() == UInt8(ascii: "]") {
            self.index += 1
            return
        }
        // Repeated scalars are packed, as proto3 encoders write them.
        let packed = field.kind.isPackable
        var packedStart = 0
        if packed {
            sink.appendVarint(UInt64(field.number) << 3 | 2)
            packedStart = sink.byteCount
        }
        while true {
            self.skipWhitespace()
            if !self.consumeNull() {
                try self.parseValue(field, fieldIndex: fieldIndex, into: &sink, depth: depth, packed: packed)
            }
            self.skipWhitespace()
            let separator = try self.next()
            if separator == UInt8(ascii: "]") { break }
            guard separator == UInt8(ascii: ",") else { throw self.error("expected ',' or ']' in a list", back: 1) }
        }
        if packed {
            sink.insertVarint(UInt64(sink.byteCount - packedStart), at: packedStart)
        }
    }

    /// One value of `field`; with `packed`, without its tag.
    mutating func parseValue(
        _ field: FieldLayout,
        fieldIndex: Int,
        into sink: inout ByteSink,
        depth: Int,
        packed: Bool
    ) throws(WireError) {
        let name = self.schema.jsonNames[fieldIndex]
        if !packed { sink.appendVarint(UInt64(field.number) << 3 | UInt64(field.kind.wireType.rawValue)) }
        switch field.kind {
        case .message:
            let start = sink.byteCount
            try self.parseMessage(field.messageIndex, into: &sink, depth: depth + 1)
            sink.insertVarint(UInt64(sink.byteCount - start), at: start)
        case .string:
            let value = try self.parseString(what: "a string for \(name)")
            sink.appendVarint(UInt64(value.count))
            sink.append(value)
        case .bytes:
            let text = try self.parseString(what: "a string for \(name)")
            let value: [UInt8]?
            if field.isHexID {
                value = Self.hexDecode(text)
            } else {
                value = Self.base64Decode(text)
            }
            guard let value else {
                throw self.error("\(name) is not valid \(field.isHexID ? "hex" : "base64")")
            }
            sink.appendVarint(UInt64(value.count))
            sink.append(value)
        case .bool:
            let token = try self.parseScalarToken()
            switch token {
            case .literal("true"), .string("true"): sink.appendVarint(1)
            case .literal("false"), .string("false"): sink.appendVarint(0)
            default: throw self.error("\(name) must be true or false")
            }
        case .enumeration:
            let token = try self.parseScalarToken()
            if case .string(let text) = token, let value = self.schema.enums[Int(field.enumIndex)].valuesByName[text] {
                sink.appendVarint(UInt64(bitPattern: Int64(value)))
            } else {
                let value = try self.integer(token, in: Int64(Int32.min)...Int64(Int32.max), name: name)
                sink.appendVarint(UInt64(bitPattern: value))
            }
        case .int32:
            let value = try self.integer(try self.parseScalarToken(), in: Int64(Int32.min)...Int64(Int32.max), name: name)
            sink.appendVarint(UInt64(bitPattern: value))
        case .sint32:
            let value = try self.integer(try self.parseScalarToken(), in: Int64(Int32.min)...Int64(Int32.max), name: name)
            let v = Int32(value)
            sink.appendVarint(UInt64(UInt32(bitPattern: (v << 1) ^ (v >> 31))))
        case .sfixed32:
            let value = try self.integer(try self.parseScalarToken(), in: Int64(Int32.min)...Int64(Int32.max), name: name)
            sink.appendLittleEndian32(UInt32(bitPattern: Int32(value)))
        case .uint32:
            let value = try self.unsigned(try self.parseScalarToken(), max: UInt64(UInt32.max), name: name)
            sink.appendVarint(value)
        case .fixed32:
            let value = try self.unsigned(try self.parseScalarToken(), max: UInt64(UInt32.max), name: name)
            sink.appendLittleEndian32(UInt32(value))
        case .int64:
            let value = try self.integer(try self.parseScalarToken(), in: Int64.min...Int64.max, name: name)
            sink.appendVarint(UInt64(bitPattern: value))
        case .sint64:
            let value = try self.integer(try self.parseScalarToken(), in: Int64.min...Int64.max, name: name)
            sink.appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
        case .sfixed64:
            let value = try self.integer(try self.parseScalarToken(), in: Int64.min...Int64.max, name: name)
            sink.appendLittleEndian64(UInt64(bitPattern: value))
        case .uint64:
            sink.appendVarint(try self.unsigned(try self.parseScalarToken(), max: UInt64.max, name: name))
        case .fixed64:
            sink.appendLittleEndian64(try self.unsigned(try self.parseScalarToken(), max: UInt64.max, name: name))
        case .double:
            sink.appendLittleEndian64(try self.double(try self.parseScalarToken(), name: name).bitPattern)
        case .float:
            sink.appendLittleEndian32(Float(try self.double(try self.parseScalarToken(), name: name)).bitPattern)
        }
    }

    // MARK: Scalars

    enum ScalarToken: Equatable {
        case number(String)
        case string(String)
        case literal(String)
    }

    mutating func parseScalarToken() throws(WireError) -> ScalarToken {
        guard let byte = self.peek() else { throw self.error("unexpected end of JSON") }
        if byte == UInt8(ascii: "\"") {
            return .string(String(decoding: try self.parseString(), as: UTF8.self))
        }
        let start = self.index
        while let byte = self.peek(), !Self.isDelimiter(byte) { self.index += 1 }
        guard self.index > start else { throw self.error("expected a value") }
        let text = String(decoding: self.bytes[start..<self.index], as: UTF8.self)
        if text == "true" || text == "false" || text == "null" { return .literal(text) }
        guard byte == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
            throw self.error("unexpected '\(text)'", at: start)
        }
        return .number(text)
    }

    func integer(_ token: ScalarToken, in range: ClosedRange<Int64>, name: String) throws(WireError) -> Int64 {
        let text: String
        switch token {
        case .number(let t), .string(let t): text = t
        case .literal: throw self.error("\(name) must be an integer")
        }
        if let value = Int64(text), range.contains(value) { return value }
        // 1e3 or 5.0 are integers written as floats, which protobuf's JSON readers accept.
        if let value = Double(text), value.rounded() == value, value >= Double(range.lowerBound),
            value <= Double(range.upperBound), abs(value) < 9.2e18
        {
            return Int64(value)
        }
        throw self.error("\(name): '\(text)' is not an integer in range")
    }

    func unsigned(_ token: ScalarToken, max: UInt64, name: String) throws(WireError) -> UInt64 {
        let text: String
        switch token {
        case .number(let t), .string(let t): text = t
        case .literal: throw self.error("\(name) must be an integer")
        }
        if let value = UInt64(text), value <= max { return value }
        if let value = Double(text), value.rounded() == value, value >= 0, value <= Double(max), value < 1.8e19 {
            return UInt64(value)
        }
        throw self.error("\(name): '\(text)' is not an unsigned integer in range")
    }

    func double(_ token: ScalarToken, name: String) throws(WireError) -> Double {
        switch token {
        case .number(let text):
            if let value = Double(text) { return value }
        case .string(let text):
            switch text {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default: if let value = Double(text), value.isFinite { return value }
            }
        case .literal:
            break
        }
        throw self.error("\(name) must be a number")
    }

    static func hexDecode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var i = 0
        while i < text.count {
            guard let high = Self.hexValue(text[i]), let low = Self.hexValue(text[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Standard or URL-safe base64, padding optional.
    static func base64Decode(_ text: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        for byte in text {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero padding of the last group.
        guard bits < 6, padding <= 2 else { return nil }
        return out
    }

    // MARK: Tokens

    mutating func parseString(what: String = "a string") throws(WireError) -> [UInt8] {
        guard self.peek() == UInt8(ascii: "\"") else { throw self.error("expected \(what)") }
        self.index += 1
        var out: [UInt8] = []
        let start = self.index
        // Fast path: no escapes.
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                out.append(contentsOf: self.bytes[start..<self.index])
                self.index += 1
                return out
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            self.index += 1
        }
        out.append(contentsOf: self.bytes[start..<self.index])
        while true {
            guard self.index < self.bytes.count else { throw self.error("unterminated string") }
            let byte = self.bytes[self.index]
            self.index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                guard self.index < self.bytes.count else { throw self.error("unterminated string") }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try self.parseHex4()
                    if (0xD800...0xDBFF).contains(scalar), self.bytes[self.index...].starts(with: [0x5C, 0x75]) {
                        self.index += 2
                        let low = try self.parseHex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            out.append(contentsOf: Self.utf8(0xFFFD))
                            scalar = low
                        }
                    }
                    out.append(contentsOf: Self.utf8((0xD800...0xDFFF).contains(scalar) ? 0xFFFD : scalar))
                default:
                    throw self.error("invalid escape in a string", back: 2)
                }
            default:
                guard byte >= 0x20 else { throw self.error("control character in a string", back: 1) }
                out.append(byte)
            }
        }
    }

    mutating func parseHex4() throws(WireError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Self.hexValue(self.bytes[self.index]) else { throw self.error("invalid \\u escape") }
            value = value << 4 | UInt32(digit)
            self.index += 1
        }
        return value
    }

    static func utf8(_ scalar: UInt32) -> [UInt8] {
        guard let unicode = Unicode.Scalar(scalar) else { return [0xEF, 0xBF, 0xBD] }
        return Array(String(Character(unicode)).utf8)
    }

    /// Skips any JSON value (an unknown field's).
    mutating func skipValue(depth: Int) throws(WireError) {
        guard depth < WireReader.maxDepth else { throw self.error("values nested more than \(WireReader.maxDepth) deep") }
        self.skipWhitespace()
        guard let byte = self.peek() else { throw self.error("unexpected end of JSON") }
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            self.index += 1
            self.skipWhitespace()
            if self.peek() == close {
                self.index += 1
                return
            }
            while true {
                self.skipWhitespace()
                if close == UInt8(ascii: "}") {
                    _ = try self.parseString()
                    self.skipWhitespace()
                    try self.expect(UInt8(ascii: ":"))
                }
                try self.skipValue(depth: depth + 1)
                self.skipWhitespace()
                let separator = try self.next()
                if separator == close { return }
                guard separator == UInt8(ascii: ",") else { throw self.error("expected ',' in a list or object", back: 1) }
            }
        case UInt8(ascii: "\""):
            _ = try self.parseString()
        default:
            _ = try self.parseScalarToken()
        }
    }

    mutating func consumeNull() -> Bool {
        if self.bytes[self.index...].starts(with: [0x6E, 0x75, 0x6C, 0x6C]) {  // "null"
            let after = self.index + 4
            if after == self.bytes.count || Self.isDelimiter(self.bytes[after]) {
                self.index = after
                return true
            }
        }
        return false
    }

    static func isDelimiter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ":"), UInt8(ascii: " "),
            UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
            true
        default:
            false
        }
    }

    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): self.index += 1
            default: return
            }
        }
    }

    func peek() -> UInt8? {
        self.index < self.bytes.count ? self.bytes[self.index] : nil
    }

    mutating func next() throws(WireError) -> UInt8 {
        guard self.index < self.bytes.count else { throw self.error("unexpected end of JSON") }
        defer { self.index += 1 }
        return self.bytes[self.index]
    }

    mutating func expect(_ byte: UInt8, what: String? = nil) throws(WireError) {
        guard self.peek() == byte else {
            throw self.error("expected \(what ?? "'\(Character(Unicode.Scalar(byte)))'")")
        }
        self.index += 1
    }

    func error(_ message: String, back: Int = 0, at position: Int? = nil) -> WireError {
        WireError(.json("invalid OTLP/JSON at byte \(position ?? max(0, self.index - back)): \(message)"))
    }
}

/// The JSON reader's base64, for other readers of base64 text.
enum JSONToWireBase64 {
    static func decode(_ text: [UInt8]) -> [UInt8]? { JSONToWire.base64Decode(text) }
}
