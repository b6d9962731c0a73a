import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCore
import OTLPDExporters
import OTLPDHTTP
import OTLPDTransport
import OTLPDWire
import Testing

/// A sender that answers from a script and records each attempt.
final class ScriptedSender: UpstreamSender {
    let upstream = "upstream:4317"
    private let state: NIOLockedValueBox<(script: [AttemptOutcome], attempts: [ContinuousClock.Instant], inFlight: Int, maxInFlight: Int)>
    let fallback: AttemptOutcome
    let latency: Duration

    init(_ script: [AttemptOutcome], fallback: AttemptOutcome = .confirmed(nil), latency: Duration = .zero) {
        self.state = NIOLockedValueBox((script, [], 0, 0))
        self.fallback = fallback
        self.latency = latency
    }

    var attempts: Int { self.state.withLockedValue { $0.attempts.count } }
    var attemptTimes: [ContinuousClock.Instant] { self.state.withLockedValue { $0.attempts } }
    var maxInFlight: Int { self.state.withLockedValue { $0.maxInFlight } }

    func send(_ batch: TelemetryBatch, deadline: ContinuousClock.Instant) async -> AttemptOutcome {
        let outcome = self.state.withLockedValue { state -> AttemptOutcome in
            state.attempts.append(.now)
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            return state.script.isEmpty ? self.fallback : state.script.removeFirst()
        }
        if self.latency > .zero { try? await Task.sleep(for: self.latency) }
        self.state.withLockedValue { $0.inFlight -= 1 }
        return outcome
    }

    func shutdown() async {}
}

func forwarding(_ sender: ScriptedSender, timeout: Duration = .seconds(5), configure: (inout ExporterHelperConfiguration) -> Void = { _ in })
    -> ForwardingExporter<ScriptedSender>
{
    var helper = ExporterHelperConfiguration(timeout: timeout)
    helper.retry.initialInterval = .milliseconds(20)
    helper.retry.randomizationFactor = 0
    configure(&helper)
    return try! ForwardingExporter(helper: helper, sender: sender, signals: [.traces], settings: settings("otlp_grpc"))
}

func spans(_ count: Int = 1, deadline: ContinuousClock.Instant? = nil) -> TelemetryBatch {
    TelemetryBatch(signal: .traces, payload: ByteBuffer(bytes: [0x0A, 0x00]), itemCount: count, deadline: deadline)
}

let unavailable = AttemptOutcome.failed(AttemptFailure(retryable: true, status: "UNAVAILABLE", message: "busy"))

struct ForwardingExporterTests {
    @Test("retryable failures are retried until the upstream confirms")
    func retriesUntilConfirmed() async throws {
        let sender = ScriptedSender([unavailable, unavailable])
        try await forwarding(sender).consume(spans())
        #expect(sender.attempts == 3)
    }

    @Test("a permanent refusal is not retried and goes back with the upstream's code")
    func permanentRefusal() async {
        let sender = ScriptedSender([.failed(AttemptFailure(retryable: false, status: "INVALID_ARGUMENT", message: "bad span", code: 3))])
        do {
            try await forwarding(sender).consume(spans())
            Issue.record("expected a refusal")
        } catch {
            #expect(error.kind == .permanent && error.code == 3)
            #expect(error.message.contains("bad span") && error.message.contains("upstream:4317"))
        }
        #expect(sender.attempts == 1)
    }

