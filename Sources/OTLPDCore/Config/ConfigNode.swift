/// Where a config value was written, for error messages.
public struct ConfigLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// 1-based; 0 when unknown (a value from `--set` or the embedded default).
    public var line: Int

    public init(file: String, line: Int = 0) {
        self.file = file
        self.line = line
    }

    public var description: String {
        self.line > 0 ? "\(self.file):\(self.line)" : self.file
    }
}

/// A config document as a tree, after YAML parsing and `${env:...}`
/// expansion: the raw material each component decodes its settings from.
public struct ConfigNode: Sendable {
    public indirect enum Value: Sendable {
        /// A scalar's text; `quoted` when the YAML wrote it in quotes (a string, never a number or bool).
        case scalar(String, quoted: Bool)
        case mapping([Entry])
        case sequence([ConfigNode])
        case null
    }

    public struct Entry: Sendable {
        public var key: String
        public var value: ConfigNode

        public init(key: String, value: ConfigNode) {
            self.key = key
            self.value = value
        }
    }

    public var value: Value
    public var location: ConfigLocation?

    public init(_ value: Value, location: ConfigLocation? = nil) {
        self.value = value
        self.location = location
    }

    /// The node's content without where it was written: equal for two
    /// configs that say the same, so a reload can keep what did not change.
    public var canonicalText: String {
        switch self.value {
        case .scalar(let text, let quoted): quoted ? "\"\(text)\"" : text
        case .mapping(let entries): "{" + entries.map { "\($0.key): \($0.value.canonicalText)" }.joined(separator: ", ") + "}"
        case .sequence(let items): "[" + items.map(\.canonicalText).joined(separator: ", ") + "]"
        case .null: "null"
        }
    }

    public static func scalar(_ text: String, quoted: Bool = false, location: ConfigLocation? = nil) -> ConfigNode {
        ConfigNode(.scalar(text, quoted: quoted), location: location)
    }

    public static func mapping(_ entries: [(String, ConfigNode)], location: ConfigLocation? = nil) -> ConfigNode {
        ConfigNode(.mapping(entries.map { Entry(key: $0.0, value: $0.1) }), location: location)
    }

    public static let empty = ConfigNode(.mapping([]))

    public var entries: [Entry]? {
        if case .mapping(let entries) = self.value { return entries }
        return nil
    }

    public var items: [ConfigNode]? {
        if case .sequence(let items) = self.value { return items }
        return nil
    }

    public var scalarText: String? {
        if case .scalar(let text, _) = self.value { return text }
        return nil
    }

    public var isNull: Bool {
        if case .null = self.value { return true }
        return false
    }

    public subscript(key: String) -> ConfigNode? {
        self.entries?.last(where: { $0.key == key })?.value
    }

    /// The node at a dotted path of mapping keys, if every step exists.
    public func node(at path: [String]) -> ConfigNode? {
        var current = self
        for key in path {
            guard let next = current[key] else { return nil }
            current = next
        }
        return current
    }

    /// A short name for the node's shape, for "expected X, found Y" messages.
    public var kindName: String {
        switch self.value {
        case .scalar: "a value"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .null: "nothing"
        }
    }
}
