import NIOCore
import NIOEmbedded
import OTLPDHTTP
import OTLPDHTTP2
import Testing

/// The client handler and the server handler, each on an embedded channel,
/// with the bytes each writes carried to the other.
struct ClientServerPair {
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let delegate: RecordingDelegate
    let handler: HTTP2ClientHandler
    var unusable: UnusableFlag

    final class UnusableFlag {
        var told = 0
    }

    init(serverSettings: HTTP2ServerSettings = HTTP2ServerSettings()) throws {
        self.delegate = RecordingDelegate()
        self.server = EmbeddedChannel()
        try self.server.pipeline.syncOperations.addHandler(HTTP2ServerHandler(settings: serverSettings, delegate: self.delegate))
        let flag = UnusableFlag()
        self.unusable = flag
        self.handler = HTTP2ClientHandler { flag.told += 1 }
        self.client = EmbeddedChannel()
        try self.client.pipeline.syncOperations.addHandler(self.handler)
        try self.client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try self.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
    }

    /// Carries bytes both ways until neither side has more to say.
    func exchange() throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try self.client.readOutbound(as: ByteBuffer.self) {
                try self.server.writeInbound(bytes)
                moved = true
            }
            while let bytes = try self.server.readOutbound(as: ByteBuffer.self) {
                try self.client.writeInbound(bytes)
                moved = true
            }
        }
    }

    func submit(_ body: [ByteBuffer], path: String = "/x.S/M") -> EventLoopFuture<HTTPClientResponse> {
        let promise = self.client.eventLoop.makePromise(of: HTTPClientResponse.self)
        let request = HTTPClientRequest(
            scheme: "http", authority: "upstream:4317", path: path, headers: [HTTPHeaderField("content-type", "application/grpc")], body: body)
        self.handler.submit(request, promise: promise)
        return promise.futureResult
    }
}

struct HTTP2ClientHandlerTests {
    @Test("a request's body pieces arrive as one body; the response and trailers come back")
    func roundTrip() throws {
        let pair = try ClientServerPair()
        let response = pair.submit([ByteBuffer(string: "ab"), ByteBuffer(string: "cde"), ByteBuffer(string: "f")])
        try pair.exchange()
        let answer = try response.wait()
        #expect(pair.delegate.requests.count == 1)
        #expect(String(buffer: pair.delegate.requests[0].body) == "abcdef")
        #expect(pair.delegate.requests[0].head.path == "/x.S/M" && pair.delegate.requests[0].head.authority == "upstream:4317")
        #expect(answer.status == 200)
        #expect(String(buffer: answer.body) == "echo:6")
        #expect(answer.trailer("grpc-status") == "0")
        #expect(answer.header("content-type") == "application/grpc")
    }

    @Test("many requests share the connection, each answered on its own stream")
    func multiplexing() throws {
        let pair = try ClientServerPair()
        pair.delegate.answerAtOnce = false
        let responses = (0..<5).map { pair.submit([ByteBuffer(string: String(repeating: "x", count: $0 + 1))]) }
        try pair.exchange()
        #expect(pair.delegate.requests.count == 5)
        // Answered in reverse order.
        for (request, responder) in zip(pair.delegate.requests, pair.delegate.responders).reversed() {
            responder.respond(RecordingDelegate.ok(request))
        }
        try pair.exchange()
        for (index, response) in responses.enumerated() {
            #expect(String(buffer: try response.wait().body) == "echo:\(index + 1)")
        }
        #expect(pair.handler.activeStreams == 0)
    }

