/// The shape most attributes have on the wire:
/// `KeyValue { key = 1: string; value = 2: AnyValue { one scalar } }`,
/// recognised in one pass with no table lookups. Anything else (a nested
/// list or map, unknown fields, unusual order) is left to the generic walk,
/// which gives the same result, only slower.
package struct ScalarKeyValue {
    package enum Value {
        /// KeyValue without a value.
        case absent
        /// `AnyValue {}`: an empty value.
        case empty
        case string(WireBytes)
        case bool(Bool)
        case int(Int64)
        case double(Double)
    }

    package var key: WireBytes
    package var value: Value

    /// Reads `reader`'s whole range as a scalar KeyValue, or returns nil.
    @inline(__always)
    package static func read(_ reader: WireReader) -> ScalarKeyValue? {
        var p = reader.position
        let end = reader.end
        guard end - p >= 2, p[0] == 0x0A, p[1] < 0x80 else { return nil }
        let keyLength = Int(p[1])
        p += 2
        guard end - p >= keyLength else { return nil }
        let key = WireBytes(start: p, count: keyLength)
        p += keyLength
        if p == end { return ScalarKeyValue(key: key, value: .absent) }
        guard end - p >= 2, p[0] == 0x12, p[1] < 0x80 else { return nil }
        let valueLength = Int(p[1])
        p += 2
        // The value must end the KeyValue: otherwise a later field could repeat or merge it.
        guard end - p == valueLength else { return nil }
        if valueLength == 0 { return ScalarKeyValue(key: key, value: .empty) }
        let tag = p[0]
        p += 1
        switch tag {
        case 0x0A:  // string_value
            guard p < end else { return nil }
            var length = Int(p[0])
            p += 1
            if length >= 0x80 {
                guard p < end, p[0] < 0x80 else { return nil }
                length = (length & 0x7F) | Int(p[0]) << 7
                p += 1
            }
            guard end - p == length else { return nil }
            return ScalarKeyValue(key: key, value: .string(WireBytes(start: p, count: length)))
        case 0x10, 0x18:  // bool_value, int_value
            var sub = WireReader(position: p, end: end, origin: reader.origin)
            guard let raw = try? sub.readVarint(), sub.isAtEnd else { return nil }
            return ScalarKeyValue(key: key, value: tag == 0x10 ? .bool(raw != 0) : .int(Int64(bitPattern: raw)))
        case 0x21:  // double_value
            guard end - p == 8 else { return nil }
            let bits = UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
            return ScalarKeyValue(key: key, value: .double(Double(bitPattern: bits)))
        default:
            return nil
        }
    }
}

extension ScalarKeyValue {
    /// Whether `reader`'s range is a well-formed `KeyValue` with a string
    /// value (the commonest attribute): what validation needs, without
    /// building anything. False means "check it the general way".
    @inline(__always)
    package static func isStringAttribute(_ reader: WireReader) -> Bool {
        let end = reader.end
        var p = reader.position
        guard end - p >= 2, p[0] == 0x0A, p[1] < 0x80 else { return false }
        p += 2 + Int(p[1])
        guard end - p >= 4, p[0] == 0x12, p[1] < 0x80, Int(p[1]) == end - p - 2, p[2] == 0x0A, p[3] < 0x80 else { return false }
        return p + 4 + Int(p[3]) == end
    }

    /// The commonest attribute of all, a short string with nothing to
    /// escape, written straight as OTLP/JSON with one capacity check.
    /// Returns false for any other shape (the caller takes the general
    /// path, which writes the same text).
    @inline(__always)
    package static func writePlainStringAttribute(_ reader: WireReader, to sink: inout ByteSink) -> Bool {
        let end = reader.end
        var p = reader.position
        // KeyValue.key (field 1), under 128 bytes.
        guard end - p >= 4, p[0] == 0x0A, p[1] < 0x80 else { return false }
        let keyCount = Int(p[1])
        let key = p + 2
        p = key + keyCount
        // KeyValue.value (field 2): AnyValue { string_value (field 1) }, ending the KeyValue.
        guard end - p >= 4, p[0] == 0x12, p[1] < 0x80, Int(p[1]) == end - p - 2, p[2] == 0x0A, p[3] < 0x80 else { return false }
        let valueCount = Int(p[3])
        let value = p + 4
        guard value + valueCount == end,
            JSONStringEscaper.isPlain(key, keyCount), JSONStringEscaper.isPlain(value, valueCount)
        else { return false }
        sink.reserve(keyCount + valueCount + 40)
        sink.append("{\"key\":\"")
        sink.append(start: key, count: keyCount)
        sink.append("\",\"value\":{\"stringValue\":\"")
        sink.append(start: value, count: valueCount)
        sink.append("\"}}")
        return true
    }
}
