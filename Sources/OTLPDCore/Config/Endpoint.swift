/// A `host:port` to listen on or connect to, as the Collector writes it:
/// `localhost:4317`, `0.0.0.0:4318`, `[::1]:4317`, `:4317` (every interface).
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        let trimmed = text.trimmingWhitespace()
        let hostPart: Substring
        let portPart: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { return nil }
            hostPart = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { return nil }
            hostPart = trimmed[..<colon]
            portPart = trimmed[trimmed.index(after: colon)...]
            guard !hostPart.contains(":") else { return nil }
        }
        guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
        self.host = hostPart.isEmpty ? "0.0.0.0" : String(hostPart)
        self.port = port
    }

    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// Reachable only from this machine (or pod).
    public var isLoopback: Bool {
        self.host == "localhost" || self.host == "::1" || self.host.hasPrefix("127.")
    }
}

extension ConfigReader {
    /// A `host:port` value.
    public func endpoint(_ key: String, default defaultValue: Endpoint) -> Endpoint {
        guard let text = self.string(key) else { return defaultValue }
        guard let endpoint = Endpoint(parsing: text) else {
            self.error(key, "'\(text)' is not an endpoint: write host:port, as in localhost:4317 or 0.0.0.0:4318")
            return defaultValue
        }
        return endpoint
    }
}
