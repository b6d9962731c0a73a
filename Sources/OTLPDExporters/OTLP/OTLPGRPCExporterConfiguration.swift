import OTLPDCore
import OTLPDHTTP
import OTLPDTransport

/// `exporters.otlp_grpc` (and `otlp`): where to forward and how.
public struct OTLPGRPCExporterConfiguration: Sendable {
    public enum WireCompression: String, Sendable, CaseIterable {
        case gzip
        case zstd
        case none
    }

    public var endpoint: Endpoint
    /// Nil: plain text (h2c).
    public var tls: TLSClientConfiguration?
    public var headers: [HTTPHeaderField] = []
    public var compression = WireCompression.gzip
    public var helper = ExporterHelperConfiguration(timeout: .seconds(5))
    public var balancer = Balancer.roundRobin
    /// `auth.authenticator`: the extension that adds credentials to every call.
    public var authenticator: ComponentID?

    /// How calls spread over the addresses the endpoint's name resolves to (gRPC's load-balancing policies).
    public enum Balancer: String, Sendable, CaseIterable {
        /// Every address, in turn: the Collector's default.
        case roundRobin = "round_robin"
        /// The first address only.
        case pickFirst = "pick_first"
    }

    public init(endpoint: Endpoint, tls: TLSClientConfiguration?) {
        self.endpoint = endpoint
        self.tls = tls
    }

    static func decode(_ reader: ConfigReader) -> OTLPGRPCExporterConfiguration {
        defer { reader.finish() }
        let (endpoint, scheme) = ClientTarget.read(reader, defaultPort: nil)
        var configuration = OTLPGRPCExporterConfiguration(endpoint: endpoint, tls: TLSClientConfiguration())
        configuration.tls = ClientTarget.readTLS(reader, scheme: scheme)
        configuration.headers = ClientTarget.readHeaders(reader)
        configuration.compression = reader.choice("compression", default: .gzip)
        configuration.helper = ExporterHelperConfiguration.decode(reader, defaultTimeout: .seconds(5))
        configuration.balancer = reader.choice("balancer_name", default: .roundRobin)
        configuration.authenticator = ClientTarget.readAuthenticator(reader)
        reader.accept("keepalive", "read_buffer_size", "write_buffer_size", "wait_for_ready")
        return configuration
    }
}

/// The parts of a client's config that every forwarding exporter reads the
/// same way: `endpoint`, `tls` and `headers`.
enum ClientTarget {
    /// `auth: { authenticator: NAME }`, as the Collector's clients name theirs.
    static func readAuthenticator(_ reader: ConfigReader) -> ComponentID? {
        guard let auth = reader.child("auth") else { return nil }
        defer { auth.finish() }
        guard let name = auth.string("authenticator") else {
            auth.error("authenticator", "name the extension that adds credentials, as in authenticator: bearertokenauth")
            return nil
        }
        guard let id = ComponentID(parsing: name) else {
            auth.error("authenticator", "'\(name)' is not an extension id")
            return nil
        }
        return id
    }

    /// A forwarding exporter's extensions: its queue's storage and its authenticator.
    static func extensionsUsed(storage: ComponentID?, authenticator: ComponentID?) -> [ExtensionUse] {
        [
            storage.map { ExtensionUse(keyPath: "sending_queue.storage", id: $0, role: .queueStorage) },
            authenticator.map { ExtensionUse(keyPath: "auth.authenticator", id: $0, role: .clientAuthenticator) },
        ].compactMap { $0 }
    }

    /// The client authenticator an exporter names, among the running extensions.
    static func authenticator(_ id: ComponentID?, settings: ComponentSettings) throws -> (any ClientAuthenticator)? {
        guard let id else { return nil }
        guard let authenticator = settings.extensions[id] as? any ClientAuthenticator else {
            throw ClientTargetError(description: "exporter \(settings.id): auth.authenticator names '\(id)', which is not a running authenticator extension")
        }
        return authenticator
    }

    /// The `endpoint`, with an optional `http://` or `https://` (which then
    /// decides plain text or TLS, as the Collector's clients do) or gRPC's
    /// `dns:///`. Reports an endpoint that is missing or not `host:port`.
    static func read(_ reader: ConfigReader, defaultPort: Int?) -> (Endpoint, scheme: String?) {
        guard var text = reader.string("endpoint"), !text.isEmpty else {
            reader.error("endpoint", "a forwarding exporter needs the endpoint of its upstream, as in gateway:4317")
            return (Endpoint(host: "localhost", port: defaultPort ?? 4317), nil)
        }
        var scheme: String?
        for prefix in ["http://", "https://", "dns:///", "dns://"] where text.lowercased().hasPrefix(prefix) {
            text.removeFirst(prefix.count)
            if prefix.hasPrefix("http") { scheme = String(prefix.dropLast(3)) }
        }
        if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
        if let endpoint = Endpoint(parsing: text), endpoint.host != "0.0.0.0" || text.hasPrefix("0.0.0.0") {
            return (endpoint, scheme)
        }
        if let defaultPort, !text.isEmpty, !text.contains(":") {
            return (Endpoint(host: text, port: defaultPort), scheme)
        }
        reader.error("endpoint", "'\(reader.string("endpoint") ?? "")' is not an upstream endpoint: write host:port, as in gateway:4317")
        return (Endpoint(host: "localhost", port: defaultPort ?? 4317), scheme)
    }

    /// The `tls` block; nil for plain text: `tls.insecure: true`, or an `http://` endpoint.
    static func readTLS(_ reader: ConfigReader, scheme: String?) -> TLSClientConfiguration? {
        guard let tls = reader.child("tls") else { return scheme == "http" ? nil : TLSClientConfiguration() }
        defer { tls.finish() }
        let insecure = tls.bool("insecure", default: scheme == "http")
        var configuration = TLSClientConfiguration()
        configuration.caFile = tls.string("ca_file")
        configuration.certificateFile = tls.string("cert_file")
        configuration.keyFile = tls.string("key_file")
        configuration.insecureSkipVerify = tls.bool("insecure_skip_verify", default: false)
        configuration.serverNameOverride = tls.string("server_name_override")
        if (configuration.certificateFile == nil) != (configuration.keyFile == nil) {
            tls.error(configuration.certificateFile == nil ? "key_file" : "cert_file", "mutual TLS needs both cert_file and key_file")
        }
        for key in ["ca_pem", "cert_pem", "key_pem", "min_version", "max_version", "reload_interval", "include_system_ca_certs_pool"] {
            tls.refuse(key, because: "'\(key)' is not supported; use ca_file, cert_file, key_file, insecure_skip_verify, server_name_override")
        }
        if insecure && (configuration.caFile != nil || configuration.certificateFile != nil) {
            tls.error("insecure", "insecure: true sends plain text, so the certificate files would not be used; remove one or the other")
        }
        if scheme == "https" && insecure {
            tls.error("insecure", "the endpoint says https:// but tls.insecure is true; use one of them")
        }
        return insecure ? nil : configuration
    }

    static func readHeaders(_ reader: ConfigReader) -> [HTTPHeaderField] {
        (reader.stringMap("headers") ?? []).map { HTTPHeaderField($0.0.lowercased(), $0.1) }
    }
}

struct ClientTargetError: Error, CustomStringConvertible {
    var description: String
}
