import OTLPDCore

#if canImport(Glibc)
import Glibc
#endif

/// Turns the command line's `--config` files and `--set` overrides into one
/// config tree: each file parsed and expanded, the files merged in order
/// (later wins, mappings merge, lists replace), then each `--set` applied.
public enum ConfigLoader {
    public struct Loaded: Sendable {
        public var root: ConfigNode
        /// Things worth a log line that are not errors (unset environment variables).
        public var warnings: [String]
    }

    /// A config from files (or the embedded default when `files` is empty).
    public static func load(
        files: [String],
        sets: [String],
        environment: [String: String] = ConfigLoader.processEnvironment()
    ) throws(ConfigErrors) -> Loaded {
        var sources: [(name: String, text: String)] = []
        if files.isEmpty {
            sources.append(("<embedded default>", DefaultConfig.yaml))
        }
        var errors: [ConfigError] = []
        for file in files {
            guard let text = Self.readFile(file) else {
                errors.append(ConfigError(location: ConfigLocation(file: file), keyPath: "", message: "cannot read the file: \(String(cString: strerror(errno)))"))
                continue
            }
            sources.append((file, text))
        }
        var root = ConfigNode(.mapping([]))
        var warnings: [String] = []
        for source in sources {
            do throws(ConfigErrors) {
                let parsed = try YAMLReader.parse(source.text, file: source.name)
                guard parsed.entries != nil || parsed.isNull else {
                    errors.append(ConfigError(location: parsed.location, keyPath: "", message: "the config must be a mapping (receivers:, exporters:, service:, ...)"))
                    continue
                }
                let expanded = try EnvironmentExpansion.expand(parsed, environment: environment)
                warnings += expanded.warnings
                root = Self.merge(root, expanded.node)
            } catch {
                errors += error.errors
            }
        }
        for set in sets {
            do throws(ConfigErrors) {
                root = try Self.apply(set: set, to: root, environment: environment)
            } catch {
                errors += error.errors
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return Loaded(root: root, warnings: warnings)
    }

    /// Later wins; mappings merge key by key; lists and scalars replace.
    public static func merge(_ base: ConfigNode, _ override: ConfigNode) -> ConfigNode {
        guard case .mapping(var entries) = base.value, case .mapping(let overrides) = override.value else {
            return override
        }
        for entry in overrides {
            if let index = entries.firstIndex(where: { $0.key == entry.key }) {
                entries[index].value = Self.merge(entries[index].value, entry.value)
            } else {
                entries.append(entry)
            }
        }
        return ConfigNode(.mapping(entries), location: base.location ?? override.location)
    }

    /// `--set a.b.c=value` (or `a::b::c=value`, the Collector's newer form);
    /// the value is read as YAML, so `--set x=[a, b]` sets a list.
    static func apply(set: String, to root: ConfigNode, environment: [String: String]) throws(ConfigErrors) -> ConfigNode {
        let location = ConfigLocation(file: "--set \(set)")
        guard let equals = set.firstIndex(of: "=") else {
            throw ConfigErrors([ConfigError(location: location, keyPath: "", message: "expected KEY=VALUE")])
        }
        let keyText = String(set[..<equals])
        let valueText = String(set[set.index(after: equals)...])
        let path = keyText.contains("::") ? keyText.components(separatedBy: "::") : keyText.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.isEmpty, !path.contains(where: \.isEmpty) else {
            throw ConfigErrors([ConfigError(location: location, keyPath: keyText, message: "empty key in the path")])
        }
        var value = try YAMLReader.parse(valueText.isEmpty ? "\"\"" : valueText, file: location.file)
        value = try EnvironmentExpansion.expand(value, environment: environment).node
        value.location = location
        // Build {a: {b: {c: value}}} and merge it like one more file.
        var node = value
        for key in path.reversed() {
            node = ConfigNode(.mapping([ConfigNode.Entry(key: key, value: node)]), location: location)
        }
        return Self.merge(root, node)
    }

    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count {
                if ferror(file) != 0 { return nil }
                break
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: print-config

    /// The merged, expanded config as YAML, with secrets replaced.
    public static func printable(_ root: ConfigNode) -> String {
        YAMLReader.emit(Self.redact(root, key: ""))
    }

    /// Keys whose values are secrets: tokens, passwords, API keys, and auth headers.
    static func isSecret(_ key: String) -> Bool {
        let lower = key.lowercased()
        return ["token", "password", "secret", "api_key", "apikey", "api-key", "authorization", "bearer"].contains { lower.contains($0) }
    }

    static func redact(_ node: ConfigNode, key: String) -> ConfigNode {
        switch node.value {
        case .scalar:
            return Self.isSecret(key) ? ConfigNode(.scalar("[REDACTED]", quoted: true), location: node.location) : node
        case .mapping(let entries):
            return ConfigNode(.mapping(entries.map { ConfigNode.Entry(key: $0.key, value: Self.redact($0.value, key: $0.key)) }), location: node.location)
        case .sequence(let items):
            return ConfigNode(.sequence(items.map { Self.redact($0, key: key) }), location: node.location)
        case .null:
            return node
        }
    }
}

extension String {
    fileprivate func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var index = self.startIndex
        while index < self.endIndex {
            if self[index...].hasPrefix(separator) {
                parts.append(current)
                current = ""
                index = self.index(index, offsetBy: separator.count)
            } else {
                current.append(self[index])
                index = self.index(after: index)
            }
        }
        parts.append(current)
        return parts
    }
}
