import OTLPDCore
import Yams

/// YAML text to `ConfigNode`s, keeping each value's line for error messages.
enum YAMLReader {
    static func parse(_ text: String, file: String) throws(ConfigErrors) -> ConfigNode {
        let node: Yams.Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigErrors([ConfigError(location: ConfigLocation(file: file), keyPath: "", message: "not valid YAML: \(error)")])
        } catch {
            throw ConfigErrors([ConfigError(location: ConfigLocation(file: file), keyPath: "", message: "not valid YAML: \(error)")])
        }
        guard let node else { return ConfigNode(.mapping([]), location: ConfigLocation(file: file)) }
        return Self.convert(node, file: file)
    }

    static func convert(_ node: Yams.Node, file: String) -> ConfigNode {
        let location = ConfigLocation(file: file, line: node.mark?.line ?? 0)
        switch node {
        case .scalar(let scalar):
            // YAML's null: an empty plain value, ~ or null.
            if scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
                return ConfigNode(.null, location: location)
            }
            return ConfigNode(.scalar(scalar.string, quoted: scalar.style != .plain), location: location)
        case .mapping(let mapping):
            var entries: [ConfigNode.Entry] = []
            for (key, value) in mapping {
                let keyText = key.scalar?.string ?? "\(key)"
                var converted = Self.convert(value, file: file)
                // A block mapping or list starts on the line after its key: errors about it point at the key.
                if converted.entries != nil || converted.items != nil || converted.isNull, let line = key.mark?.line {
                    converted.location = ConfigLocation(file: file, line: line)
                }
                if let existing = entries.firstIndex(where: { $0.key == keyText }) {
                    entries[existing].value = converted
                } else {
                    entries.append(ConfigNode.Entry(key: keyText, value: converted))
                }
            }
            return ConfigNode(.mapping(entries), location: location)
        case .sequence(let sequence):
            return ConfigNode(.sequence(sequence.map { Self.convert($0, file: file) }), location: location)
        case .alias:
            // compose() resolves aliases; one left here has no target.
            return ConfigNode(.null, location: location)
        }
    }

    /// Back to YAML text (for `print-config`).
    static func emit(_ node: ConfigNode) -> String {
        do {
            return try Yams.serialize(node: Self.yamsNode(node), indent: 2, width: -1, allowUnicode: true)
        } catch {
            return "# cannot print the config: \(error)\n"
        }
    }

    private static func yamsNode(_ node: ConfigNode) -> Yams.Node {
        switch node.value {
        case .null:
            return Yams.Node("null", Tag(.null))
        case .scalar(let text, let quoted):
            return Yams.Node(text, Tag(quoted ? .str : .implicit), quoted ? .doubleQuoted : Self.plainIsSafe(text) ? .plain : .doubleQuoted)
        case .mapping(let entries):
            return Yams.Node(entries.map { (Yams.Node($0.key), Self.yamsNode($0.value)) })
        case .sequence(let items):
            return Yams.Node(items.map(Self.yamsNode))
        }
    }

    /// Whether a plain scalar prints back as the same text.
    private static func plainIsSafe(_ text: String) -> Bool {
        guard !text.isEmpty, text == text.trimmingCharacters(), !text.contains(": "), !text.contains(" #") else { return false }
        guard let first = text.first, !"!&*{}[],#|>@`\"'%-?:".contains(first) || text == "-" else { return false }
        return !text.contains("\n")
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var slice = Substring(self)
        while slice.first?.isWhitespace == true { slice = slice.dropFirst() }
        while slice.last?.isWhitespace == true { slice = slice.dropLast() }
        return String(slice)
    }
}
