import OTLPDCore
import OTLPDStringOps
import OTLPDWire

extension ConfigReader {
    /// A value as YAML typed it (`value:`, `default_value:`): unquoted
    /// numbers and booleans keep their type, quoted text is a string,
    /// mappings and lists nest. Nil when the key is absent or null.
    func literal(_ key: String) -> AnyValueLiteral? {
        guard let node = self.raw(key) else { return nil }
        return Self.literal(node)
    }

    static func literal(_ node: ConfigNode) -> AnyValueLiteral? {
        switch node.value {
        case .null: return nil
        case .scalar(let text, let quoted):
            if quoted { return .string(text) }
            return Self.typedScalar(text)
        case .sequence(let items): return .array(items.map { Self.literal($0) ?? .empty })
        case .mapping(let entries): return .map(entries.map { ($0.key, Self.literal($0.value) ?? .empty) })
        }
    }

    /// YAML 1.2's core schema, as the Collector's config loader reads plain scalars.
    static func typedScalar(_ text: String) -> AnyValueLiteral? {
        switch text {
        case "null", "Null", "NULL", "~", "": return nil
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        if !digits.isEmpty && digits.allSatisfy(\.isASCIIDigit), let value = Int64(text) { return .int(value) }
        if digits.hasPrefix("0x"), let value = Int64(digits.dropFirst(2), radix: 16) { return .int(text.hasPrefix("-") ? -value : value) }
        if digits.hasPrefix("0o"), let value = Int64(digits.dropFirst(2), radix: 8) { return .int(text.hasPrefix("-") ? -value : value) }
        let isNumber = !digits.isEmpty && digits.allSatisfy { $0.isASCIIDigit || $0 == "." || $0 == "e" || $0 == "E" || $0 == "-" || $0 == "+" }
        if isNumber, digits.first!.isASCIIDigit || digits.first == ".", let value = Double(text) { return .double(value) }
        return .string(text)
    }

    /// A regular expression, compiled now; a bad one is an error at its key path.
    func regex(_ key: String) -> RegexPattern? {
        guard let text = self.string(key) else { return nil }
        return self.compile(text, at: key)
    }

    func compile(_ pattern: String, at key: String) -> RegexPattern? {
        do {
            return try RegexPattern(pattern)
        } catch {
            self.error(key, "'\(pattern)' is not a valid regular expression: \(error)")
            return nil
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { self >= "0" && self <= "9" }
}