    @Test("retries stop before the client's deadline, with a retryable error and the upstream's delay")
    func clientDeadline() async {
        let refusal = AttemptOutcome.failed(AttemptFailure(retryable: true, retryAfter: .milliseconds(150), status: "UNAVAILABLE", message: "x"))
        let sender = ScriptedSender([], fallback: refusal)
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(500)
        do {
            try await forwarding(sender).consume(spans(deadline: deadline))
            Issue.record("expected a retryable error")
        } catch {
            #expect(error.kind == .retryable(after: .milliseconds(150)))
        }
        // Time on a loaded machine stretches; what holds is that no attempt starts past the deadline.
        let times = sender.attemptTimes
        #expect(times.count >= 1 && times.count <= 4)
        for time in times { #expect(time < deadline, "no attempt after the client's deadline") }
        for (earlier, later) in zip(times, times.dropFirst()) { #expect(later - earlier >= .milliseconds(150)) }
        #expect(ContinuousClock.now - started < .seconds(3))
    }

    @Test("without a client deadline, the exporter's timeout bounds the whole delivery")
    func exporterTimeout() async {
        let sender = ScriptedSender([], fallback: unavailable)
        let started = ContinuousClock.now
        await #expect(throws: ConsumeError.self) { try await forwarding(sender, timeout: .milliseconds(300)).consume(spans()) }
        for time in sender.attemptTimes { #expect(time < started + .milliseconds(300)) }
        #expect(ContinuousClock.now - started < .seconds(3))
    }

    @Test("a full sending queue refuses at once, retryably; num_consumers bounds the sends under way")
    func queueBounds() async throws {
        let sender = ScriptedSender([], latency: .milliseconds(100))
        let exporter = forwarding(sender) { $0.queue.queueSize = 3; $0.queue.numConsumers = 2 }
        let outcomes = NIOLockedValueBox<[Bool]>([])
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    do throws(ConsumeError) {
                        try await exporter.consume(spans())
                        outcomes.withLockedValue { $0.append(true) }
                    } catch {
                        #expect(error.isRetryable && error.message.contains("queue_size 3"))
                        outcomes.withLockedValue { $0.append(false) }
                    }
                }
            }
        }
        #expect(outcomes.withLockedValue { $0.filter { $0 }.count } == 3)
        #expect(sender.maxInFlight == 2)
        #expect(exporter.queues[.traces]?.size == 0)
    }

    @Test("shutdown brings the deadline forward: a request waiting to retry gives up, retryably")
    func shutdownEndsRetries() async {
        let sender = ScriptedSender([], fallback: unavailable)
        let exporter = forwarding(sender, timeout: .seconds(30)) { $0.retry.initialInterval = .seconds(10) }
        let started = ContinuousClock.now
        let delivery = Task { () async -> Bool in
            do throws(ConsumeError) {
                try await exporter.consume(spans(deadline: started + .seconds(30)))
                return true
            } catch {
                return !error.isRetryable
            }
        }
        try? await Task.sleep(for: .milliseconds(50))
        await exporter.beginShutdown(deadline: .now + .milliseconds(100))
        #expect(await delivery.value == false, "refused, retryably")
        // The retry was 10 s away: well before it, and without a second attempt (a loaded machine stretches the rest).
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(sender.attempts == 1)
    }
}

struct RetryAfterTests {
    @Test("seconds, an HTTP date, and nonsense")
    func parse() {
        #expect(RetryAfter.parse("7", now: 0) == .seconds(7))
        // 1994-11-06 08:49:37 UTC is 784111777.
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_770) == .seconds(7))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_800) == .zero)
        #expect(RetryAfter.parse("soon", now: 0) == nil)
        #expect(RetryAfter.parse("-3", now: 0) == nil)
    }
}

struct GRPCAnswerTests {
    let sender: OTLPGRPCSender

    init() throws {
        self.sender = try OTLPGRPCSender(
            configuration: OTLPGRPCExporterConfiguration(endpoint: Endpoint(host: "upstream", port: 4317), tls: nil), settings: settings("otlp_grpc"))
    }

    func answer(_ trailers: [(String, String)], status: Int = 200, headers: [(String, String)] = [("content-type", "application/grpc")])
        -> AttemptOutcome
    {
        self.sender.outcome(
            HTTPClientResponse(
                status: status, headers: headers.map { HTTPHeaderField($0.0, $0.1) }, trailers: trailers.map { HTTPHeaderField($0.0, $0.1) }))
    }

    func failure(_ outcome: AttemptOutcome) -> AttemptFailure? {
        if case .failed(let failure) = outcome { return failure }
        return nil
    }

