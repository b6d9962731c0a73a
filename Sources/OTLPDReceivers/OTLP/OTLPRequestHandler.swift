import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCompression
import OTLPDCore
import OTLPDHTTP
import OTLPDTransport
import OTLPDWire

/// Answers OTLP requests on both listeners: OTLP/gRPC and OTLP/HTTP, each
/// on either port. A request is answered with success only after every
/// exporter of its pipelines kept its data; every refusal gets the status
/// the OTLP specification gives it, a `google.rpc.Status` body, and one log
/// line naming the client and the reason.
package final class OTLPRequestHandler: RequestHandler {
    let configuration: OTLPReceiverConfiguration
    /// Each signal's pipelines; replaced on a reload.
    private let consumers: NIOLockedValueBox<[Signal: any Consumer]>
    let logger: Logger
    private let grpcLimit: Int
    private let httpLimit: Int
    /// The ports actually bound (they differ from the config with port 0).
    package let ports = NIOLockedValueBox<(grpc: Int?, http: Int?)>((nil, nil))
    private let mixUpsWarned = NIOLockedValueBox(Set<String>())
    private let refusals: RefusalLog
    private let grpcCounters: ReceiverCounters
    private let httpCounters: ReceiverCounters
    private let observer: (any IngestObserver)?
    private let memory: MemoryGuard
    private let authenticators: ReceiverAuthenticators

    package init(
        configuration: OTLPReceiverConfiguration, consumers: [Signal: any Consumer], settings: ComponentSettings,
        authenticators: ReceiverAuthenticators = ReceiverAuthenticators()
    ) {
        self.authenticators = authenticators
        self.refusals = RefusalLog(board: settings.telemetry.refusals)
        self.configuration = configuration
        self.consumers = NIOLockedValueBox(consumers)
        self.logger = settings.logger
        self.grpcCounters = settings.telemetry.receiver(settings.id, transport: "grpc")
        self.httpCounters = settings.telemetry.receiver(settings.id, transport: "http")
        self.observer = settings.ingestObserver
        self.memory = settings.memoryGuard
        // Either protocol is served on either port: without its own section, a protocol borrows the other's limit.
        self.grpcLimit = configuration.grpc?.maxReceiveMessageBytes ?? configuration.http?.maxRequestBodyBytes ?? (64 << 20)
        self.httpLimit = configuration.http?.maxRequestBodyBytes ?? configuration.grpc?.maxReceiveMessageBytes ?? (64 << 20)
    }

    func consumer(for signal: Signal) -> (any Consumer)? {
        self.consumers.withLockedValue { $0[signal] }
    }

    func replaceConsumers(_ consumers: [Signal: any Consumer]) {
        self.consumers.withLockedValue { $0 = consumers }
    }

    // MARK: RequestHandler

    package func bodyLimit(for head: ServerRequestHead) -> Int {
        head.isGRPC ? self.grpcLimit + GRPCFraming.prefixLength : self.httpLimit
    }

    package func bodyTooLarge(_ head: ServerRequestHead, limit: Int) -> ServerResponse {
        if head.isGRPC {
            return self.grpcRefusal(head, .resourceExhausted, "message larger than the \(self.grpcLimit)-byte limit (max_recv_msg_size_mib)")
        }
        return self.httpRefusal(
            head, status: 413, encoding: HTTPEncoding(contentType: head.header("content-type")) ?? .protobuf,
            "body larger than the \(self.httpLimit)-byte limit (max_request_body_size)")
    }

    /// Turned away before its body is read: a client without valid credentials, or otlpd over its memory limit.
    package func admit(_ head: ServerRequestHead) -> Bool {
        !self.memory.isRefusing && self.authenticated(head)
    }

    /// Whether the request carries what the authenticator wants; a CORS preflight needs nothing (browsers send no credentials with it).
    private func authenticated(_ head: ServerRequestHead) -> Bool {
        guard let authenticator = self.authenticators.authenticator(forGRPC: head.isGRPC) else { return true }
        if !head.isGRPC && head.method == "OPTIONS" { return true }
        return authenticator.accepts(authorization: head.header("authorization"))
    }

    /// 401 with `WWW-Authenticate`, or gRPC UNAUTHENTICATED; the log line names the client, never the credentials.
    private func unauthenticated(_ head: ServerRequestHead) -> ServerResponse {
        let reason = head.header("authorization") == nil ? "no credentials (authorization header)" : "the credentials were not accepted"
        if head.isGRPC { return self.grpcRefusal(head, .unauthenticated, reason) }
        let challenge = self.authenticators.authenticator(forGRPC: false)?.challenge ?? "Bearer"
        var headers = [HTTPHeaderField("www-authenticate", challenge)]
        if let cors = self.configuration.http?.cors, let origin = head.header("origin"), cors.allows(origin: origin) {
            headers += cors.responseHeaders(origin: origin)
        }
        return self.httpRefusal(head, status: 401, encoding: HTTPEncoding(contentType: head.header("content-type")) ?? .protobuf, reason, extraHeaders: headers)
    }

    /// A body counts twice while it is in flight: its own bytes, and the copy
    /// a processor makes of them (an attribute rewrite, a decompression).
    package func hold(_ bytes: Int) -> Bool {
        self.memory.hold(bytes * Self.bodyWeight)
    }

    package func release(_ bytes: Int) {
        self.memory.release(bytes * Self.bodyWeight)
    }

    package func hasRoom(for bytes: Int) -> Bool {
        self.memory.hasRoom(for: bytes * Self.bodyWeight)
    }

    static let bodyWeight = 2

    package func notAdmitted(_ head: ServerRequestHead) -> ServerResponse {
        if !self.authenticated(head) { return self.unauthenticated(head) }
        let retryAfter = self.memory.retryAfter
        if head.isGRPC {
            return self.grpcRefusal(head, .unavailable, Self.overloadedMessage, retryAfter: retryAfter)
        }
        let encoding = HTTPEncoding(contentType: head.header("content-type")) ?? .protobuf
        var headers = [HTTPHeaderField("retry-after", String(max(1, Int(retryAfter.secondsValue.rounded(.up)))))]
        if let cors = self.configuration.http?.cors, let origin = head.header("origin"), cors.allows(origin: origin) {
            headers += cors.responseHeaders(origin: origin)
        }
        return self.httpRefusal(head, status: 503, encoding: encoding, Self.overloadedMessage, retryAfter: retryAfter, extraHeaders: headers)
    }

    static let overloadedMessage = "otlpd is over its memory limit (memory_limiter); retry later"

    package func connectionFailed(client: ClientInfo, reason: String) {
        self.refusals.log(self.logger, client: client, protocolName: nil, path: nil, status: nil, reason: reason)
    }

    package func handle(_ request: consuming ServerRequest) async -> ServerResponse {
        if request.head.isGRPC {
            return await self.handleGRPC(request)
        }
        return await self.handleHTTP(request)
    }

    // MARK: OTLP/gRPC

    private func handleGRPC(_ request: consuming ServerRequest) async -> ServerResponse {
        let head = request.head
        guard let signal = GRPCRoutes.signal(forPath: head.path) else {
            return self.grpcRefusal(
                head, .unimplemented,
                "unknown method \(head.path); this server implements \(Signal.allCases.map(GRPCRoutes.path(for:)).joined(separator: ", "))")
        }
        self.warnIfMixedUp(head, sentGRPC: true)
        guard let consumer = self.consumer(for: signal) else {
            return self.grpcRefusal(head, .unimplemented, "no \(signal) pipeline uses this receiver")
        }
        let encodingHeader = head.header("grpc-encoding") ?? "identity"
        guard let coding = ContentCoding(headerValue: encodingHeader) else {
            return self.grpcRefusal(head, .unimplemented, "unsupported grpc-encoding '\(encodingHeader)'; supported: gzip, zstd, deflate, identity")
        }
        let compressed: Bool
        let message: ByteBuffer
        // The transport took the message out of its frame; it is handed on, not kept here (see `deliver`).
        switch (consume request).grpc {
        case .message(let body, let flagged):
            (compressed, message) = (flagged, body)
        case .malformed(let error):
            return self.grpcRefusal(head, .invalidArgument, "malformed gRPC message frame (\(error))")
        case nil:
            return self.grpcRefusal(head, .internal, "the gRPC call reached the receiver without its message")
        }
        if compressed && coding == .identity {
            return self.grpcRefusal(head, .invalidArgument, "message flagged compressed but no grpc-encoding given")
        }
        let payload: ByteBuffer
        do {
            payload = try Decompression.decompress(message, coding: compressed ? coding : .identity, limit: self.grpcLimit)
        } catch .tooLarge {
            return self.grpcRefusal(head, .resourceExhausted, "message larger than the \(self.grpcLimit)-byte limit after decompression")
        } catch {
            return self.grpcRefusal(head, .invalidArgument, "\(error)")
        }
        _ = consume message
        let summary: RequestSummary
        do {
            summary = try WireValidator.validate(payload, signal: signal)
        } catch {
            return self.grpcRefusal(head, .invalidArgument, "message is not a valid \(Self.requestName(signal)): \(error)")
        }
        let kept: Kept
        var service: String?
        do throws(ConsumeError) {
            let extra = compressed ? payload.readableBytes : 0
            kept = try await self.deliver(
                consume payload, signal: signal, items: summary.itemCount, to: consumer, via: .grpc, head: head, extraBytes: extra, service: &service)
        } catch {
            return self.grpcRefusal(head, error, service: service)
        }
        // Full success: the response message is empty, and so always the same.
        guard kept.rejected > 0 || kept.message != nil else { return GRPCFraming.okEmptyResponse }
        return GRPCFraming.okResponse(ResponseMessages.partialSuccess(rejected: kept.rejected, message: kept.message ?? ""))
    }

    private func grpcRefusal(_ head: ServerRequestHead, _ error: ConsumeError, service: String?) -> ServerResponse {
        switch error.kind {
        case .permanent:
            return self.grpcRefusal(
                head, error.code.flatMap { GRPCFraming.StatusCode(rawValue: Int($0)) } ?? .invalidArgument, error.message, service: service)
        case .retryable(let after):
            let code: GRPCFraming.StatusCode = error.code == ConsumeError.resourceExhausted ? .resourceExhausted : .unavailable
            return self.grpcRefusal(head, code, error.message, retryAfter: after ?? .seconds(1), service: service)
        }
    }

    private func grpcRefusal(
        _ head: ServerRequestHead, _ code: GRPCFraming.StatusCode, _ message: String, retryAfter: Duration? = nil, service: String? = nil
    ) -> ServerResponse {
        self.refusals.log(self.logger, client: head.client, protocolName: "grpc", path: head.path, status: code.name, reason: message, service: service)
        let details = ResponseMessages.status(code: Int32(code.rawValue), message: message, retryDelay: retryAfter)
        return GRPCFraming.errorResponse(code, message: message, details: details)
    }

    // MARK: OTLP/HTTP

    private func handleHTTP(_ request: consuming ServerRequest) async -> ServerResponse {
        let head = request.head
        let path = head.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.path
        let origin = head.header("origin")
        let cors = self.configuration.http?.cors
        let requestEncoding = HTTPEncoding(contentType: head.header("content-type"))
        let errorEncoding = requestEncoding ?? .protobuf
        var corsHeaders: [HTTPHeaderField] = []
        if let cors, let origin, cors.allows(origin: origin) { corsHeaders = cors.responseHeaders(origin: origin) }

        let paths = self.httpPaths
        guard let signal = paths.first(where: { $0.path == path })?.signal else {
            if head.method == "OPTIONS", let cors, let origin {
                return cors.preflight(origin: origin, requestedHeaders: head.header("access-control-request-headers"))
            }
            return self.httpRefusal(
                head, status: 404, encoding: errorEncoding,
                "unknown path \(path); OTLP/HTTP paths here: \(paths.map(\.path).joined(separator: ", "))", extraHeaders: corsHeaders)
        }
        if head.method == "OPTIONS", let cors, let origin, head.header("access-control-request-method") != nil {
            return cors.preflight(origin: origin, requestedHeaders: head.header("access-control-request-headers"))
        }
        guard head.method == "POST" else {
            return self.httpRefusal(
                head, status: 405, encoding: errorEncoding, "method \(head.method) not allowed; OTLP/HTTP takes POST",
                extraHeaders: corsHeaders + [HTTPHeaderField("allow", "POST")])
        }
        self.warnIfMixedUp(head, sentGRPC: false)
        guard let encoding = requestEncoding else {
            return self.httpRefusal(
                head, status: 415, encoding: .protobuf,
                "unsupported Content-Type '\(head.header("content-type") ?? "")'; use application/x-protobuf or application/json",
                extraHeaders: corsHeaders)
        }
        guard let consumer = self.consumer(for: signal) else {
            return self.httpRefusal(head, status: 404, encoding: encoding, "no \(signal) pipeline uses this receiver", extraHeaders: corsHeaders)
        }
        let encodingHeader = head.header("content-encoding") ?? "identity"
        guard let coding = ContentCoding(headerValue: encodingHeader) else {
            return self.httpRefusal(
                head, status: 400, encoding: encoding,
                "unsupported Content-Encoding '\(encodingHeader)'; supported: gzip, zstd, deflate, identity", extraHeaders: corsHeaders)
        }
        let body: ByteBuffer
        do {
            body = try Decompression.decompress((consume request).body, coding: coding, limit: self.httpLimit)
        } catch .tooLarge {
            return self.httpRefusal(
                head, status: 413, encoding: encoding, "body larger than the \(self.httpLimit)-byte limit after decompression",
                extraHeaders: corsHeaders)
        } catch {
            return self.httpRefusal(head, status: 400, encoding: encoding, "\(error)", extraHeaders: corsHeaders)
        }
        let payload: ByteBuffer
        let summary: RequestSummary
        do {
            payload = encoding == .json ? try OTLPJSONDecoder.decode(body, signal: signal) : body
            summary = try WireValidator.validate(payload, signal: signal)
        } catch {
            return self.httpRefusal(
                head, status: 400, encoding: encoding, "body is not a valid \(Self.requestName(signal)): \(error)", extraHeaders: corsHeaders)
        }
        let kept: Kept
        var service: String?
        do throws(ConsumeError) {
            // Bytes made here (decompressed, decoded from JSON) count too, besides the body the transport counted.
            let extra = (coding == .identity ? 0 : body.readableBytes) + (encoding == .json ? payload.readableBytes : 0)
            _ = consume body
            kept = try await self.deliver(
                consume payload, signal: signal, items: summary.itemCount, to: consumer, via: encoding == .json ? .httpJSON : .httpProtobuf, head: head,
                extraBytes: extra, service: &service)
        } catch {
            switch error.kind {
            case .permanent:
                let status = error.code.flatMap { GRPCFraming.StatusCode(rawValue: Int($0)) }?.httpStatus ?? 400
                return self.httpRefusal(
                    head, status: status < 400 ? 400 : status, encoding: encoding, error.message, extraHeaders: corsHeaders, service: service)
            case .retryable(let after):
                let delay = after ?? .seconds(1)
                let seconds = max(1, Int(delay.secondsValue.rounded(.up)))
                return self.httpRefusal(
                    head, status: error.code == ConsumeError.resourceExhausted ? 429 : 503, encoding: encoding, error.message, retryAfter: delay,
                    extraHeaders: corsHeaders + [HTTPHeaderField("retry-after", String(seconds))], service: service)
            }
        }
        // Full success: an empty Export*ServiceResponse, the same every time.
        var response = encoding == .json ? Self.okJSON : Self.okProtobuf
        if kept.rejected > 0 || kept.message != nil {
            response.body =
                encoding == .json
                ? ResponseMessages.partialSuccessJSON(signal: signal, rejected: kept.rejected, message: kept.message ?? "")
                : ResponseMessages.partialSuccess(rejected: kept.rejected, message: kept.message ?? "")
        }
        response.headers += corsHeaders
        return response
    }

    static let okProtobuf = ServerResponse(status: 200, headers: [HTTPHeaderField("content-type", HTTPEncoding.protobuf.contentType)], body: ByteBuffer())
    static let okJSON = ServerResponse(status: 200, headers: [HTTPHeaderField("content-type", HTTPEncoding.json.contentType)], body: ByteBuffer(string: "{}"))

    private var httpPaths: [(path: String, signal: Signal)] {
        let http = self.configuration.http ?? OTLPReceiverConfiguration.HTTP()
        return Signal.allCases.map { (http.path(for: $0), $0) }
    }

    /// A 4xx/5xx with a `google.rpc.Status` body in the request's encoding.
    private func httpRefusal(
        _ head: ServerRequestHead,
        status: Int,
        encoding: HTTPEncoding,
        _ message: String,
        retryAfter: Duration? = nil,
        extraHeaders: [HTTPHeaderField] = [],
        service: String? = nil
    ) -> ServerResponse {
        self.refusals.log(
            self.logger, client: head.client, protocolName: "http", path: head.path, status: String(status), reason: message, service: service)
        let code = Int32(GRPCFraming.code(forOTLPHTTPStatus: status).rawValue)
        let body =
            encoding == .json
            ? ResponseMessages.statusJSON(code: code, message: message, retryDelay: retryAfter)
            : ResponseMessages.status(code: code, message: message, retryDelay: retryAfter)
        return ServerResponse(status: status, headers: [HTTPHeaderField("content-type", encoding.contentType)] + extraHeaders, body: body)
    }

    static func requestName(_ signal: Signal) -> String {
        switch signal {
        case .traces: "ExportTraceServiceRequest"
        case .metrics: "ExportMetricsServiceRequest"
        case .logs: "ExportLogsServiceRequest"
        }
    }

    // MARK: Delivery

    /// Hands a decoded request to its pipeline, and tells the counters and
    /// the per-service view what became of it.
    private func deliver(
        _ payload: consuming ByteBuffer,
        signal: Signal,
        items: Int,
        to consumer: any Consumer,
        via ingest: IngestProtocol,
        head: ServerRequestHead,
        extraBytes: Int,
        service: inout String?
    ) async throws(ConsumeError) -> Kept {
        let counters = ingest == .grpc ? self.grpcCounters : self.httpCounters
        let wrongPort = (ingest == .grpc) != (head.client.role == .grpc)
        // Read while the bytes are still in cache; recorded once the outcome is known.
        let sighting = self.observer == nil ? nil : Sighting(payload, signal: signal, items: items)
        guard self.memory.hold(extraBytes) else {
            counters.refused.add(items, for: signal)
            if let sighting {
                self.observer?.refused(signal: signal, via: ingest, port: head.client.localPort, wrongPort: wrongPort, resources: sighting.resources)
                service = sighting.serviceNames
            }
            throw .retryable(Self.overloadedMessage, after: self.memory.retryAfter)
        }
        defer { self.memory.release(extraBytes) }
        let delivered: Kept
        do throws(ConsumeError) {
            // Handed over: a stage that replaces the request frees these bytes while the rest of the pipeline works.
            delivered = try await consumer.consume(TelemetryBatch(signal: signal, payload: payload, itemCount: items, deadline: Self.deadline(head)))
        } catch {
            (error.isRetryable ? counters.refused : counters.failed).add(items, for: signal)
            if let sighting {
                self.observer?.refused(signal: signal, via: ingest, port: head.client.localPort, wrongPort: wrongPort, resources: sighting.resources)
                service = sighting.serviceNames
            }
            throw error
        }
        counters.accepted.add(items, for: signal)
        if let observer = self.observer, var kept = sighting {
            // Span fingerprints are remembered only once the data is kept, so a
            // client retrying a refused request is not taken for a twice-initialised SDK.
            kept.countDuplicates(observer)
            observer.accepted(signal: signal, via: ingest, port: head.client.localPort, wrongPort: wrongPort, resources: kept.resources)
        }
        return delivered
    }

    /// When the client stops waiting: gRPC says so in `grpc-timeout`; OTLP/HTTP has no such header.
    static func deadline(_ head: ServerRequestHead) -> ContinuousClock.Instant? {
        guard head.isGRPC, let text = head.header("grpc-timeout"), let timeout = GRPCTimeout.parse(text) else { return nil }
        return .now + timeout
    }

    // MARK: The port mix-up

    /// Warns once per client address that sends a protocol to the port meant for the other.
    private func warnIfMixedUp(_ head: ServerRequestHead, sentGRPC: Bool) {
        let client = head.client
        guard (sentGRPC && client.role == .http) || (!sentGRPC && client.role == .grpc) else { return }
        let key = "\(client.address)|\(sentGRPC)"
        let first = self.mixUpsWarned.withLockedValue { warned -> Bool in
            // Bounded: a flood of addresses cannot grow this without limit.
            if warned.count >= 10_000 { warned.removeAll() }
            return warned.insert(key).inserted
        }
        guard first else { return }
        let ports = self.ports.withLockedValue { $0 }
        let sent = sentGRPC ? "OTLP/gRPC" : "OTLP/HTTP"
        let meant = sentGRPC ? "OTLP/HTTP" : "OTLP/gRPC"
        let rightPort = sentGRPC ? ports.grpc : ports.http
        let advice = rightPort.map { "point its \(sentGRPC ? "gRPC" : "HTTP") exporter at port \($0)" } ?? "its protocol has no listener of its own"
        self.logger.warning(
            "client sent \(sent) to the \(meant) port \(client.localPort); served anyway, but \(advice)",
            metadata: ["client": "\(client.address)", "port": "\(client.localPort)"])
    }
}

