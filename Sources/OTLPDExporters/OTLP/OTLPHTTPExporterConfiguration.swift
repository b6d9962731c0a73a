import OTLPDCore
import OTLPDHTTP
import OTLPDTransport

/// `exporters.otlp_http` (and `otlphttp`): where to forward and how.
public struct OTLPHTTPExporterConfiguration: Sendable {
    public enum Encoding: String, Sendable, CaseIterable {
        case proto
        case json
    }

    /// One signal's target: where to connect and the path to POST to.
    public struct Target: Sendable, Equatable {
        public var endpoint: Endpoint
        public var path: String
        public var secure: Bool

        public init(endpoint: Endpoint, path: String, secure: Bool) {
            self.endpoint = endpoint
            self.path = path
            self.secure = secure
        }
    }

    public var targets: [Signal: Target]
    /// Nil: plain text.
    public var tls: TLSClientConfiguration?
    public var headers: [HTTPHeaderField] = []
    /// `auth.authenticator`: the extension that adds credentials to every request.
    public var authenticator: ComponentID?
    public var encoding = Encoding.proto
    public var compression = OTLPGRPCExporterConfiguration.WireCompression.gzip
    public var helper = ExporterHelperConfiguration(timeout: .seconds(30))

    static func decode(_ reader: ConfigReader) -> OTLPHTTPExporterConfiguration {
        defer { reader.finish() }
        var targets: [Signal: Target] = [:]
        let base = reader.string("endpoint").flatMap { Self.parseURL($0) }
        if let text = reader.string("endpoint"), base == nil {
            reader.error("endpoint", "'\(text)' is not a URL: write http://host:port or https://host:port, as in http://gateway:4318")
        }
        for signal in Signal.allCases {
            let key = "\(signal.rawValue)_endpoint"
            if let text = reader.string(key) {
                guard let target = Self.parseURL(text), !target.path.isEmpty, target.path != "/" else {
                    reader.error(key, "'\(text)' is not a URL with a path, as in http://gateway:4318/v1/\(signal.rawValue)")
                    continue
                }
                targets[signal] = target
            } else if var target = base {
                // The base's path, then the signal's OTLP/HTTP path, as the Collector appends it.
                target.path = (target.path.hasSuffix("/") ? String(target.path.dropLast()) : target.path) + "/v1/\(signal.rawValue)"
                targets[signal] = target
            }
        }
        if base == nil && targets.isEmpty && reader.string("endpoint") == nil {
            reader.error("endpoint", "an otlp_http exporter needs an endpoint URL, as in http://gateway:4318 (or traces_endpoint etc.)")
        }
        let anySecure = targets.values.contains { $0.secure }
        var configuration = OTLPHTTPExporterConfiguration(targets: targets, tls: nil)
        configuration.tls = ClientTarget.readTLS(reader, scheme: anySecure ? "https" : "http")
        if configuration.tls != nil && targets.values.contains(where: { !$0.secure }) && reader.contains("tls") {
            // An http:// URL with a tls block that is not insecure: the URL's scheme decides, as for the Collector.
            configuration.tls = anySecure ? configuration.tls : nil
        }
        configuration.headers = ClientTarget.readHeaders(reader)
        configuration.authenticator = ClientTarget.readAuthenticator(reader)
        configuration.encoding = reader.choice("encoding", default: .proto)
        configuration.compression = reader.choice("compression", default: .gzip)
        configuration.helper = ExporterHelperConfiguration.decode(reader, defaultTimeout: .seconds(30))
        reader.accept("read_buffer_size", "write_buffer_size", "max_idle_conns", "max_idle_conns_per_host", "idle_conn_timeout", "http2_read_idle_timeout", "http2_ping_timeout")
        return configuration
    }

    package init(targets: [Signal: Target], tls: TLSClientConfiguration?) {
        self.targets = targets
        self.tls = tls
    }

    /// `http://host:port/path` or `https://...`; the port defaults to the scheme's.
    package static func parseURL(_ text: String) -> Target? {
        let lower = text.lowercased()
        let secure: Bool
        var rest: Substring
        if lower.hasPrefix("http://") {
            secure = false
            rest = text.dropFirst(7)
        } else if lower.hasPrefix("https://") {
            secure = true
            rest = text.dropFirst(8)
        } else {
            return nil
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = String(rest[..<slash])
        let path = String(rest[slash...])
        rest = Substring(hostPort)
        let endpoint: Endpoint?
        if let parsed = Endpoint(parsing: hostPort), !hostPort.hasPrefix(":") {
            endpoint = parsed
        } else if !hostPort.isEmpty, !hostPort.contains(":") || (hostPort.hasPrefix("[") && hostPort.hasSuffix("]")) {
            let host = hostPort.hasPrefix("[") ? String(hostPort.dropFirst().dropLast()) : hostPort
            endpoint = Endpoint(host: host, port: secure ? 443 : 80)
        } else {
            endpoint = nil
        }
        guard let endpoint else { return nil }
        return Target(endpoint: endpoint, path: path, secure: secure)
    }
}
