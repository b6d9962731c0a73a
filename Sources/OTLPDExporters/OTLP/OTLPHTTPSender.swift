import Logging
import NIOCore
import OTLPDCompression
import OTLPDCore
import OTLPDHTTP
import OTLPDTransport
import OTLPDWire

/// One OTLP/HTTP POST per attempt, on keep-alive HTTP/1.1 connections:
/// protobuf bodies go out as the batch's parts, uncopied, unless
/// compressed or encoded as JSON.
package final class OTLPHTTPSender: UpstreamSender {
    let configuration: OTLPHTTPExporterConfiguration
    /// One client per distinct upstream address.
    private let clients: [Endpoint: HTTP1Client]
    private let baseHeaders: [HTTPHeaderField]
    private let coding: ContentCoding
    /// Adds `authorization` to each request (read each time: a reload may change the token).
    private let authenticator: (any ClientAuthenticator)?

    package init(configuration: OTLPHTTPExporterConfiguration, settings: ComponentSettings) throws {
        self.configuration = configuration
        self.authenticator = try ClientTarget.authenticator(configuration.authenticator, settings: settings)
        // Over TLS the upstream may choose HTTP/2 (ALPN): then one connection carries every request.
        let tls = try configuration.tls?.makeContext(protocols: ["h2", "http/1.1"])
        var clients: [Endpoint: HTTP1Client] = [:]
        let logger = settings.logger
        for target in configuration.targets.values where clients[target.endpoint] == nil {
            let endpoint = target.endpoint
            clients[target.endpoint] = HTTP1Client(
                host: target.endpoint.host, port: target.endpoint.port, tls: target.secure ? tls : nil,
                serverName: configuration.tls?.serverNameOverride, group: settings.eventLoopGroup,
                choseHTTP2: { logger.info("the upstream chose HTTP/2 (TLS ALPN): requests share one connection", metadata: ["upstream": "\(endpoint)"]) })
        }
        self.clients = clients
        switch configuration.compression {
        case .gzip: self.coding = .gzip
        case .zstd: self.coding = .zstd
        case .none: self.coding = .identity
        }
        var headers = [
            HTTPHeaderField("content-type", configuration.encoding == .json ? "application/json" : "application/x-protobuf"),
            HTTPHeaderField("user-agent", "otlpd/\(settings.telemetry.serviceVersion.isEmpty ? "dev" : settings.telemetry.serviceVersion)"),
        ]
        if self.coding != .identity { headers.append(HTTPHeaderField("content-encoding", self.coding.rawValue)) }
        headers += configuration.headers
        self.baseHeaders = headers
    }

    package var upstream: String {
        Set(self.configuration.targets.values.map { $0.endpoint.description }).sorted().joined(separator: ",")
    }

    package func shutdown() async {
        for client in self.clients.values { await client.shutdown() }
    }

    package func send(_ batch: TelemetryBatch, deadline: ContinuousClock.Instant) async -> AttemptOutcome {
        guard let target = self.configuration.targets[batch.signal], let client = self.clients[target.endpoint] else {
            return .failed(AttemptFailure(retryable: false, status: "no endpoint", message: "no endpoint for \(batch.signal)"))
        }
        let body: [ByteBuffer]
        do {
            body = try self.body(batch)
        } catch {
            return .failed(AttemptFailure(retryable: false, status: "encoding", message: "\(error)", code: 3))
        }
        var headers = self.baseHeaders
        if let authenticator = self.authenticator { headers.append(HTTPHeaderField("authorization", authenticator.authorization())) }
        let request = HTTPClientRequest(
            scheme: target.secure ? "https" : "http", authority: client.authority, path: target.path, headers: headers, body: body)
        let response: HTTPClientResponse
        do {
            response = try await client.send(request, deadline: .now() + .nanoseconds((deadline - .now).nanosecondsValue))
        } catch {
            return .failed(self.transportFailure(error, endpoint: target.endpoint))
        }
        return self.outcome(response, target: target)
    }

    /// The request as protobuf parts (uncopied) or OTLP/JSON, then compressed if asked.
    private func body(_ batch: TelemetryBatch) throws(WireError) -> [ByteBuffer] {
        var parts = batch.parts
        if self.configuration.encoding == .json {
            parts = [try OTLPJSONEncoder.encode(batch.payload, message: WireSchema.shared.requestIndex(for: batch.signal))]
        }
        return self.coding == .identity ? parts : [Compression.compress(parts, coding: self.coding)]
    }

    // MARK: Answers

    package func outcome(_ response: HTTPClientResponse, target: OTLPHTTPExporterConfiguration.Target) -> AttemptOutcome {
        if (200..<300).contains(response.status) {
            let isProtobuf = response.header("content-type")?.hasPrefix("application/x-protobuf") == true
            return .confirmed(isProtobuf ? self.partialSuccess(response) : nil)
        }
        let retryAfter = response.header("retry-after").flatMap { RetryAfter.parse($0) }
        // The body is a google.rpc.Status in protobuf; its message says why.
        let status = response.header("content-type")?.hasPrefix("application/x-protobuf") == true ? UpstreamAnswers.status(response.body) : nil
        var message = status?.message ?? ""
        if message.isEmpty, response.body.readableBytes > 0, response.body.readableBytes <= 1024 {
            message = String(String(buffer: response.body).split(whereSeparator: \.isNewline).joined(separator: " ").prefix(300))
        }
        if message.isEmpty { message = "no reason given" }
        let retryable = [429, 502, 503, 504].contains(response.status)
        var diagnosis: String?
        if response.status == 404 || response.status == 405 {
            diagnosis =
                "otlp_http exporter: \(target.endpoint) answered HTTP \(response.status) to POST \(target.path): check the path (OTLP/HTTP's are /v1/traces, /v1/metrics, /v1/logs) and that this is an OTLP/HTTP port (such as 4318)"
        } else if response.status == 415 && self.configuration.encoding == .json {
            diagnosis = "otlp_http exporter: \(target.endpoint) does not take JSON (HTTP 415); set encoding: proto"
        }
        // A refusal goes back to the client with the upstream's own code where it sent one.
        let code = status.map(\.code).flatMap { $0 == 0 ? nil : $0 } ?? Int32(GRPCFraming.code(forOTLPHTTPStatus: response.status).rawValue)
        return .failed(
            AttemptFailure(
                retryable: retryable, retryAfter: retryAfter, status: "HTTP \(response.status)", message: message,
                code: code, diagnosis: diagnosis))
    }

    private func partialSuccess(_ response: HTTPClientResponse) -> UpstreamAnswers.PartialSuccess? {
        let coding = ContentCoding(headerValue: response.header("content-encoding") ?? "identity") ?? .identity
        guard let plain = try? Decompression.decompress(response.body, coding: coding, limit: 1 << 20) else { return nil }
        return UpstreamAnswers.partialSuccess(plain)
    }

    func transportFailure(_ error: HTTPClientError, endpoint: Endpoint) -> AttemptFailure {
        var diagnosis: String?
        switch error.kind {
        case .wrongProtocol(.http2):
            diagnosis =
                "otlp_http exporter: \(endpoint) \(error.message): that is an OTLP/gRPC port (such as 4317); use the otlp_grpc exporter, or the upstream's OTLP/HTTP port (4318)"
        case .wrongProtocol(.tls):
            diagnosis = "otlp_http exporter: \(endpoint) \(error.message): the upstream expects TLS; use an https:// endpoint"
        case .wrongProtocol(.plaintext):
            diagnosis = "otlp_http exporter: \(endpoint) \(error.message); if the upstream takes plain text, use an http:// endpoint"
        case .wrongProtocol(.other), .wrongProtocol(.http1):
            diagnosis =
                "otlp_http exporter: \(endpoint) \(error.message): if it is an OTLP/gRPC port (such as 4317), use the otlp_grpc exporter or port 4318"
        default:
            break
        }
        return .transport(error, diagnosis: diagnosis)
    }
}
