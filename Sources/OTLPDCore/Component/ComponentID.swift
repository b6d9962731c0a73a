/// A component's identity in the config: `type` or `type/name`, as the
/// OpenTelemetry Collector writes it (`otlp`, `attributes/redact`).
public struct ComponentID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var type: String
    public var name: String?

    public init(type: String, name: String? = nil) {
        self.type = type
        self.name = name
    }

    /// Parses `type` or `type/name`; nil when either part is empty.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty, !first.contains(where: \.isWhitespace) else { return nil }
        self.type = String(first)
        if parts.count == 2 {
            guard !parts[1].isEmpty else { return nil }
            self.name = String(parts[1])
        } else {
            self.name = nil
        }
    }

    public var description: String {
        if let name { "\(self.type)/\(name)" } else { self.type }
    }

    public static func < (lhs: ComponentID, rhs: ComponentID) -> Bool {
        lhs.description < rhs.description
    }
}

/// The four kinds of component a config names.
public enum ComponentKind: String, Sendable, CaseIterable {
    case receiver
    case processor
    case exporter
    case `extension`

    /// The config section that holds this kind: `receivers`, `processors`, ...
    public var section: String { self.rawValue + "s" }
}

/// A pipeline's identity: `traces`, or `traces/NAME`.
public struct PipelineID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var signal: Signal
    public var name: String?

    public init(signal: Signal, name: String? = nil) {
        self.signal = signal
        self.name = name
    }

    public init?(parsing text: String) {
        guard let id = ComponentID(parsing: text), let signal = Signal(rawValue: id.type) else { return nil }
        self.signal = signal
        self.name = id.name
    }

    public var description: String {
        if let name { "\(self.signal)/\(name)" } else { self.signal.rawValue }
    }

    public static func < (lhs: PipelineID, rhs: PipelineID) -> Bool {
        lhs.description < rhs.description
    }
}
