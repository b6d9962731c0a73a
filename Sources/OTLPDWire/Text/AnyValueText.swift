/// A value written in a config (`value:` and `default_value:` of an
/// attribute action), with the type YAML gave it.
package indirect enum AnyValueLiteral: Sendable, Equatable {
    case empty
    case string(String)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case array([AnyValueLiteral])
    case map([(String, AnyValueLiteral)])

    package static func == (lhs: AnyValueLiteral, rhs: AnyValueLiteral) -> Bool {
        switch (lhs, rhs) {
        case (.empty, .empty): true
        case (.string(let a), .string(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b || (a.isNaN && b.isNaN)
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// The content of an `AnyValue` message holding this value.
    package var encoded: [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .empty: break
        case .string(let text): Self.appendField(1, Array(text.utf8), to: &out)
        case .bool(let value): out += [0x10, value ? 1 : 0]
        case .int(let value):
            out.append(0x18)
            Self.appendVarint(UInt64(bitPattern: value), to: &out)
        case .double(let value):
            out.append(0x21)
            let bits = value.bitPattern
            for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        case .array(let values):
            var list: [UInt8] = []
            for value in values { Self.appendField(1, value.encoded, to: &list) }
            Self.appendField(5, list, to: &out)
        case .map(let entries):
            var list: [UInt8] = []
            for (key, value) in entries {
                var keyValue: [UInt8] = []
                Self.appendField(1, Array(key.utf8), to: &keyValue)
                Self.appendField(2, value.encoded, to: &keyValue)
                Self.appendField(1, keyValue, to: &list)
            }
            Self.appendField(6, list, to: &out)
        }
        return out
    }

    static func appendField(_ number: UInt64, _ content: [UInt8], to out: inout [UInt8]) {
        Self.appendVarint(number << 3 | 2, to: &out)
        Self.appendVarint(UInt64(content.count), to: &out)
        out += content
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}

extension AnyValueView {
    /// The value as text, as the Collector's `Value.AsString` writes it:
    /// strings as they are, numbers in Go's JSON style, bytes in base64,
    /// lists and maps as JSON (map keys sorted).
    package var asString: String {
        switch self {
        case .string(let text): return text.string
        case .empty: return ""
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value):
            // Go's encoder refuses NaN and infinities, and AsString gives its error text.
            return value.isFinite ? GoNumberFormat.json(value) : "json: unsupported value: " + GoNumberFormat.json(value)
        case .bytes(let bytes): return Self.base64(bytes)
        case .array, .keyValueList:
            // A list or map holding one of those fails to encode as a whole: AsString gives "".
            var out = ""
            return self.appendJSON(to: &out) ? out : ""
        }
    }

    /// JSON of the value's plain form (`AsRaw` in the Collector); false
    /// when it holds a NaN or an infinity, which JSON cannot carry.
    @discardableResult
    func appendJSON(to out: inout String) -> Bool {
        switch self {
        case .empty: out += "null"
        case .string(let text): GoNumberFormat.appendJSONString(text.string, to: &out)
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value):
            guard value.isFinite else { return false }
            out += GoNumberFormat.json(value)
        case .bytes(let bytes): out += "\"" + Self.base64(bytes) + "\""
        case .array(let content):
            out += "["
            for (index, element) in AnyValueView.elements(of: content).enumerated() {
                if index > 0 { out += "," }
                guard (AnyValueView.read(element) ?? .empty).appendJSON(to: &out) else { return false }
            }
            out += "]"
        case .keyValueList(let content):
            // Go marshals a map with its keys sorted; a repeated key keeps its last value.
            var entries: [String: AnyValueView] = [:]
            for entry in AnyValueView.entries(of: content) {
                entries[entry.key.string] = entry.value.flatMap { AnyValueView.read($0) } ?? .empty
            }
            out += "{"
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                GoNumberFormat.appendJSONString(key, to: &out)
                out += ":"
                guard entries[key]!.appendJSON(to: &out) else { return false }
            }
            out += "}"
        }
        return true
    }

    static func base64(_ bytes: WireBytes) -> String {
        var sink = ByteSink(capacity: (bytes.count + 2) / 3 * 4 + 8)
        sink.appendBase64(bytes)
        return sink.string
    }
}

/// Numbers and strings as Go's `encoding/json` and `strconv` write them,
/// which is what the Collector's users see in converted attributes.
package enum GoNumberFormat {
    /// A float64 as encoding/json writes it: the shortest digits that read
    /// back the same, in plain notation, with an exponent only below 1e-6
    /// or from 1e21 on (`1e-7`, `1e+21`).
    package static func json(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Inf" : "+Inf" }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        let (digits, exponent) = Self.shortestDigits(abs(value))
        let sign = value < 0 ? "-" : ""
        let magnitude = abs(value)
        if magnitude < 1e-6 || magnitude >= 1e21 {
            // d.ddde±x, with no leading zero in the exponent.
            var text = sign + String(digits.first!)
            if digits.count > 1 { text += "." + digits.dropFirst() }
            let power = exponent - 1
            text += power < 0 ? "e-\(-power)" : "e+\(power)"
            return text
        }
        return sign + Self.plain(digits, exponent)
    }

    /// strconv.FormatFloat(value, 'f', -1, 64): the shortest digits, never an exponent.
    package static func fixed(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Inf" : "+Inf" }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        let (digits, exponent) = Self.shortestDigits(abs(value))
        return (value < 0 ? "-" : "") + Self.plain(digits, exponent)
    }

    /// 0.digits × 10^exponent in plain notation.
    static func plain(_ digits: String, _ exponent: Int) -> String {
        if exponent <= 0 {
            return "0." + String(repeating: "0", count: -exponent) + digits
        }
        if exponent >= digits.count {
            return digits + String(repeating: "0", count: exponent - digits.count)
        }
        let split = digits.index(digits.startIndex, offsetBy: exponent)
        return digits[..<split] + "." + digits[split...]
    }

    /// The shortest round-tripping decimal digits of a positive finite
    /// value, and the exponent e with value = 0.d1d2… × 10^e.
    static func shortestDigits(_ value: Double) -> (String, Int) {
        // Swift's description is already the shortest round-trip form; only its layout differs.
        let text = value.description
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var digits = ""
        var pointPosition: Int?
        for character in mantissa {
            if character == "." {
                pointPosition = digits.count
            } else {
                digits.append(character)
            }
        }
        var point = (pointPosition ?? digits.count) + exponent
        // Leading zeros move the point; trailing zeros are not significant.
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            point -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        return (digits, point)
    }

    /// A JSON string as encoding/json writes it (HTML-safe escapes included).
    package static func appendJSONString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                out += "\\u" + Self.hex4(scalar.value)
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + Self.hex4(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    static func hex4(_ value: UInt32) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }

    /// strconv.ParseInt(text, 10, 64).
    package static func parseInt(_ text: String) -> Int64? {
        Int64(text)
    }

    /// strconv.ParseFloat(text, 64): decimal or hex notation, "inf",
    /// "infinity" and "nan" in any case; out of range is an error.
    package static func parseFloat(_ text: String) -> Double? {
        let lowered = text.lowercased()
        let unsigned = lowered.hasPrefix("+") || lowered.hasPrefix("-") ? String(lowered.dropFirst()) : lowered
        if unsigned == "inf" || unsigned == "infinity" { return lowered.hasPrefix("-") ? -.infinity : .infinity }
        if unsigned == "nan" { return .nan }
        guard !text.isEmpty, text.allSatisfy({ !$0.isWhitespace }), let value = Double(text), value.isFinite else { return nil }
        return value
    }
}
