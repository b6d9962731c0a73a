import OTLPDCore

/// `${env:NAME}`, `${NAME}` and `${env:NAME:-default}` in config values, as
/// the Collector expands them; `$$` is a literal `$`. An unset variable
/// without a default becomes empty, with a warning.
public enum EnvironmentExpansion {
    public struct Result {
        public var node: ConfigNode
        public var warnings: [String]
    }

    public static func expand(_ node: ConfigNode, environment: [String: String]) throws(ConfigErrors) -> Result {
        var warnings: [String] = []
        var errors: [ConfigError] = []
        let expanded = Self.expand(node, path: "", environment: environment, warnings: &warnings, errors: &errors)
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return Result(node: expanded, warnings: warnings)
    }

    private static func expand(
        _ node: ConfigNode,
        path: String,
        environment: [String: String],
        warnings: inout [String],
        errors: inout [ConfigError]
    ) -> ConfigNode {
        switch node.value {
        case .null:
            return node
        case .scalar(let text, let quoted):
            guard text.contains("$") else { return node }
            switch Self.expand(text, environment: environment) {
            case .success(let (value, unset)):
                for name in unset {
                    warnings.append("\(node.location.map { "\($0): " } ?? "")\(path): environment variable \(name) is not set; using an empty value")
                }
                return ConfigNode(.scalar(value, quoted: quoted), location: node.location)
            case .failure(let failure):
                errors.append(ConfigError(location: node.location, keyPath: path, message: failure.message))
                return node
            }
        case .mapping(let entries):
            let mapped = entries.map { entry in
                ConfigNode.Entry(
                    key: entry.key,
                    value: Self.expand(entry.value, path: path.isEmpty ? entry.key : "\(path).\(entry.key)", environment: environment, warnings: &warnings, errors: &errors))
            }
            return ConfigNode(.mapping(mapped), location: node.location)
        case .sequence(let items):
            let mapped = items.enumerated().map { index, item in
                Self.expand(item, path: "\(path)[\(index)]", environment: environment, warnings: &warnings, errors: &errors)
            }
            return ConfigNode(.sequence(mapped), location: node.location)
        }
    }

    /// Expands one string; returns it and the names of unset variables.
    static func expand(_ text: String, environment: [String: String]) -> Swift.Result<(String, [String]), ExpansionError> {
        var output = ""
        var unset: [String] = []
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            guard character == "$" else {
                output.append(character)
                index = text.index(after: index)
                continue
            }
            let next = text.index(after: index)
            if next < text.endIndex, text[next] == "$" {
                output.append("$")
                index = text.index(after: next)
                continue
            }
            guard next < text.endIndex, text[next] == "{" else {
                output.append("$")
                index = next
                continue
            }
            guard let close = text[next...].firstIndex(of: "}") else {
                return .failure(ExpansionError(message: "unterminated '${' in '\(text)'"))
            }
            var reference = String(text[text.index(after: next)..<close])
            var defaultValue: String?
            if reference.hasPrefix("env:") { reference.removeFirst(4) }
            if let separator = reference.range(of: ":-") {
                defaultValue = String(reference[separator.upperBound...])
                reference = String(reference[..<separator.lowerBound])
            }
            guard Self.isValidName(reference) else {
                return .failure(ExpansionError(message: "'${\(text[text.index(after: next)..<close])}' is not a valid environment reference; write ${env:NAME} or ${env:NAME:-default}"))
            }
            if let value = environment[reference], !(value.isEmpty && defaultValue != nil) {
                output += value
            } else if let defaultValue {
                output += defaultValue
            } else {
                unset.append(reference)
            }
            index = text.index(after: close)
        }
        return .success((output, unset))
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.properties.isAlphabetic && first.isASCII) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}

public struct ExpansionError: Error {
    public var message: String
}

extension String {
    fileprivate func range(of needle: String) -> Range<String.Index>? {
        var start = self.startIndex
        while start < self.endIndex {
            if self[start...].hasPrefix(needle) {
                return start..<self.index(start, offsetBy: needle.count)
            }
            start = self.index(after: start)
        }
        return nil
    }
}