    @Test("streams past the server's MAX_CONCURRENT_STREAMS wait for a free one")
    func concurrencyLimit() throws {
        let pair = try ClientServerPair(serverSettings: HTTP2ServerSettings(maxConcurrentStreams: 2))
        pair.delegate.answerAtOnce = false
        // The client learns the limit from the server's SETTINGS first.
        try pair.exchange()
        let responses = (0..<4).map { _ in pair.submit([ByteBuffer(string: "x")]) }
        try pair.exchange()
        #expect(pair.delegate.requests.count == 2)
        for (request, responder) in zip(pair.delegate.requests, pair.delegate.responders) { responder.respond(RecordingDelegate.ok(request)) }
        try pair.exchange()
        #expect(pair.delegate.requests.count == 4)
        for (request, responder) in zip(pair.delegate.requests, pair.delegate.responders).dropFirst(2) {
            responder.respond(RecordingDelegate.ok(request))
        }
        try pair.exchange()
        for response in responses { #expect(try response.wait().status == 200) }
    }

    @Test("a cancelled stream fails its request at once with the given error")
    func cancel() throws {
        let pair = try ClientServerPair()
        pair.delegate.answerAtOnce = false
        let promise = pair.client.eventLoop.makePromise(of: HTTPClientResponse.self)
        let id = pair.handler.submit(
            HTTPClientRequest(scheme: "http", authority: "u:1", path: "/p", headers: [], body: [ByteBuffer(string: "x")]), promise: promise)
        try pair.exchange()
        pair.handler.cancel(try #require(id), HTTPClientError(.timedOut, "late"))
        #expect(throws: HTTPClientError(.timedOut, "late")) { try promise.futureResult.wait() }
        try pair.exchange()
    }

    @Test("a server's graceful GOAWAY: the connection takes no new streams, those under way are answered")
    func goAway() throws {
        let pair = try ClientServerPair()
        pair.delegate.answerAtOnce = false
        let first = pair.submit([ByteBuffer(string: "x")])
        try pair.exchange()
        pair.server.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try pair.exchange()
        #expect(pair.unusable.told == 1)
        #expect(!pair.handler.acceptsNewStreams)
        let late = pair.submit([ByteBuffer(string: "y")])
        #expect(throws: HTTPClientError.self) { try late.wait() }
        pair.delegate.responders[0].respond(RecordingDelegate.ok(pair.delegate.requests[0]))
        try pair.exchange()
        #expect(try first.wait().status == 200)
    }

    @Test("the connection closing fails what is under way")
    func closeFailsPending() throws {
        let pair = try ClientServerPair()
        pair.delegate.answerAtOnce = false
        let response = pair.submit([ByteBuffer(string: "x")])
        try pair.exchange()
        pair.client.pipeline.fireChannelInactive()
        #expect(throws: HTTPClientError(.connectionLost, "the upstream closed the connection")) { try response.wait() }
        #expect(pair.unusable.told == 1)
    }

    @Test("an HTTP/1.1 answer to the preface is named as such")
    func http1Answer() throws {
        let (channel, handler) = try HTTP2ClientHandlerProbe.connected()
        let promise = channel.eventLoop.makePromise(of: HTTPClientResponse.self)
        handler.submit(HTTPClientRequest(scheme: "http", authority: "u:1", path: "/p", headers: [], body: []), promise: promise)
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
        do {
            _ = try promise.futureResult.wait()
            Issue.record("expected a failure")
        } catch let error as HTTPClientError {
            #expect(error.kind == .wrongProtocol(.http1))
            #expect(error.message.contains("HTTP/1.1 400 Bad Request"))
        }
    }

    @Test("a request submitted after the peer answered as no HTTP/2 server hears what it was")
    func wrongProtocolBeforeSubmit() throws {
        let (channel, handler) = try HTTP2ClientHandlerProbe.connected()
        try? channel.writeInbound(ByteBuffer(string: "<!DOCTYPE HTML>"))
        let promise = channel.eventLoop.makePromise(of: HTTPClientResponse.self)
        handler.submit(HTTPClientRequest(scheme: "http", authority: "u:1", path: "/p", headers: [], body: []), promise: promise)
        var kind: HTTPClientError.Kind?
        promise.futureResult.whenFailure { kind = ($0 as? HTTPClientError)?.kind }
        #expect(kind == .wrongProtocol(.other))
    }

    @Test("first bytes that are not a SETTINGS frame, or a TLS record, are told apart")
    func sniffing() {
        #expect(HTTP2ClientHandlerProbe.kind(of: [0x15, 0x03, 0x01, 0x00, 0x02]) == .wrongProtocol(.tls))
        #expect(HTTP2ClientHandlerProbe.kind(of: Array("<!DOCTYPE HTML>".utf8)) == .wrongProtocol(.other))
        // A SETTINGS frame header: length 0, type 4, no flags, stream 0.
        #expect(HTTP2ClientHandlerProbe.kind(of: [0, 0, 0, 4, 0, 0, 0, 0, 0]) == nil)
    }
}

/// Runs the handler's first-bytes check alone.
enum HTTP2ClientHandlerProbe {
    /// A client handler on a connected embedded channel, with no server behind it.
    static func connected() throws -> (EmbeddedChannel, HTTP2ClientHandler) {
        let channel = EmbeddedChannel()
        let handler = HTTP2ClientHandler {}
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler)
    }

    static func kind(of bytes: [UInt8]) -> HTTPClientError.Kind? {
        guard let (channel, handler) = try? Self.connected() else { return nil }
        let promise = channel.eventLoop.makePromise(of: HTTPClientResponse.self)
        handler.submit(HTTPClientRequest(scheme: "http", authority: "u:1", path: "/p", headers: [], body: []), promise: promise)
        var kind: HTTPClientError.Kind?
        promise.futureResult.whenFailure { kind = ($0 as? HTTPClientError)?.kind }
        try? channel.writeInbound(ByteBuffer(bytes: bytes))
        return kind
    }
}
