import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import OTLPDHTTP

/// Requests to one upstream address over HTTP/1.1 keep-alive connections:
/// one request at a time on each (no pipelining), an idle one reused, a new
/// one opened when none is idle. The caller bounds how many run at once.
/// A request whose deadline passes closes its connection: HTTP/1.1 has no
/// other way to cancel one. Over TLS it offers HTTP/2 too (ALPN), and an
/// upstream that takes it gets every request on one HTTP/2 connection.
public final class HTTP1Client: Sendable {
    public let host: String
    public let port: Int
    private let group: any EventLoopGroup
    private let tls: NIOSSLContext?
    private let serverName: String?
    private let idle = NIOLockedValueBox(Idle())
    /// Set once the upstream chose HTTP/2 by ALPN: every request goes there from then on.
    private let http2 = NIOLockedValueBox<HTTP2Client?>(nil)
    /// Told once, when the upstream chose HTTP/2.
    private let choseHTTP2: (@Sendable () -> Void)?

    private struct Idle {
        var connections: [Connection] = []
        var closed = false
    }

    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<HTTP1ClientHandler>
    }

    /// Idle connections kept for reuse; more are closed once answered.
    static let maxIdle = 16

    /// `tls` should offer `h2` and `http/1.1` by ALPN for the upstream to choose.
    public init(
        host: String, port: Int, tls: NIOSSLContext?, serverName: String? = nil, group: any EventLoopGroup,
        choseHTTP2: (@Sendable () -> Void)? = nil
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.serverName = serverName
        self.group = group
        self.choseHTTP2 = choseHTTP2
    }

    /// The upstream's HTTP/2 client once it chose HTTP/2, made once.
    private func upgradedClient() -> HTTP2Client {
        let (client, made) = self.http2.withLockedValue { current -> (HTTP2Client, Bool) in
            if let current { return (current, false) }
            let client = HTTP2Client(host: self.host, port: self.port, tls: self.tls, serverName: self.serverName, authority: self.authority, group: self.group)
            current = client
            return (client, true)
        }
        if made { self.choseHTTP2?() }
        return client
    }

    public var authority: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    public func send(_ request: HTTPClientRequest, deadline: NIODeadline) async throws(HTTPClientError) -> HTTPClientResponse {
        if let http2 = self.http2.withLockedValue({ $0 }) { return try await http2.send(request, deadline: deadline) }
        let connection: Connection
        do {
            connection = try await self.connection(deadline: deadline)
        } catch where error.message == Self.choseHTTP2Message {
            return try await self.upgradedClient().send(request, deadline: deadline)
        }
        let eventLoop = connection.channel.eventLoop
        let promise = eventLoop.makePromise(of: HTTPClientResponse.self)
        let handler = connection.handler
        let channel = connection.channel
        eventLoop.execute {
            handler.value.execute(request, promise: promise)
            let timer = eventLoop.scheduleTask(deadline: deadline) {
                handler.value.fail(HTTPClientError(.timedOut, "no answer before the deadline"))
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in timer.cancel() }
        }
        do {
            let response = try await promise.futureResult.get()
            // The upstream may close a connection after its answer.
            self.release(connection, reusable: response.header("connection")?.lowercased() != "close")
            return response
        } catch let error as HTTPClientError {
            connection.channel.close(promise: nil)
            throw error
        } catch {
            connection.channel.close(promise: nil)
            throw HTTPClientError(.connectionLost, "\(error)")
        }
    }

    /// Closes the idle connections; later requests fail.
    public func shutdown() async {
        if let http2 = self.http2.withLockedValue({ $0 }) { await http2.shutdown() }
        let connections = self.idle.withLockedValue { idle -> [Connection] in
            idle.closed = true
            defer { idle.connections = [] }
            return idle.connections
        }
        for connection in connections { try? await connection.channel.close() }
    }

    private func release(_ connection: Connection, reusable: Bool) {
        let keep = reusable && connection.channel.isActive && self.idle.withLockedValue { idle in
            guard !idle.closed, idle.connections.count < Self.maxIdle else { return false }
            idle.connections.append(connection)
            return true
        }
        if !keep { connection.channel.close(promise: nil) }
    }

    private func connection(deadline: NIODeadline) async throws(HTTPClientError) -> Connection {
        while true {
            let (reused, closed) = self.idle.withLockedValue { idle -> (Connection?, Bool) in
                (idle.connections.popLast(), idle.closed)
            }
            if closed { throw HTTPClientError(.connectFailed, "the client is shut down") }
            guard let reused else { break }
            if reused.channel.isActive { return reused }
        }
        do {
            return try await self.connect(deadline: deadline).get()
        } catch let error as HTTPClientError {
            throw error
        } catch {
            throw HTTPClientError(.connectFailed, "\(error)")
        }
    }

    private func connect(deadline: NIODeadline) -> EventLoopFuture<Connection> {
        let tls = self.tls
        let authority = self.authority
        let connector = UpstreamConnector(
            host: self.host, port: self.port, tls: tls, serverName: self.serverName, authority: authority, group: self.group)
        return connector.connect(deadline: deadline) { _, sync in
            if tls != nil { try sync.addHandler(ALPNProbe()) }
            try sync.addHandler(HTTP1ResponseSniffer())
            try sync.addHTTPClientHandlers()
            try sync.addHandler(HTTP1ClientHandler(authority: authority))
        }
            .flatMap { channel in
                // Over TLS, nothing is sent before the upstream has said which protocol it takes.
                let chosen: EventLoopFuture<String?> =
                    tls == nil
                    ? channel.eventLoop.makeSucceededFuture(nil)
                    : channel.pipeline.handler(type: ALPNProbe.self).flatMap { $0.negotiated.futureResult }
                return chosen.flatMap { chosenProtocol in
                    guard chosenProtocol != "h2" else {
                        channel.close(promise: nil)
                        return channel.eventLoop.makeFailedFuture(HTTPClientError(.refused, Self.choseHTTP2Message))
                    }
                    return channel.pipeline.handler(type: HTTP1ClientHandler.self).map { handler in
                        Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                }
            }
    }

    /// Not an error a caller sees: the probe's way of saying the upstream took HTTP/2.
    static let choseHTTP2Message = "the upstream chose HTTP/2 by ALPN"
}

