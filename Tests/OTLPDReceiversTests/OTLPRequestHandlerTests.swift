import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCompression
import OTLPDCore
import OTLPDHTTP
import OTLPDReceivers
import OTLPDTestSupport
import OTLPDTransport
import OTLPDWire
import Testing

/// The receiver's answers to every kind of request, called directly.
struct OTLPRequestHandlerTests {
    let consumer = RecordingConsumer()
    let logs = LogRecorder()
    let handler: OTLPRequestHandler

    init() {
        var configuration = OTLPReceiverConfiguration()
        configuration.http?.maxRequestBodyBytes = 64 * 1024
        configuration.grpc?.maxReceiveMessageBytes = 64 * 1024
        self.handler = OTLPRequestHandler(configuration: configuration, consumers: [.traces: self.consumer, .logs: self.consumer], settings: Self.settings(self.logs))
        self.handler.ports.withLockedValue { $0 = (4317, 4318) }
    }

    static func settings(_ logs: LogRecorder) -> ComponentSettings {
        ComponentSettings(id: ComponentID(type: "otlp"), logger: logs.logger(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
    }

    func head(_ method: String = "POST", _ path: String = "/v1/traces", _ headers: [(String, String)] = [], version: WireProtocol = .http1, role: ListenerRole = .http, client: String = "10.0.0.7") -> ServerRequestHead {
        ServerRequestHead(
            method: method, path: path, headers: headers.map { HTTPHeaderField($0.0, $0.1) }, version: version,
            client: ClientInfo(address: client, endpoint: "\(client):40000", role: role, localPort: role == .http ? 4318 : 4317, isTLS: false))
    }

    func http(_ body: ByteBuffer, contentType: String = "application/x-protobuf", path: String = "/v1/traces", method: String = "POST", extra: [(String, String)] = []) async -> ServerResponse {
        await self.handler.handle(ServerRequest(head: self.head(method, path, [("content-type", contentType)] + extra), body: body))
    }

    func grpc(_ message: ByteBuffer, path: String = "/opentelemetry.proto.collector.trace.v1.TraceService/Export", extra: [(String, String)] = [], role: ListenerRole = .grpc, client: String = "10.0.0.7") async -> ServerResponse {
        await self.handler.handle(
            ServerRequest(framed: self.head("POST", path, [("content-type", "application/grpc")] + extra, version: .http2, role: role, client: client), body: GRPCFraming.frame(message)))
    }

    /// The google.rpc.Status of an error body, as JSON.
    func status(_ response: ServerResponse) throws -> [String: Any] {
        let body = try #require(response.body)
        if response.headers.contains(where: { $0.name == "content-type" && $0.value == "application/json" }) {
            return try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as! [String: Any]
        }
        let json = try OTLPJSONEncoder.encode(body, message: ResponseMessages.statusIndex)
        return try JSONSerialization.jsonObject(with: Data(json.readableBytesView)) as! [String: Any]
    }

    func header(_ response: ServerResponse, _ name: String) -> String? {
        response.headers.first { $0.name == name }?.value
    }

    // MARK: OTLP/HTTP

    @Test func protobufSuccess() async throws {
        let response = await self.http(TestRequests.traces(spans: 3))
        #expect(response.status == 200)
        #expect(self.header(response, "content-type") == "application/x-protobuf")
        #expect(response.body?.readableBytes == 0)
        #expect(self.consumer.itemCounts == [3])
    }

    @Test func jsonSuccess() async throws {
        let json = #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"x"}]}]}]}"#
        let response = await self.http(ByteBuffer(string: json), contentType: "application/json; charset=utf-8")
        #expect(response.status == 200)
        #expect(self.header(response, "content-type") == "application/json")
        #expect(String(buffer: response.body!) == "{}")
        #expect(self.consumer.itemCounts == [1])
    }

    @Test func gzipAndZstdBodies() async throws {
        for coding in [ContentCoding.gzip, .zstd, .deflate] {
            let body = Compression.compress(TestRequests.traces(spans: 2), coding: coding)
            let response = await self.http(body, extra: [("content-encoding", coding.rawValue)])
            #expect(response.status == 200, "\(coding)")
        }
        #expect(self.consumer.itemCounts == [2, 2, 2])
    }

    @Test("400 for a body that does not decode, in the request's encoding")
    func badBodies() async throws {
        let protobuf = await self.http(ByteBuffer(bytes: [0x0A, 0x7F, 0x01]))
        #expect(protobuf.status == 400)
        #expect(try self.status(protobuf)["code"] as? Int == 3)
        #expect((try self.status(protobuf)["message"] as? String)?.contains("not a valid ExportTraceServiceRequest") == true)
        let json = await self.http(ByteBuffer(string: "{\"resourceSpans\": [}"), contentType: "application/json")
        #expect(json.status == 400)
        #expect(self.header(json, "content-type") == "application/json")
        #expect(try self.status(json)["code"] as? Int == 3)
        #expect(self.consumer.batches.isEmpty)
    }

    @Test func unsupportedContentType() async throws {
        let response = await self.http(TestRequests.traces(spans: 1), contentType: "text/plain")
        #expect(response.status == 415)
        #expect((try self.status(response)["message"] as? String)?.contains("application/x-protobuf or application/json") == true)
    }

    @Test("404 names the valid paths")
    func unknownPath() async throws {
        let response = await self.http(TestRequests.traces(spans: 1), path: "/v1/trace")
        #expect(response.status == 404)
        let message = try #require(try self.status(response)["message"] as? String)
        #expect(message.contains("/v1/traces") && message.contains("/v1/metrics") && message.contains("/v1/logs"))
    }

    @Test func wrongMethod() async throws {
        let response = await self.http(ByteBuffer(), method: "GET")
        #expect(response.status == 405)
        #expect(self.header(response, "allow") == "POST")
    }

    @Test func unsupportedContentEncoding() async throws {
        let response = await self.http(TestRequests.traces(spans: 1), extra: [("content-encoding", "snappy")])
        #expect(response.status == 400)
        #expect((try self.status(response)["message"] as? String)?.contains("snappy") == true)
    }

    @Test("413 when the decompressed body passes the limit (a gzip bomb)")
    func decompressionBomb() async throws {
        let bomb = Compression.compress(ByteBuffer(bytes: [UInt8](repeating: 0, count: 1 << 20)), coding: .gzip)
        #expect(bomb.readableBytes < 64 * 1024)
        let response = await self.http(bomb, extra: [("content-encoding", "gzip")])
        #expect(response.status == 413)
        #expect(try self.status(response)["code"] as? Int == 8)
        #expect(self.handler.bodyTooLarge(self.head(), limit: 1).status == 413)
    }

    @Test("a pipeline that cannot take data now: 503 with Retry-After and RetryInfo")
    func retryable() async throws {
        self.consumer.fail(with: .retryable("over the memory limit", after: .seconds(3)))
        let response = await self.http(TestRequests.traces(spans: 1))
        #expect(response.status == 503)
        #expect(self.header(response, "retry-after") == "3")
        let status = try self.status(response)
        #expect(status["code"] as? Int == 14)
        #expect((status["details"] as? [[String: Any]])?.first?["typeUrl"] as? String == "type.googleapis.com/google.rpc.RetryInfo")
        let json = await self.http(ByteBuffer(string: "{}"), contentType: "application/json")
        #expect((try self.status(json)["details"] as? [[String: Any]])?.first?["retryDelay"] as? String == "3s")
    }

    @Test func noPipelineForTheSignal() async throws {
        let response = await self.http(ByteBuffer(), path: "/v1/metrics")
        #expect(response.status == 404)
        #expect((try self.status(response)["message"] as? String)?.contains("no metrics pipeline") == true)
    }

    @Test("each refusal is one log line naming the client and the reason")
    func refusalsAreLogged() async throws {
        _ = await self.http(ByteBuffer(bytes: [0xFF]))
        let entry = try #require(self.logs.all.first { $0.message == "request refused" })
        #expect(entry.level == .warning)
        #expect(entry.metadata["client"] == "10.0.0.7:40000")
        #expect(entry.metadata["status"] == "400")
        #expect(entry.metadata["reason"]?.contains("not a valid ExportTraceServiceRequest") == true)
    }

    @Test func corsPreflight() async throws {
        var configuration = OTLPReceiverConfiguration()
        configuration.http?.cors = CORSConfiguration(allowedOrigins: ["http://localhost:*"], allowedHeaders: ["x-custom"], maxAge: 600)
        let handler = OTLPRequestHandler(configuration: configuration, consumers: [.traces: self.consumer], settings: Self.settings(self.logs))
        let allowed = await handler.handle(
            ServerRequest(
                head: self.head("OPTIONS", "/v1/traces", [("origin", "http://localhost:5173"), ("access-control-request-method", "POST"), ("access-control-request-headers", "content-type, x-custom")]),
                body: ByteBuffer()))
        #expect(allowed.status == 204)
        #expect(self.header(allowed, "access-control-allow-origin") == "http://localhost:5173")
        #expect(self.header(allowed, "access-control-allow-headers") == "content-type, x-custom")
        #expect(self.header(allowed, "access-control-max-age") == "600")
        let refused = await handler.handle(
            ServerRequest(head: self.head("OPTIONS", "/v1/traces", [("origin", "https://evil.example"), ("access-control-request-method", "POST")]), body: ByteBuffer()))
        #expect(self.header(refused, "access-control-allow-origin") == nil)
        let post = await handler.handle(
            ServerRequest(head: self.head("POST", "/v1/traces", [("origin", "http://localhost:3000"), ("content-type", "application/x-protobuf")]), body: TestRequests.traces(spans: 1)))
        #expect(post.status == 200)
        #expect(self.header(post, "access-control-allow-origin") == "http://localhost:3000")
    }

    // MARK: OTLP/gRPC

    @Test func grpcSuccess() async throws {
        let response = await self.grpc(TestRequests.traces(spans: 4))
        #expect(response.status == 200)
        #expect(response.trailers?.first { $0.name == "grpc-status" }?.value == "0")
        #expect(self.consumer.itemCounts == [4])
    }

    @Test func grpcCompressed() async throws {
        var framed = GRPCFraming.frame(Compression.compress(TestRequests.traces(spans: 2), coding: .gzip))
        framed.setInteger(UInt8(1), at: framed.readerIndex)
        let response = await self.handler.handle(
            ServerRequest(
                framed: self.head("POST", "/opentelemetry.proto.collector.trace.v1.TraceService/Export", [("content-type", "application/grpc"), ("grpc-encoding", "gzip")], version: .http2, role: .grpc),
                body: framed))
        #expect(response.trailers?.first { $0.name == "grpc-status" }?.value == "0")
    }

    @Test func grpcErrors() async throws {
        let cases: [(ServerResponse, String)] = [
            (await self.grpc(ByteBuffer(bytes: [0x0A, 0x7F])), "3"),
            (await self.grpc(TestRequests.traces(spans: 1), path: "/opentelemetry.proto.collector.trace.v1.TraceService/Nope"), "12"),
            (await self.grpc(TestRequests.traces(spans: 1), extra: [("grpc-encoding", "snappy")]), "12"),
            (await self.grpc(TestRequests.traces(spans: 1), path: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"), "12"),
        ]
        for (response, code) in cases {
            #expect(response.headers.first { $0.name == "grpc-status" }?.value == code)
            #expect(response.trailers == nil)
        }
        #expect(self.handler.bodyTooLarge(self.head(version: .http2, role: .grpc).withGRPC(), limit: 1).headers.first { $0.name == "grpc-status" }?.value == "8")
    }

    @Test func grpcRetryable() async throws {
        self.consumer.fail(with: .retryable("busy", after: .milliseconds(1500)))
        let response = await self.grpc(TestRequests.traces(spans: 1))
        #expect(response.headers.first { $0.name == "grpc-status" }?.value == "14")
        #expect(response.headers.contains { $0.name == "grpc-status-details-bin" })
    }

    // MARK: The port mix-up

    @Test("gRPC on the HTTP port is served, with one warning per client address")
    func mixUpWarnsOncePerClient() async throws {
        for _ in 0..<3 {
            #expect(await self.grpc(TestRequests.traces(spans: 1), role: .http).trailers?.first?.value == "0")
        }
        _ = await self.grpc(TestRequests.traces(spans: 1), role: .http, client: "10.0.0.8")
        #expect(await self.handler.handle(ServerRequest(head: self.head(role: .grpc).withContentType("application/x-protobuf"), body: TestRequests.traces(spans: 1))).status == 200)
        let warnings = self.logs.all.filter { $0.level == .warning }
        #expect(warnings.filter { $0.message.contains("sent OTLP/gRPC to the OTLP/HTTP port 4318") }.count == 2)
        #expect(warnings.filter { $0.message.contains("sent OTLP/HTTP to the OTLP/gRPC port 4317") }.count == 1)
        #expect(warnings.first?.message.contains("port 4317") == true)
        #expect(self.consumer.itemCounts.count == 5)
    }
}

extension ServerRequestHead {
    fileprivate func withGRPC() -> ServerRequestHead {
        var copy = self
        copy.headers.append(HTTPHeaderField("content-type", "application/grpc"))
        return copy
    }

    fileprivate func withContentType(_ value: String) -> ServerRequestHead {
        var copy = self
        copy.headers.append(HTTPHeaderField("content-type", value))
        return copy
    }
}
