import OTLPDCore
import OTLPDStringOps
import OTLPDWire

/// One entry of an `actions:` (or the resource processor's `attributes:`)
/// list, compiled at config load: keys and values already in wire form,
/// patterns already compiled.
final class AttributeAction: Sendable {
    enum Operation: String, Sendable, CaseIterable {
        case insert, update, upsert, delete, hash, extract, convert
    }

    enum ConvertedType: String, Sendable, CaseIterable {
        case int, double, string
    }

    // A class: the list is walked for every span, and a reference is one
    // retain where a struct of references would be one per field.
    let operation: Operation
    let key: WireText?
    /// `value`, as `AnyValue` content.
    let value: WireText?
    let fromAttribute: WireText?
    /// `default_value`: used when `from_attribute` finds nothing.
    let defaultValue: WireText?
    let pattern: RegexPattern?
    /// extract: the attribute each capture group 1...n writes.
    let groupKeys: [WireText]
    let convertedType: ConvertedType?
    // The same bytes as plain values (the texts above keep them alive), so
    // the per-span loop reads them without reference counting.
    let keyBytes: WireBytes?
    let valueBytes: WireBytes?
    let fromBytes: WireBytes?
    let defaultBytes: WireBytes?

    init(
        operation: Operation, key: WireText?, value: WireText? = nil, fromAttribute: WireText? = nil, defaultValue: WireText? = nil,
        pattern: RegexPattern? = nil, groupKeys: [WireText] = [], convertedType: ConvertedType? = nil
    ) {
        self.operation = operation
        self.key = key
        self.value = value
        self.fromAttribute = fromAttribute
        self.defaultValue = defaultValue
        self.pattern = pattern
        self.groupKeys = groupKeys
        self.convertedType = convertedType
        self.keyBytes = key?.bytes
        self.valueBytes = value?.bytes
        self.fromBytes = fromAttribute?.bytes
        self.defaultBytes = defaultValue?.bytes
    }
}

/// An ordered list of attribute actions with the Collector's semantics;
/// each action sees what the ones before it did.
struct AttributeActions: Sendable {
    var actions: [AttributeAction] = []

    /// The most capture groups any pattern has, to size a `RegexScratch`.
    var captureGroups: Int {
        self.actions.map { $0.pattern?.groupNames.count ?? 0 }.max() ?? 0
    }

    /// Reads the list under `key`; every mistake becomes a config error at its action's path.
    static func decode(_ reader: ConfigReader, key: String) -> AttributeActions {
        guard let node = reader.raw(key) else {
            reader.error(key, "at least one action is needed")
            return AttributeActions()
        }
        guard let items = node.items, !items.isEmpty else {
            reader.diagnostics.add(at: node, reader.keyPath(key), node.items == nil ? "expected a list of actions, found \(node.kindName)" : "at least one action is needed")
            return AttributeActions()
        }
        var actions = AttributeActions()
        for (index, item) in items.enumerated() {
            let action = ConfigReader(item, path: "\(reader.keyPath(key))[\(index)]", diagnostics: reader.diagnostics)
            if let decoded = Self.decodeAction(action) { actions.actions.append(decoded) }
            action.finish()
        }
        return actions
    }