/// Learns which protocol the TLS handshake settled on (ALPN), or why it
/// failed. It stays in the pipeline (a lookup must always find it) and
/// completes its promise once.
final class ALPNProbe: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private(set) var negotiated: EventLoopPromise<String?>!
    private var settled = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.negotiated = context.eventLoop.makePromise(of: String?.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.settle(.failure(HTTPClientError(.connectionLost, "the connection closed during the TLS handshake")))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let chosen) = event { self.settle(.success(chosen)) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.settle(.failure(error as? HTTPClientError ?? HTTPClientError(.connectFailed, "TLS handshake failed: \(error)")))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.settle(.failure(HTTPClientError(.connectionLost, "the connection closed during the TLS handshake")))
        context.fireChannelInactive()
    }

    private func settle(_ result: Result<String?, HTTPClientError>) {
        guard !self.settled else { return }
        self.settled = true
        self.negotiated.completeWith(result.mapError { $0 as any Error })
    }
}

/// One request at a time on an HTTP/1.1 connection: the head, the body
/// pieces as they are, then the whole response.
final class HTTP1ClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let authority: String
    private var context: ChannelHandlerContext?
    private var promise: EventLoopPromise<HTTPClientResponse>?
    private var response: HTTPClientResponse?
    private var sawResponse = false

    init(authority: String) {
        self.authority = authority
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.fail(HTTPClientError(.connectionLost, "the connection closed"))
        self.context = nil
    }

    func execute(_ request: HTTPClientRequest, promise: EventLoopPromise<HTTPClientResponse>) {
        guard let context, context.channel.isActive, self.promise == nil else {
            promise.fail(HTTPClientError(.connectionLost, "the connection closed"))
            return
        }
        self.promise = promise
        self.response = nil
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: request.path)
        head.headers.add(name: "host", value: request.authority)
        head.headers.add(name: "content-length", value: String(request.bodyLength))
        for field in request.headers { head.headers.add(name: field.name, value: field.value) }
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        for piece in request.body where piece.readableBytes > 0 {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(piece))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.sawResponse = true
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            var response = HTTPClientResponse(status: Int(head.status.code))
            response.headers = head.headers.map { HTTPHeaderField($0.name.lowercased(), $0.value) }
            self.response = response
        case .body(var bytes):
            self.response?.body.writeBuffer(&bytes)
        case .end:
            guard let response = self.response, response.status >= 200 else { return }
            self.response = nil
            let promise = self.promise
            self.promise = nil
            promise?.succeed(response)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.sawResponse {
            self.fail(HTTPClientError(.wrongProtocol(.other), "closed the connection without answering HTTP/1.1"))
        }
        self.fail(HTTPClientError(.connectionLost, "the upstream closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error as? HTTPClientError ?? HTTPClientError(.protocolError, "not a valid HTTP/1.1 answer: \(error)"))
        context.close(promise: nil)
    }

    func fail(_ error: HTTPClientError) {
        let promise = self.promise
        self.promise = nil
        promise?.fail(error)
    }
}

/// Reads the first bytes an upstream answers with: an HTTP/1.1 status line
/// passes on; HTTP/2 frames (a gRPC-only port), a TLS record or anything
/// else become an error that names it.
final class HTTP1ResponseSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        let view = bytes.readableBytesView
        if !view.starts(with: "HTTP/".utf8) && view.count >= 4 {
            let error: HTTPClientError
            if view[view.startIndex + 3] == 0x04 || view[view.startIndex + 3] == 0x07 {
                // A SETTINGS or GOAWAY frame: an HTTP/2 server that took the request line for a bad preface.
                error = HTTPClientError(.wrongProtocol(.http2), "answered with HTTP/2 frames, not HTTP/1.1")
            } else if view.first == 0x15 || view.first == 0x16, view.dropFirst().first == 0x03 {
                error = HTTPClientError(.wrongProtocol(.tls), "answered with TLS to a plain-text connection")
            } else {
                let printable = view.prefix(32).map { $0 >= 0x20 && $0 < 0x7F ? Character(Unicode.Scalar($0)) : "." }
                error = HTTPClientError(.wrongProtocol(.other), "answered something other than HTTP/1.1 (\"\(String(printable))\")")
            }
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
