/// Reads one mapping of a config into typed settings. It records every key
/// it was asked for, so that `finish()` can report the keys nobody knows, and
/// records a `ConfigError` (with the key path) for each bad value instead of
/// stopping, so one pass finds every mistake.
public final class ConfigReader {
    public let path: String
    public let node: ConfigNode
    public let diagnostics: ConfigDiagnostics
    private var known: [String] = []

    /// A reader over `node` at `path`. A null node reads as an empty mapping
    /// (YAML `grpc:` with nothing under it means "all defaults").
    public init(_ node: ConfigNode, path: String, diagnostics: ConfigDiagnostics) {
        self.path = path
        self.diagnostics = diagnostics
        if node.isNull {
            self.node = ConfigNode(.mapping([]), location: node.location)
        } else {
            self.node = node
            if node.entries == nil {
                diagnostics.add(at: node, path, "expected a mapping, found \(node.kindName)")
            }
        }
    }

    public func keyPath(_ key: String) -> String {
        self.path.isEmpty ? key : "\(self.path).\(key)"
    }

    /// The raw node under `key`, marking the key as known.
    public func raw(_ key: String) -> ConfigNode? {
        self.known.append(key)
        guard let value = self.node[key], !value.isNull else { return nil }
        return value
    }

    public func contains(_ key: String) -> Bool {
        self.node[key] != nil
    }

    public func error(_ key: String, _ message: String) {
        self.diagnostics.add(at: self.node[key] ?? self.node, self.keyPath(key), message)
    }

    private func scalar(_ key: String, expecting what: String) -> (String, ConfigNode)? {
        guard let value = self.raw(key) else { return nil }
        guard let text = value.scalarText else {
            self.diagnostics.add(at: value, self.keyPath(key), "expected \(what), found \(value.kindName)")
            return nil
        }
        return (text, value)
    }

    public func string(_ key: String) -> String? {
        self.scalar(key, expecting: "a string")?.0
    }

    public func string(_ key: String, default defaultValue: String) -> String {
        self.string(key) ?? defaultValue
    }

