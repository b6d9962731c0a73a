import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import OTLPDHTTP
import OTLPDHTTP2
import OTLPDTransport
import Testing

/// A request handler that records what it gets and answers 200 with "ok".
final class RecordingHandler: RequestHandler {
    let requests = NIOLockedValueBox<[ServerRequest]>([])
    let failures = NIOLockedValueBox<[String]>([])
    let limit: Int
    /// Body bytes held, against `memoryLimit`, as the receivers' memory count does.
    let held = NIOLockedValueBox(0)
    let memoryLimit: Int
    let admitting = NIOLockedValueBox(true)
    /// What `held` was while each request was being handled.
    let heldDuringHandle = NIOLockedValueBox<[Int]>([])

    init(limit: Int = 1 << 20, memoryLimit: Int = .max) {
        self.limit = limit
        self.memoryLimit = memoryLimit
    }

    func admit(_ head: ServerRequestHead) -> Bool { self.admitting.withLockedValue { $0 } }

    func hold(_ bytes: Int) -> Bool {
        self.held.withLockedValue { held in
            guard held + bytes <= self.memoryLimit else { return false }
            held += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        self.held.withLockedValue { $0 -= bytes }
    }

    func hasRoom(for bytes: Int) -> Bool {
        self.held.withLockedValue { $0 + bytes <= self.memoryLimit }
    }

    func notAdmitted(_ head: ServerRequestHead) -> ServerResponse {
        ServerResponse(status: 503, headers: [HTTPHeaderField("retry-after", "1")], body: ByteBuffer(string: "busy"))
    }

    func bodyLimit(for head: ServerRequestHead) -> Int { self.limit }

    func bodyTooLarge(_ head: ServerRequestHead, limit: Int) -> ServerResponse {
        ServerResponse(status: 413, body: ByteBuffer(string: "too large"))
    }

    func handle(_ request: consuming ServerRequest) async -> ServerResponse {
        let request = request
        self.requests.withLockedValue { $0.append(request) }
        let held = self.held.withLockedValue { $0 }
        self.heldDuringHandle.withLockedValue { $0.append(held) }
        return ServerResponse(status: 200, headers: [HTTPHeaderField("content-type", "text/plain")], body: ByteBuffer(string: "ok:\(request.body.readableBytes)"))
    }

    func connectionFailed(client: ClientInfo, reason: String) {
        self.failures.withLockedValue { $0.append("\(client.endpoint) \(reason)") }
    }
}

func makeChannel(_ handler: RecordingHandler, role: ListenerRole = .http) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try channel.connect(to: SocketAddress(ipAddress: "10.1.2.3", port: 5555)).wait()
    channel.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 4318)
    try ConnectionSetup.install(on: channel, handler: handler, role: role, http2: HTTP2ServerSettings(), tls: nil)
    return channel
}

/// Everything the channel wrote, as text.
func written(_ channel: EmbeddedChannel) throws -> String {
    var text = ""
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
    return text
}

struct ProtocolSnifferTests {
    @Test("the HTTP/2 preface, fed a byte at a time")
    func prefaceDripFed() {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0]
        for length in 1..<24 {
            #expect(ProtocolSniffer.classify(ByteBuffer(bytes: preface.prefix(length))) == .needMoreBytes, "\(length) bytes")
        }
        #expect(ProtocolSniffer.classify(ByteBuffer(bytes: preface.prefix(24))) == .http2)
        #expect(ProtocolSniffer.classify(ByteBuffer(bytes: preface)) == .http2)
    }

    @Test func http1AsSoonAsItDiffers() {
        #expect(ProtocolSniffer.classify(ByteBuffer(string: "P")) == .needMoreBytes)
        #expect(ProtocolSniffer.classify(ByteBuffer(string: "PO")) == .http1)
        #expect(ProtocolSniffer.classify(ByteBuffer(string: "GET / HTTP/1.1\r\n")) == .http1)
        #expect(ProtocolSniffer.classify(ByteBuffer(string: "PRI * HTTP/1.1")) == .http1)
        #expect(ProtocolSniffer.classify(ByteBuffer()) == .needMoreBytes)
    }

    @Test func tlsHandshakeOnAPlainPort() {
        #expect(ProtocolSniffer.classify(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00])) == .tls)
    }
}

struct GRPCFramingTests {
    @Test func frameAndDeframe() throws {
        let message = ByteBuffer(string: "payload")
        let framed = GRPCFraming.frame(message)
        #expect(Array(framed.readableBytesView.prefix(5)) == [0, 0, 0, 0, 7])
        let (compressed, body) = try GRPCFraming.deframe(framed)
        #expect(!compressed)
        #expect(body == message)
        #expect(GRPCFraming.expectedBodySize(prefix: framed) == .bytes(12))
        #expect(GRPCFraming.expectedBodySize(prefix: ByteBuffer(bytes: [0, 0, 0])) == .needMoreBytes)
    }

