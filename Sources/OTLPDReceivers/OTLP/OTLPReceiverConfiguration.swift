import OTLPDCore
import OTLPDTransport

/// `receivers.otlp`: the two protocols and their listeners.
public struct OTLPReceiverConfiguration: Sendable {
    public struct GRPC: Sendable {
        public var endpoint = Endpoint(host: "localhost", port: 4317)
        /// The largest message, after decompression.
        public var maxReceiveMessageBytes = 64 << 20
        public var maxConcurrentStreams = 100
        public var tls: TLSServerConfiguration?
        /// `auth.authenticator`: the extension every request must satisfy.
        public var authenticator: ComponentID?
        /// otlpd's own: connections open at once on this listener.
        public var maxConnections = 4096

        public init() {}
    }

    public struct HTTP: Sendable {
        public var endpoint = Endpoint(host: "localhost", port: 4318)
        public var tracesPath = "/v1/traces"
        public var metricsPath = "/v1/metrics"
        public var logsPath = "/v1/logs"
        /// The largest body, after decompression.
        public var maxRequestBodyBytes = 64 << 20
        public var cors: CORSConfiguration?
        public var tls: TLSServerConfiguration?
        /// `auth.authenticator`: the extension every request must satisfy.
        public var authenticator: ComponentID?
        /// otlpd's own: connections open at once on this listener.
        public var maxConnections = 4096
        /// `read_header_timeout` and `idle_timeout` (as the Collector's HTTP server has them), for HTTP/1.1 on either port.
        public var timeouts = HTTP1Timeouts()

        public init() {}

        public func path(for signal: Signal) -> String {
            switch signal {
            case .traces: self.tracesPath
            case .metrics: self.metricsPath
            case .logs: self.logsPath
            }
        }
    }

    /// nil when the protocol is not configured (then its port is not opened).
    public var grpc: GRPC?
    public var http: HTTP?

    public init(grpc: GRPC? = GRPC(), http: HTTP? = HTTP()) {
        self.grpc = grpc
        self.http = http
    }

    /// Reads `receivers.otlp` (its `protocols` mapping).
    public static func decode(_ reader: ConfigReader) -> OTLPReceiverConfiguration {
        var configuration = OTLPReceiverConfiguration(grpc: nil, http: nil)
        defer { reader.finish() }
        guard let protocols = reader.child("protocols") else {
            reader.error("protocols", "the otlp receiver needs 'protocols' with 'grpc', 'http' or both")
            return configuration
        }
        defer { protocols.finish() }
        if let grpc = protocols.child("grpc") {
            var settings = GRPC()
            settings.endpoint = grpc.endpoint("endpoint", default: settings.endpoint)
            settings.maxReceiveMessageBytes = grpc.int("max_recv_msg_size_mib", default: 64, in: 1...4096) << 20
            settings.maxConcurrentStreams = grpc.int("max_concurrent_streams", default: 100, in: 1...100_000)
            settings.tls = Self.decodeTLS(grpc)
            settings.authenticator = Self.decodeAuth(grpc)
            settings.maxConnections = grpc.int("max_connections", default: settings.maxConnections, in: 1...1_000_000)
            grpc.finish()
            configuration.grpc = settings
        }
        if let http = protocols.child("http") {
            var settings = HTTP()
            settings.endpoint = http.endpoint("endpoint", default: settings.endpoint)
            for (key, keyPath) in [("traces_url_path", \HTTP.tracesPath), ("metrics_url_path", \HTTP.metricsPath), ("logs_url_path", \HTTP.logsPath)] {
                let path = http.string(key, default: settings[keyPath: keyPath])
                if !path.hasPrefix("/") {
                    http.error(key, "'\(path)' must start with '/'")
                } else {
                    settings[keyPath: keyPath] = path
                }
            }
            settings.maxRequestBodyBytes = http.byteSize("max_request_body_size", default: 64 << 20)
            if settings.maxRequestBodyBytes <= 0 { http.error("max_request_body_size", "must be more than 0") }
            if let cors = http.child("cors") {
                settings.cors = CORSConfiguration.decode(cors)
            }
            settings.tls = Self.decodeTLS(http)
            settings.authenticator = Self.decodeAuth(http)
            settings.maxConnections = http.int("max_connections", default: settings.maxConnections, in: 1...1_000_000)
            settings.timeouts.readHeader = http.duration("read_header_timeout", default: settings.timeouts.readHeader, allowZero: false)
            settings.timeouts.idle = http.duration("idle_timeout", default: settings.timeouts.idle, allowZero: false)
            http.finish()
            configuration.http = settings
        }
        if configuration.grpc == nil && configuration.http == nil {
            protocols.error("grpc", "enable at least one of 'grpc' and 'http'")
        }
        // Port 0 lets the system choose: two such listeners get different ports.
        if let grpc = configuration.grpc, let http = configuration.http, grpc.endpoint == http.endpoint, grpc.endpoint.port != 0 {
            protocols.error("http.endpoint", "grpc and http use the same endpoint \(http.endpoint): give each its own port")
        }
        return configuration
    }

    static func decodeTLS(_ reader: ConfigReader) -> TLSServerConfiguration? {
        guard let tls = reader.child("tls") else { return nil }
        defer { tls.finish() }
        let certificate = tls.string("cert_file")
        let key = tls.string("key_file")
        let clientCA = tls.string("client_ca_file")
        guard let certificate, let key else {
            tls.error(certificate == nil ? "cert_file" : "key_file", "TLS needs both cert_file and key_file")
            return nil
        }
        let configuration = TLSServerConfiguration(certificateFile: certificate, keyFile: key, clientCAFile: clientCA)
        // An unreadable file is refused at start, not at the first connection.
        do {
            _ = try configuration.makeContext()
        } catch let error as TLSFileError {
            let key = error.file == certificate ? "cert_file" : error.file == clientCA ? "client_ca_file" : "key_file"
            tls.error(key, error.description)
        } catch {
            tls.error("cert_file", "\(error)")
        }
        return configuration
    }

    /// `auth: { authenticator: NAME }`, as the Collector's servers name theirs.
    static func decodeAuth(_ reader: ConfigReader) -> ComponentID? {
        guard let auth = reader.child("auth") else { return nil }
        defer { auth.finish() }
        guard let name = auth.string("authenticator"), let id = ComponentID(parsing: name) else {
            auth.error("authenticator", "name the extension that checks clients, as in authenticator: bearertokenauth")
            return nil
        }
        return id
    }

    /// The authenticators it names, with where.
    var extensionsUsed: [ExtensionUse] {
        [("protocols.grpc.auth.authenticator", self.grpc?.authenticator), ("protocols.http.auth.authenticator", self.http?.authenticator)]
            .compactMap { keyPath, id in id.map { ExtensionUse(keyPath: keyPath, id: $0, role: .serverAuthenticator) } }
    }
}