    public func bool(_ key: String, default defaultValue: Bool) -> Bool {
        guard let (text, node) = self.scalar(key, expecting: "true or false") else { return defaultValue }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            self.diagnostics.add(at: node, self.keyPath(key), "expected true or false, found '\(text)'")
            return defaultValue
        }
    }

    public func int(_ key: String, default defaultValue: Int, in range: ClosedRange<Int> = Int.min...Int.max) -> Int {
        guard let (text, node) = self.scalar(key, expecting: "an integer") else { return defaultValue }
        guard let value = Int(text.trimmingWhitespace()) else {
            self.diagnostics.add(at: node, self.keyPath(key), "expected an integer, found '\(text)'")
            return defaultValue
        }
        guard range.contains(value) else {
            self.diagnostics.add(at: node, self.keyPath(key), "\(value) is out of range \(Self.describe(range))")
            return defaultValue
        }
        return value
    }

    public func double(_ key: String, default defaultValue: Double) -> Double {
        guard let (text, node) = self.scalar(key, expecting: "a number") else { return defaultValue }
        guard let value = Double(text.trimmingWhitespace()), value.isFinite else {
            self.diagnostics.add(at: node, self.keyPath(key), "expected a number, found '\(text)'")
            return defaultValue
        }
        return value
    }

    public func duration(_ key: String, default defaultValue: Duration, allowZero: Bool = true) -> Duration {
        guard let (text, node) = self.scalar(key, expecting: "a duration") else { return defaultValue }
        guard let value = ConfigUnits.parseDuration(text), value >= .zero else {
            self.diagnostics.add(
                at: node, self.keyPath(key),
                "'\(text)' is not a duration: write a number with a unit, as in 200ms, 5s, 1m or 1h"
            )
            return defaultValue
        }
        if !allowZero && value == .zero {
            self.diagnostics.add(at: node, self.keyPath(key), "must be more than 0")
            return defaultValue
        }
        return value
    }

    /// A size in bytes: a plain integer or a number with KiB, MiB, GiB.
    public func byteSize(_ key: String, default defaultValue: Int) -> Int {
        guard let (text, node) = self.scalar(key, expecting: "a size") else { return defaultValue }
        guard let value = ConfigUnits.parseByteSize(text) else {
            self.diagnostics.add(
                at: node, self.keyPath(key),
                "'\(text)' is not a size: write bytes as an integer, or a number with KiB, MiB or GiB"
            )
            return defaultValue
        }
        return value
    }

    /// One of a fixed set of words.
    public func choice<Choice: RawRepresentable & CaseIterable>(
        _ key: String,
        default defaultValue: Choice
    ) -> Choice where Choice.RawValue == String {
        guard let (text, node) = self.scalar(key, expecting: "a value") else { return defaultValue }
        if let value = Choice(rawValue: text.lowercased()) { return value }
        let allowed = Choice.allCases.map(\.rawValue).joined(separator: ", ")
        self.diagnostics.add(at: node, self.keyPath(key), "'\(text)' is not one of: \(allowed)")
        return defaultValue
    }

    public func stringList(_ key: String) -> [String]? {
        guard let value = self.raw(key) else { return nil }
        guard let items = value.items else {
            if let text = value.scalarText { return [text] }
            self.diagnostics.add(at: value, self.keyPath(key), "expected a list, found \(value.kindName)")
            return nil
        }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard let text = item.scalarText else {
                self.diagnostics.add(at: item, "\(self.keyPath(key))[\(index)]", "expected a value, found \(item.kindName)")
                continue
            }
            result.append(text)
        }
        return result
    }

    /// A mapping of strings to strings, in the order written (`headers`).
    public func stringMap(_ key: String) -> [(String, String)]? {
        guard let value = self.raw(key) else { return nil }
        guard let entries = value.entries else {
            self.diagnostics.add(at: value, self.keyPath(key), "expected a mapping, found \(value.kindName)")
            return nil
        }
        var result: [(String, String)] = []
        for entry in entries {
            guard let text = entry.value.scalarText else {
                self.diagnostics.add(at: entry.value, "\(self.keyPath(key)).\(entry.key)", "expected a value, found \(entry.value.kindName)")
                continue
            }
            result.append((entry.key, text))
        }
        return result
    }

    /// A reader for the mapping under `key`, or nil when the key is absent.
    public func child(_ key: String) -> ConfigReader? {
        self.known.append(key)
        guard let value = self.node[key] else { return nil }
        return ConfigReader(value, path: self.keyPath(key), diagnostics: self.diagnostics)
    }

    /// Marks keys as known without reading them (read elsewhere).
    public func accept(_ keys: String...) {
        self.known.append(contentsOf: keys)
    }

    /// Refuses a key that the format knows but this build does not do yet,
    /// so that nothing configured is silently ignored.
    public func refuse(_ key: String, because reason: String) {
        self.known.append(key)
        if let value = self.node[key] {
            self.diagnostics.add(at: value, self.keyPath(key), reason)
        }
    }

    /// Reports every key of the mapping that no reader asked for.
    public func finish() {
        guard let entries = self.node.entries else { return }
        for entry in entries where !self.known.contains(entry.key) {
            var message = "unknown key '\(entry.key)'"
            let candidates = self.known.filter { !$0.isEmpty }
            if !candidates.isEmpty {
                message += "; known keys here: " + Set(candidates).sorted().joined(separator: ", ")
            }
            self.diagnostics.add(at: entry.value, self.keyPath(entry.key), message)
        }
    }

    private static func describe(_ range: ClosedRange<Int>) -> String {
        if range.upperBound == Int.max { return "\(range.lowerBound) or more" }
        return "\(range.lowerBound)...\(range.upperBound)"
    }
}