    @Test("OK confirms; UNAVAILABLE is retryable; INVALID_ARGUMENT is not")
    func codes() {
        if case .confirmed(nil) = self.answer([("grpc-status", "0")]) {} else { Issue.record("OK confirms") }
        #expect(self.failure(self.answer([("grpc-status", "14"), ("grpc-message", "down%20for%20a%20bit")]))?.retryable == true)
        #expect(self.failure(self.answer([("grpc-status", "14"), ("grpc-message", "down%20for%20a%20bit")]))?.message == "down for a bit")
        let invalid = self.failure(self.answer([("grpc-status", "3"), ("grpc-message", "bad")]))
        #expect(invalid?.retryable == false && invalid?.code == 3 && invalid?.status == "INVALID_ARGUMENT")
    }

    @Test("RESOURCE_EXHAUSTED is retried only with RetryInfo, after its delay")
    func resourceExhausted() {
        #expect(self.failure(self.answer([("grpc-status", "8")]))?.retryable == false)
        let details = ResponseMessages.status(code: 8, message: "later", retryDelay: .milliseconds(1500))
        let encoded = GRPCFraming.base64NoPadding(details)
        let failure = self.failure(self.answer([("grpc-status", "8"), ("grpc-status-details-bin", encoded)]))
        #expect(failure?.retryable == true && failure?.retryAfter == .milliseconds(1500))
    }

    @Test("an HTTP error without gRPC is diagnosed as not a gRPC endpoint")
    func notGRPC() {
        let failure = self.failure(self.answer([], status: 404, headers: [("content-type", "text/plain")]))
        #expect(failure?.retryable == false && failure?.diagnosis?.contains("otlp_http") == true)
        #expect(self.failure(self.answer([], status: 503, headers: [("content-type", "text/plain")]))?.retryable == true)
    }
}

struct OTLPHTTPConfigurationTests {
    @Test("URLs: the scheme decides TLS, the port defaults to the scheme's, the path is kept")
    func urls() throws {
        let plain = try #require(OTLPHTTPExporterConfiguration.parseURL("http://gateway:4318/otlp"))
        #expect(plain.endpoint == Endpoint(host: "gateway", port: 4318) && plain.path == "/otlp" && !plain.secure)
        let secure = try #require(OTLPHTTPExporterConfiguration.parseURL("https://gateway"))
        #expect(secure.endpoint.port == 443 && secure.secure && secure.path == "")
        #expect(OTLPHTTPExporterConfiguration.parseURL("https://[::1]:4318/")?.endpoint == Endpoint(host: "::1", port: 4318))
        #expect(OTLPHTTPExporterConfiguration.parseURL("gateway:4318") == nil)
        #expect(OTLPHTTPExporterConfiguration.parseURL("http://") == nil)
    }
}

struct HTTPAnswerTests {
    let sender: OTLPHTTPSender
    let target = OTLPHTTPExporterConfiguration.Target(endpoint: Endpoint(host: "upstream", port: 4318), path: "/v1/traces", secure: false)

    init() throws {
        let configuration = OTLPHTTPExporterConfiguration(targets: [.traces: self.target], tls: nil)
        self.sender = try OTLPHTTPSender(configuration: configuration, settings: settings("otlp_http"))
    }

    func failure(_ status: Int, headers: [HTTPHeaderField] = [], body: ByteBuffer = ByteBuffer()) -> AttemptFailure? {
        if case .failed(let failure) = self.sender.outcome(HTTPClientResponse(status: status, headers: headers, body: body), target: self.target) {
            return failure
        }
        return nil
    }

    @Test("2xx confirms; 429/502/503/504 retry with Retry-After; 400 is permanent with the body's code and message")
    func statuses() {
        if case .confirmed = self.sender.outcome(HTTPClientResponse(status: 200), target: self.target) {} else { Issue.record("200 confirms") }
        for status in [429, 502, 503, 504] { #expect(self.failure(status)?.retryable == true, "\(status)") }
        #expect(self.failure(503, headers: [HTTPHeaderField("retry-after", "7")])?.retryAfter == .seconds(7))
        let body = ResponseMessages.status(code: 3, message: "span 2 has no name")
        let refused = self.failure(400, headers: [HTTPHeaderField("content-type", "application/x-protobuf")], body: body)
        #expect(refused?.retryable == false && refused?.code == 3 && refused?.message == "span 2 has no name")
        #expect(self.failure(401)?.code == 16 && self.failure(403)?.code == 7)
        #expect(self.failure(404)?.diagnosis?.contains("check the path") == true)
    }
}