    static func decodeAction(_ reader: ConfigReader) -> AttributeAction? {
        let keyText = reader.string("key")
        let value = reader.literal("value")
        let defaultValue = reader.literal("default_value")
        let fromAttribute = reader.string("from_attribute")
        let patternText = reader.string("pattern")
        let convertedText = reader.string("converted_type")
        reader.refuse("from_context", because: "from_context (client metadata) is not supported by this build")
        guard let operationText = reader.string("action") else {
            reader.error("action", "each action needs 'action': one of \(Self.operationNames)")
            return nil
        }
        guard let operation = AttributeAction.Operation(rawValue: operationText.lowercased()) else {
            reader.error("action", "'\(operationText)' is not one of: \(Self.operationNames)")
            return nil
        }
        let key = keyText.flatMap { $0.isEmpty ? nil : WireText($0) }
        let usesPattern = operation == .delete || operation == .hash || operation == .extract
        if patternText != nil && !usesPattern {
            reader.error("pattern", "'\(operation.rawValue)' does not use 'pattern' (delete, hash and extract do)")
        }
        if convertedText != nil && operation != .convert {
            reader.error("converted_type", "only 'convert' uses 'converted_type'")
        }
        let isSetter = operation == .insert || operation == .update || operation == .upsert
        if !isSetter {
            for (name, present) in [("value", value != nil), ("from_attribute", fromAttribute != nil), ("default_value", defaultValue != nil)] where present {
                reader.error(name, "'\(operation.rawValue)' does not take a value; only insert, update and upsert do")
            }
        }
        switch operation {
        case .insert, .update, .upsert:
            if key == nil { reader.error("key", "'\(operation.rawValue)' needs the 'key' it sets") }
            if value != nil && fromAttribute != nil {
                reader.error("from_attribute", "give either 'value' or 'from_attribute', not both")
            }
            if value == nil && fromAttribute == nil && defaultValue == nil {
                reader.error("action", "'\(operation.rawValue)' needs 'value', 'from_attribute' or 'default_value'")
            }
            return AttributeAction(
                operation: operation, key: key, value: value.map { WireText($0.encoded) }, fromAttribute: fromAttribute.map { WireText($0) },
                defaultValue: defaultValue.map { WireText($0.encoded) })
        case .delete, .hash:
            if key == nil && patternText == nil {
                reader.error("key", "'\(operation.rawValue)' needs a 'key', a 'pattern' matching keys, or both")
            }
            return AttributeAction(operation: operation, key: key, pattern: patternText.flatMap { reader.compile($0, at: "pattern") })
        case .extract:
            if key == nil { reader.error("key", "'extract' needs the 'key' whose value it reads") }
            guard let patternText else {
                reader.error("pattern", "'extract' needs a 'pattern' with named groups, such as '^(?P<host>[^/]+)'")
                return nil
            }
            guard let pattern = reader.compile(patternText, at: "pattern") else { return nil }
            if pattern.groupNames.isEmpty {
                reader.error("pattern", "'\(patternText)' has no named groups: each group names the attribute it writes, as in (?P<name>...)")
            } else if pattern.groupNames.contains(where: { $0 == nil }) {
                reader.error("pattern", "every group of '\(patternText)' needs a name, as in (?P<name>...); write (?:...) for a group that only groups")
            }
            return AttributeAction(operation: operation, key: key, pattern: pattern, groupKeys: pattern.groupNames.map { WireText($0 ?? "") })
        case .convert:
            if key == nil { reader.error("key", "'convert' needs the 'key' it converts") }
            guard let convertedText else {
                reader.error("converted_type", "'convert' needs 'converted_type': int, double or string")
                return nil
            }
            guard let converted = AttributeAction.ConvertedType(rawValue: convertedText) else {
                reader.error("converted_type", "'\(convertedText)' is not one of: int, double, string")
                return nil
            }
            return AttributeAction(operation: operation, key: key, convertedType: converted)
        }
    }

    static let operationNames = AttributeAction.Operation.allCases.map(\.rawValue).joined(separator: ", ")

    /// The actions as edits by key, when each is an insert, update or upsert
    /// of a literal value or a delete by key, and no key is named twice.
    var keyedEdits: KeyedAttributeEdits? {
        var edits: [(key: WireBytes, kind: KeyedAttributeEdits.Kind, value: WireBytes?)] = []
        for action in self.actions {
            guard let key = action.keyBytes else { return nil }
            switch action.operation {
            case .insert, .update, .upsert:
                guard let value = action.valueBytes, action.fromBytes == nil else { return nil }
                edits.append((key, action.operation == .insert ? .insert : action.operation == .update ? .update : .upsert, value))
            case .delete:
                guard action.pattern == nil else { return nil }
                edits.append((key, .delete, nil))
            case .hash, .extract, .convert:
                return nil
            }
        }
        return KeyedAttributeEdits(edits)
    }

    // MARK: Applying