    @Test func malformedFrames() {
        #expect(throws: GRPCFraming.DeframeError.truncated) { try GRPCFraming.deframe(ByteBuffer(bytes: [0, 0, 0, 0, 9, 1, 2])) }
        #expect(throws: GRPCFraming.DeframeError.truncated) { try GRPCFraming.deframe(ByteBuffer(bytes: [0, 0])) }
        #expect(throws: GRPCFraming.DeframeError.trailingData) { try GRPCFraming.deframe(ByteBuffer(bytes: [0, 0, 0, 0, 1, 1, 0])) }
        #expect((try? GRPCFraming.deframe(ByteBuffer(bytes: [1, 0, 0, 0, 1, 0x1F])))?.compressed == true)
        #expect(throws: GRPCFraming.DeframeError.unknownFlags(2)) { try GRPCFraming.deframe(ByteBuffer(bytes: [2, 0, 0, 0, 1, 0x1F])) }
        #expect(throws: GRPCFraming.DeframeError.unknownFlags(0x81)) { try GRPCFraming.deframe(ByteBuffer(bytes: [0x81, 0, 0, 0, 0])) }
    }

    @Test func errorResponsesAreTrailersOnly() {
        let response = GRPCFraming.errorResponse(.invalidArgument, message: "bad 100% ünïcode\nline", details: ByteBuffer(bytes: [1, 2, 3]))
        #expect(response.body == nil && response.trailers == nil)
        #expect(response.headers.first { $0.name == "grpc-status" }?.value == "3")
        #expect(response.headers.first { $0.name == "grpc-message" }?.value == "bad 100%25 %C3%BCn%C3%AFcode%0Aline")
        #expect(response.headers.first { $0.name == "grpc-status-details-bin" }?.value == "AQID")
        let ok = GRPCFraming.okResponse(ByteBuffer())
        #expect(ok.trailers?.first { $0.name == "grpc-status" }?.value == "0")
        #expect(ok.body?.readableBytes == 5)
    }
}