/// One log line per refused request or failed connection, naming the
/// client and the reason; past 20 lines a second, a client's further
/// refusals are counted and summarised instead, so a misbehaving client
/// cannot flood the log.
final class RefusalLog: Sendable {
    private let state = NIOLockedValueBox(State())
    /// Every refusal, for the status page (the log lines are rate-limited).
    let board: RefusalBoard?

    init(board: RefusalBoard? = nil) {
        self.board = board
    }

    private struct State {
        var windowStart = ContinuousClock.now
        var linesInWindow = 0
        var suppressed = 0
    }

    /// The count of a window that ended with lines held back, logged once.
    private func flushSuppressed(_ logger: Logger) {
        let suppressed = self.state.withLockedValue { state -> Int in
            guard ContinuousClock.now - state.windowStart >= .seconds(1) else { return 0 }
            defer { state.suppressed = 0 }
            return state.suppressed
        }
        if suppressed > 0 {
            logger.warning("more requests refused in the last second, not logged one by one", metadata: ["count": "\(suppressed)"])
        }
    }

    func log(_ logger: Logger, client: ClientInfo, protocolName: String?, path: String?, status: String?, reason: String, service: String? = nil) {
        self.board?.record(client: client.endpoint, protocolName: protocolName, path: path, status: status, reason: reason, service: service)
        var firstSuppressed = false
        let (allowed, suppressedBefore) = self.state.withLockedValue { state -> (Bool, Int) in
            let now = ContinuousClock.now
            if now - state.windowStart >= .seconds(1) {
                let suppressed = state.suppressed
                state = State(windowStart: now, linesInWindow: 1, suppressed: 0)
                return (true, suppressed)
            }
            guard state.linesInWindow < 20 else {
                state.suppressed += 1
                if state.suppressed == 1 { firstSuppressed = true }
                return (false, 0)
            }
            state.linesInWindow += 1
            return (true, 0)
        }
        if firstSuppressed {
            // The summary comes when the window ends, even if no refusal follows to carry it.
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(1100))
                self?.flushSuppressed(logger)
            }
        }
        if suppressedBefore > 0 {
            logger.warning("more requests refused in the last second, not logged one by one", metadata: ["count": "\(suppressedBefore)"])
        }
        guard allowed else { return }
        var metadata: Logger.Metadata = ["client": "\(client.endpoint)"]
        if let protocolName { metadata["protocol"] = "\(protocolName)" }
        if let path { metadata["path"] = "\(path)" }
        if let status { metadata["status"] = "\(status)" }
        if let service { metadata["service"] = "\(service)" }
        metadata["reason"] = "\(reason)"
        logger.warning(status == nil ? "connection refused" : "request refused", metadata: metadata)
    }
}

