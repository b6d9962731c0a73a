/// One thing wrong with a config: the file, the key path (dotted, as
/// `--set` spells it) and what is wrong.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public var location: ConfigLocation?
    public var keyPath: String
    public var message: String

    public init(location: ConfigLocation?, keyPath: String, message: String) {
        self.location = location
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var text = ""
        if let location { text += "\(location): " }
        if !self.keyPath.isEmpty { text += "\(self.keyPath): " }
        return text + self.message
    }
}

/// All the errors of one load, so a user sees every mistake at once.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) {
        self.errors = errors
    }

    public var description: String {
        self.errors.map(\.description).joined(separator: "\n")
    }
}

/// Collects errors while a config is decoded; decoding goes on after an
/// error so that the whole document is checked.
public final class ConfigDiagnostics {
    public private(set) var errors: [ConfigError] = []

    public init() {}

    public func add(_ error: ConfigError) {
        self.errors.append(error)
    }

    public func add(at node: ConfigNode?, _ keyPath: String, _ message: String) {
        self.errors.append(ConfigError(location: node?.location, keyPath: keyPath, message: message))
    }

    public var isEmpty: Bool { self.errors.isEmpty }

    /// Throws every collected error, if there is one.
    public func check() throws(ConfigErrors) {
        if !self.errors.isEmpty { throw ConfigErrors(self.errors) }
    }
}