    func apply(to attributes: inout AttributeList, scratch: RegexScratch) {
        for action in self.actions {
            switch action.operation {
            case .insert:
                guard let key = action.keyBytes, attributes.firstIndex(of: key) == nil,
                    let value = Self.source(action, attributes)
                else { continue }
                attributes.append(key: key, value: value)
            case .update:
                guard let key = action.keyBytes, let index = attributes.firstIndex(of: key),
                    let value = Self.source(action, attributes)
                else { continue }
                attributes.setValue(at: index, to: value)
            case .upsert:
                guard let key = action.keyBytes, let value = Self.source(action, attributes) else { continue }
                attributes.put(key: key, value: value)
            case .delete:
                if let key = action.keyBytes, let index = attributes.firstIndex(of: key) {
                    attributes.remove(at: index)
                }
                if let pattern = action.pattern {
                    var index = attributes.count - 1
                    while index >= 0 {
                        if pattern.matches(attributes.key(at: index), scratch: scratch) { attributes.remove(at: index) }
                        index -= 1
                    }
                }
            case .hash:
                if let key = action.keyBytes, let index = attributes.firstIndex(of: key) {
                    Self.hash(at: index, &attributes)
                }
                if let pattern = action.pattern {
                    for index in 0..<attributes.count where pattern.matches(attributes.key(at: index), scratch: scratch) {
                        Self.hash(at: index, &attributes)
                    }
                }
            case .extract:
                guard let key = action.keyBytes, let pattern = action.pattern, let index = attributes.firstIndex(of: key),
                    case .string(let text)? = attributes.value(at: index),
                    let captures = pattern.captures(text, scratch: scratch)
                else { continue }
                for (group, capture) in zip(action.groupKeys, captures) {
                    attributes.put(key: group.bytes, value: AnyValueEncoding.string(capture, in: attributes.arena))
                }
            case .convert:
                guard let key = action.keyBytes, let type = action.convertedType, let index = attributes.firstIndex(of: key),
                    let value = attributes.value(at: index),
                    let converted = Self.convert(value, to: type, arena: attributes.arena)
                else { continue }
                attributes.setValue(at: index, to: converted)
            }
        }
    }

    /// `value`, else the `from_attribute`'s value, else `default_value`.
    @inline(__always)
    static func source(_ action: AttributeAction, _ attributes: AttributeList) -> WireBytes? {
        if let value = action.valueBytes { return value }
        if let from = action.fromBytes, let index = attributes.firstIndex(of: from) {
            return attributes.rawValue(at: index) ?? .empty
        }
        return action.defaultBytes
    }

    /// The value's SHA-256 in hex, over the bytes the Collector hashes:
    /// a string's UTF-8, one byte for a bool, eight little-endian bytes for
    /// a number. Other kinds (and the empty string) become "".
    static func hash(at index: Int, _ attributes: inout AttributeList) {
        let arena = attributes.arena
        let input: WireBytes?
        switch attributes.value(at: index) {
        case .string(let text)? where text.count > 0: input = text
        case .bool(let value)?: input = AnyValueEncoding.copy([value ? 1 : 0], in: arena)
        case .int(let value)?: input = AnyValueEncoding.copy(Self.littleEndian(UInt64(bitPattern: value)), in: arena)
        case .double(let value)?: input = AnyValueEncoding.copy(Self.littleEndian(value.bitPattern), in: arena)
        default: input = nil
        }
        let hashed = input.map { AnyValueEncoding.sha256Hex(of: $0, in: arena) } ?? AnyValueEncoding.string(WireBytes.empty, in: arena)
        attributes.setValue(at: index, to: hashed)
    }

    static func littleEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// The converted value, or nil to leave it as it is (already that type, or not convertible).
    static func convert(_ value: AnyValueView, to type: AttributeAction.ConvertedType, arena: ScratchArena) -> WireBytes? {
        switch (type, value) {
        case (.string, .string): return nil
        case (.string, _): return AnyValueEncoding.string(value.asString, in: arena)
        case (.int, .double(let number)): return AnyValueEncoding.int(Self.truncate(number), in: arena)
        case (.int, .bool(let flag)): return AnyValueEncoding.int(flag ? 1 : 0, in: arena)
        case (.int, .string(let text)): return GoNumberFormat.parseInt(text.string).map { AnyValueEncoding.int($0, in: arena) }
        case (.double, .int(let number)): return AnyValueEncoding.double(Double(number), in: arena)
        case (.double, .bool(let flag)): return AnyValueEncoding.double(flag ? 1 : 0, in: arena)
        case (.double, .string(let text)): return GoNumberFormat.parseFloat(text.string).map { AnyValueEncoding.double($0, in: arena) }
        default: return nil
        }
    }

    /// Go's int64(float64): toward zero; out of range (and NaN) gives the minimum, as amd64 does.
    static func truncate(_ number: Double) -> Int64 {
        guard number.isFinite, number >= -9.223_372_036_854_775_808e18, number < 9.223_372_036_854_775_808e18 else { return .min }
        return Int64(number.rounded(.towardZero))
    }
}