/// Who sent a request, resource by resource, and its spans' fingerprints.
struct Sighting {
    var resources: [ResourceObservation]
    /// One per span, in order: resource `i`'s spans follow resource `i - 1`'s.
    var fingerprints: [UInt64] = []

    init(_ payload: borrowing ByteBuffer, signal: Signal, items: Int) {
        var fingerprints: [UInt64] = []
        if signal == .traces { fingerprints.reserveCapacity(items) }
        self.resources = RequestSummaries.summarize(payload, signal: signal) { _, fingerprint in fingerprints.append(fingerprint) }
        self.fingerprints = fingerprints
    }

    /// The request's services, for a refusal's log line: `checkout, cart`.
    var serviceNames: String? {
        var names: [String] = []
        for resource in self.resources {
            let name = resource.serviceName ?? "unknown_service"
            if !names.contains(name) { names.append(name) }
        }
        return names.isEmpty ? nil : names.joined(separator: ", ")
    }

    /// Records the fingerprints and counts, per resource, the spans seen before.
    mutating func countDuplicates(_ observer: any IngestObserver) {
        guard !self.fingerprints.isEmpty else { return }
        let fingerprints = self.fingerprints
        self.resources = observer.withDuplicateCheck { seenBefore in
            var resources = self.resources
            var next = 0
            for index in resources.indices {
                let end = min(next + resources[index].itemCount, fingerprints.count)
                var duplicates = 0
                while next < end {
                    if seenBefore(fingerprints[next]) { duplicates += 1 }
                    next += 1
                }
                resources[index].duplicateSpans = duplicates
            }
            return resources
        }
    }
}
