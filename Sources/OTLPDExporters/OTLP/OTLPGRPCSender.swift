import NIOCore
import OTLPDCompression
import OTLPDCore
import OTLPDHTTP
import OTLPDSystem
import OTLPDTransport
import OTLPDWire

/// One OTLP/gRPC Export call per attempt, over a connection shared by
/// every call: the batch's parts go out after the gRPC prefix as they are
/// (requests one after another are one request), compressed when asked.
package final class OTLPGRPCSender: UpstreamSender {
    let configuration: OTLPGRPCExporterConfiguration
    let client: RoundRobinHTTP2Client
    /// The fixed headers of every call, after the pseudo-headers.
    private let baseHeaders: [HTTPHeaderField]
    private let coding: ContentCoding
    /// Adds `authorization` to each request (read each time: a reload may change the token).
    private let authenticator: (any ClientAuthenticator)?

    package init(configuration: OTLPGRPCExporterConfiguration, settings: ComponentSettings) throws {
        self.configuration = configuration
        self.authenticator = try ClientTarget.authenticator(configuration.authenticator, settings: settings)
        let tls = try configuration.tls?.makeContext(protocols: ["h2"])
        let pickFirst = configuration.balancer == .pickFirst
        self.client = RoundRobinHTTP2Client(
            host: configuration.endpoint.host, port: configuration.endpoint.port, tls: tls, serverName: configuration.tls?.serverNameOverride,
            group: settings.eventLoopGroup,
            resolve: { host in
                let addresses = try AddressResolver.addresses(of: host)
                return pickFirst ? Array(addresses.prefix(1)) : addresses
            })
        switch configuration.compression {
        case .gzip: self.coding = .gzip
        case .zstd: self.coding = .zstd
        case .none: self.coding = .identity
        }
        var headers = [
            HTTPHeaderField("content-type", "application/grpc"), HTTPHeaderField("te", "trailers"),
            HTTPHeaderField("grpc-accept-encoding", "identity,gzip,zstd"),
            HTTPHeaderField("user-agent", "otlpd/\(settings.telemetry.serviceVersion.isEmpty ? "dev" : settings.telemetry.serviceVersion)"),
        ]
        if self.coding != .identity { headers.append(HTTPHeaderField("grpc-encoding", self.coding.rawValue)) }
        headers += configuration.headers
        self.baseHeaders = headers
    }

    package var upstream: String { self.configuration.endpoint.description }

    package func shutdown() async {
        await self.client.shutdown()
    }

    package func send(_ batch: TelemetryBatch, deadline: ContinuousClock.Instant) async -> AttemptOutcome {
        let remaining = deadline - .now
        var headers = self.baseHeaders
        headers.insert(HTTPHeaderField("grpc-timeout", GRPCTimeout.format(remaining)), at: 2)
        if let authenticator = self.authenticator { headers.append(HTTPHeaderField("authorization", authenticator.authorization())) }
        let request = HTTPClientRequest(
            scheme: self.configuration.tls == nil ? "http" : "https", authority: self.client.authority, path: GRPCRoutes.path(for: batch.signal),
            headers: headers, body: self.body(batch))
        let response: HTTPClientResponse
        do {
            response = try await self.client.send(request, deadline: .now() + .nanoseconds(remaining.nanosecondsValue))
        } catch {
            return .failed(self.transportFailure(error))
        }
        return self.outcome(response)
    }

    /// The gRPC prefix, then the request: its parts as they are, or compressed into one message.
    private func body(_ batch: TelemetryBatch) -> [ByteBuffer] {
        var prefix = ByteBuffer()
        prefix.reserveCapacity(GRPCFraming.prefixLength)
        guard self.coding == .identity else {
            let compressed = Compression.compress(batch.parts, coding: self.coding)
            prefix.writeInteger(UInt8(1))
            prefix.writeInteger(UInt32(compressed.readableBytes))
            return [prefix, compressed]
        }
        prefix.writeInteger(UInt8(0))
        prefix.writeInteger(UInt32(batch.byteCount))
        return [prefix] + batch.parts
    }

    // MARK: Answers

    /// gRPC's status from the trailers (or the headers of a trailers-only answer).
    package func outcome(_ response: HTTPClientResponse) -> AttemptOutcome {
        guard response.status == 200 else {
            let code = GRPCFraming.statusCode(forHTTPStatus: response.status)
            let isGRPC = response.header("content-type")?.hasPrefix("application/grpc") == true
            return .failed(
                AttemptFailure(
                    retryable: code == .unavailable, retryAfter: response.header("retry-after").flatMap { RetryAfter.parse($0) },
                    status: "HTTP \(response.status)", message: "the upstream answered HTTP \(response.status), not a gRPC status",
                    code: Int32(code.rawValue),
                    diagnosis: isGRPC ? nil : self.notGRPCDiagnosis("answered HTTP \(response.status) without a gRPC status")))
        }
        guard let statusText = response.trailer("grpc-status"), let value = Int(statusText) else {
            return .failed(
                AttemptFailure(
                    retryable: true, status: "no grpc-status", message: "the upstream's answer carries no gRPC status",
                    diagnosis: response.header("content-type")?.hasPrefix("application/grpc") == true
                        ? nil : self.notGRPCDiagnosis("answered HTTP/2 without gRPC")))
        }
        guard value != 0 else {
            return .confirmed(self.partialSuccess(response))
        }
        let code = GRPCFraming.StatusCode(rawValue: value)
        let message = response.trailer("grpc-message").map(GRPCFraming.percentDecode) ?? ""
        let details = response.trailer("grpc-status-details-bin").flatMap(UpstreamAnswers.base64Decode).flatMap(UpstreamAnswers.status)
        let retryAfter = details?.retryDelay
        // What the OTLP specification lets a client retry; RESOURCE_EXHAUSTED only when the server says when.
        let retryable: Bool
        switch code {
        case .cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss: retryable = true
        case .resourceExhausted: retryable = retryAfter != nil
        default: retryable = false
        }
        var diagnosis: String?
        if code == .unimplemented {
            diagnosis = self.notGRPCDiagnosis("does not implement \(response.trailer(":path") ?? "the OTLP Export service") (UNIMPLEMENTED: \(message))")
        }
        return .failed(
            AttemptFailure(
                retryable: retryable, retryAfter: retryAfter, status: code?.name ?? "gRPC status \(value)", message: message,
                code: Int32(value), diagnosis: diagnosis))
    }

    private func partialSuccess(_ response: HTTPClientResponse) -> UpstreamAnswers.PartialSuccess? {
        guard response.body.readableBytes > GRPCFraming.prefixLength,
            let (compressed, message) = try? GRPCFraming.deframe(response.body)
        else { return nil }
        let coding = compressed ? ContentCoding(headerValue: response.header("grpc-encoding") ?? "identity") ?? .identity : .identity
        guard let plain = try? Decompression.decompress(message, coding: coding, limit: 1 << 20) else { return nil }
        return UpstreamAnswers.partialSuccess(plain)
    }

    func transportFailure(_ error: HTTPClientError) -> AttemptFailure {
        let endpoint = self.upstream
        var diagnosis: String?
        switch error.kind {
        case .wrongProtocol(.http1):
            diagnosis =
                "otlp_grpc exporter: \(endpoint) \(error.message): that is an OTLP/HTTP port (such as 4318); use the otlp_http exporter, or the upstream's gRPC port (4317)"
        case .wrongProtocol(.tls):
            diagnosis = "otlp_grpc exporter: \(endpoint) \(error.message): the upstream expects TLS; remove tls.insecure (or configure tls with its CA)"
        case .wrongProtocol(.other):
            diagnosis =
                "otlp_grpc exporter: \(endpoint) \(error.message): it does not seem to speak HTTP/2\(self.configuration.tls == nil ? " in plain text" : ""); if it is an OTLP/HTTP port (such as 4318), use the otlp_http exporter\(self.configuration.tls == nil ? "; if it expects TLS, remove tls.insecure" : "")"
        case .wrongProtocol(.plaintext):
            diagnosis = "otlp_grpc exporter: \(endpoint) \(error.message); if the upstream takes plain text, set tls.insecure: true"
        default:
            break
        }
        return .transport(error, diagnosis: diagnosis)
    }

    private func notGRPCDiagnosis(_ what: String) -> String {
        "otlp_grpc exporter: \(self.upstream) \(what): it does not look like an OTLP/gRPC endpoint; if it is an OTLP/HTTP port (such as 4318), use the otlp_http exporter"
    }
}