struct HTTP1ConnectionTests {
    @Test func requestResponseKeepAlive() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5\r\n\r\nhello"))
        let response = try written(channel)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.lowercased().contains("content-length: 4\r\n"))
        #expect(response.hasSuffix("ok:5"))
        #expect(channel.isActive)
        let request = try #require(handler.requests.withLockedValue { $0.first })
        #expect(request.head.method == "POST")
        #expect(request.head.path == "/v1/traces")
        #expect(request.head.version == .http1)
        #expect(request.head.header("content-type") == "application/x-protobuf")
        #expect(request.head.client.address == "10.1.2.3")
        #expect(request.head.client.role == .http)
    }

    @Test func pipelinedRequestsAnsweredInOrder() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        let one = "POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
        let two = "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
        try channel.writeInbound(ByteBuffer(string: one + two))
        let response = try written(channel)
        let first = try #require(response.range(of: "ok:1"))
        let second = try #require(response.range(of: "ok:3"))
        #expect(first.lowerBound < second.lowerBound)
        #expect(handler.requests.withLockedValue { $0.map(\.head.path) } == ["/a", "/b"])
    }

    @Test func expectContinue() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/logs HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"))
        #expect(try written(channel).hasPrefix("HTTP/1.1 100 Continue\r\n"))
        try channel.writeInbound(ByteBuffer(string: "hi"))
        #expect(try written(channel).hasSuffix("ok:2"))
    }

    @Test func declaredLengthOverTheLimit() throws {
        let handler = RecordingHandler(limit: 10)
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 100\r\n\r\n"))
        let response = try written(channel)
        #expect(response.hasPrefix("HTTP/1.1 413"))
        #expect(response.lowercased().contains("connection: close"))
        #expect(!channel.isActive)
        #expect(handler.requests.withLockedValue { $0.isEmpty })
    }

    @Test("a body is counted from its head (declared length) until its answer")
    func bodyIsHeldUntilAnswered() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"))
        #expect(try written(channel).hasSuffix("ok:5"))
        #expect(handler.heldDuringHandle.withLockedValue { $0 } == [5])
        #expect(handler.held.withLockedValue { $0 } == 0)
        // Chunked: counted as it arrives.
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"))
        #expect(try written(channel).hasSuffix("ok:7"))
        #expect(handler.heldDuringHandle.withLockedValue { $0 } == [5, 7])
        #expect(handler.held.withLockedValue { $0 } == 0)
    }

    @Test("a body that stops coming for read_header_timeout is cut off, with one line naming the client")
    func stalledBodyIsCutOff() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 10\r\n\r\n123"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        try channel.writeInbound(ByteBuffer(string: "45"))  // progress: the 10 s start again
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        #expect(channel.isActive, "6 s since the last bytes")
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(!channel.isActive)
        #expect(handler.failures.withLockedValue { $0 } == ["10.1.2.3:5555 sent no more of its request body for 10.0 seconds (read_header_timeout); connection closed"])
        #expect(handler.requests.withLockedValue { $0.isEmpty } && handler.held.withLockedValue { $0 } == 0)
    }

    @Test("not admitted: 503 at once, the body is read and dropped, and the connection stays open")
    func overloadedAtTheHead() throws {
        let handler = RecordingHandler()
        handler.admitting.withLockedValue { $0 = false }
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"))
        let refused = try written(channel)
        #expect(refused.hasPrefix("HTTP/1.1 503"))
        #expect(refused.lowercased().contains("retry-after: 1"))
        #expect(!refused.lowercased().contains("connection: close"))
        try channel.writeInbound(ByteBuffer(string: "67890"))
        #expect(channel.isActive)
        handler.admitting.withLockedValue { $0 = true }
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"))
        #expect(try written(channel).hasSuffix("ok:2"))
        #expect(handler.requests.withLockedValue { $0.count } == 1)
        #expect(handler.held.withLockedValue { $0 } == 0)
    }

    @Test("past the memory count mid-body: 503, what was held is given back, the rest drained")
    func overloadedMidBody() throws {
        let handler = RecordingHandler(memoryLimit: 6)
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"))
        #expect(handler.held.withLockedValue { $0 } == 4)
        try channel.writeInbound(ByteBuffer(string: "4\r\nefgh\r\n"))
        #expect(try written(channel).hasPrefix("HTTP/1.1 503"))
        #expect(handler.held.withLockedValue { $0 } == 0)
        try channel.writeInbound(ByteBuffer(string: "4\r\nijkl\r\n0\r\n\r\n"))
        #expect(channel.isActive)
        #expect(handler.requests.withLockedValue { $0.isEmpty })
        // A body announced is counted as it arrives, not as announced.
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"))
        #expect(handler.held.withLockedValue { $0 } == 2)
        try channel.writeInbound(ByteBuffer(string: "cde"))
        #expect(try written(channel).hasSuffix("ok:5") && handler.held.withLockedValue { $0 } == 0)
        // A declared length past the count is refused before any of it is read.
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"))
        let refused = try written(channel)
        #expect(refused.hasPrefix("HTTP/1.1 503") && refused.lowercased().contains("connection: close"))
        try channel.writeInbound(ByteBuffer(string: "1234567"))
        #expect(!channel.isActive)
        #expect(handler.held.withLockedValue { $0 } == 0)
    }

    @Test func chunkedBodyOverTheLimit() throws {
        let handler = RecordingHandler(limit: 10)
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"))
        #expect(try written(channel).hasPrefix("HTTP/1.1 413"))
        #expect(!channel.isActive)
    }

    @Test func garbageIsRefusedAndReported() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        _ = try? channel.writeInbound(ByteBuffer(bytes: [0x00, 0xFF, 0x13, 0x37, 0x0D, 0x0A, 0x0D, 0x0A]))
        #expect(try written(channel).hasPrefix("HTTP/1.1 400"))
        #expect(handler.failures.withLockedValue { $0.first?.hasPrefix("10.1.2.3:5555 not a valid HTTP/1.1 request") } == true)
        #expect(!channel.isActive)
    }

    @Test func tlsToAPlainListener() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]))
        #expect(!channel.isActive)
        #expect(handler.failures.withLockedValue { $0 } == ["10.1.2.3:5555 sent a TLS handshake to a listener without TLS"])
    }

    @Test func http2PrefaceInstallsHTTP2() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler, role: .grpc)
        try channel.writeInbound(ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
        // The server's SETTINGS frame (type 4) is its first output.
        let output = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(output.getInteger(at: output.readerIndex + 3, as: UInt8.self) == 4)
        #expect(channel.isActive)
    }

    @Test func quiescingClosesAnIdleConnection() throws {
        let handler = RecordingHandler()
        let channel = try makeChannel(handler)
        try channel.writeInbound(ByteBuffer(string: "POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"))
        _ = try written(channel)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!channel.isActive)
    }
}

extension String {
    fileprivate func range(of needle: String) -> Range<String.Index>? {
        var start = self.startIndex
        while start < self.endIndex {
            if self[start...].hasPrefix(needle) { return start..<self.index(start, offsetBy: needle.count) }
            start = self.index(after: start)
        }
        return nil
    }
}
