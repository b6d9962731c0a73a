import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import OTLPDHTTP
import OTLPDHTTP2

/// Requests to one upstream address over one HTTP/2 connection at a time,
/// shared by every request: opened on first use, and again after the
/// upstream closed it or sent GOAWAY (the old one finishes its streams).
/// A failed connect fails the requests waiting for it; the caller's retry
/// decides when to try again.
public final class HTTP2Client: Sendable {
    public let host: String
    public let port: Int
    private let group: any EventLoopGroup
    private let tls: NIOSSLContext?
    private let serverName: String?
    private let settings: HTTP2ClientSettings
    private let state = NIOLockedValueBox(State.idle)

    private enum State {
        case idle
        case connecting(EventLoopFuture<Connection>, ObjectIdentifier)
        case ready(Connection)
        case closed
    }

    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<HTTP2ClientHandler>
    }

    /// `:authority`: the name the upstream was configured by, whichever of its addresses this connects to.
    public let authority: String

    /// `tls` nil: plain text (h2c with prior knowledge). `host` may be one
    /// address of a name; `authority` and `serverName` then carry the name.
    public init(
        host: String, port: Int, tls: NIOSSLContext?, serverName: String? = nil, authority: String? = nil, group: any EventLoopGroup,
        settings: HTTP2ClientSettings = HTTP2ClientSettings()
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.serverName = serverName
        self.group = group
        self.settings = settings
        self.authority = authority ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
    }

    /// Sends one request and waits for its whole response, until `deadline`.
    public func send(_ request: HTTPClientRequest, deadline: NIODeadline) async throws(HTTPClientError) -> HTTPClientResponse {
        // A connection that stopped taking streams between the lookup and the
        // submit (a GOAWAY just arrived) refuses without sending: one more try on a new one.
        var attempt = 0
        while true {
            attempt += 1
            let connection = try await self.connection(deadline: deadline)
            let eventLoop = connection.channel.eventLoop
            let promise = eventLoop.makePromise(of: HTTPClientResponse.self)
            let handler = connection.handler
            eventLoop.execute {
                guard let id = handler.value.submit(request, promise: promise) else { return }
                let timer = eventLoop.scheduleTask(deadline: deadline) {
                    handler.value.cancel(id, HTTPClientError(.timedOut, "no answer before the deadline"))
                }
                promise.futureResult.whenComplete { _ in timer.cancel() }
            }
            do {
                return try await promise.futureResult.get()
            } catch let error as HTTPClientError {
                // Refused unprocessed (by this end or the upstream): safe to send again at once.
                if error.kind == .refused && attempt == 1 { continue }
                throw error
            } catch {
                throw HTTPClientError(.connectionLost, "\(error)")
            }
        }
    }

    /// Closes the connection once its streams are answered; later requests fail.
    public func shutdown() async {
        let current = self.state.withLockedValue { state -> State in
            defer { state = .closed }
            return state
        }
        let channel: (any Channel)?
        switch current {
        case .ready(let connection):
            channel = connection.channel
            connection.channel.eventLoop.execute { connection.handler.value.close() }
        case .connecting(let future, _):
            channel = try? await future.get().channel
            channel?.close(promise: nil)
        case .idle, .closed:
            channel = nil
        }
        try? await channel?.closeFuture.get()
    }

    // MARK: Connections

    private func connection(deadline: NIODeadline) async throws(HTTPClientError) -> Connection {
        enum Step {
            case use(Connection)
            case wait(EventLoopFuture<Connection>)
            case connect(EventLoopPromise<Connection>)
            case closed
        }
        let step = self.state.withLockedValue { state -> Step in
            switch state {
            case .ready(let connection):
                return .use(connection)
            case .connecting(let future, _):
                return .wait(future)
            case .idle:
                let promise = self.group.any().makePromise(of: Connection.self)
                state = .connecting(promise.futureResult, ObjectIdentifier(promise.futureResult))
                return .connect(promise)
            case .closed:
                return .closed
            }
        }
        let future: EventLoopFuture<Connection>
        switch step {
        case .use(let connection):
            return connection
        case .wait(let waiting):
            future = waiting
        case .connect(let promise):
            self.connect(deadline: deadline).whenComplete { result in
                self.state.withLockedValue { state in
                    guard case .connecting(let waiting, _) = state, waiting === promise.futureResult else { return }
                    switch result {
                    case .success(let connection): state = .ready(connection)
                    case .failure: state = .idle
                    }
                }
                promise.completeWith(result)
            }
            future = promise.futureResult
        case .closed:
            throw HTTPClientError(.connectFailed, "the client is shut down")
        }
        do {
            return try await future.get()
        } catch let error as HTTPClientError {
            throw error
        } catch {
            throw HTTPClientError(.connectFailed, "\(error)")
        }
    }

    private func connect(deadline: NIODeadline) -> EventLoopFuture<Connection> {
        let settings = self.settings
        let connector = UpstreamConnector(
            host: self.host, port: self.port, tls: self.tls, serverName: self.serverName, authority: self.authority, group: self.group)
        return connector.connect(deadline: deadline) { [weak self] channel, sync in
            let id = ObjectIdentifier(channel)
            try sync.addHandler(HTTP2ClientHandler(settings: settings) { self?.connectionUnusable(id) })
        }
        .flatMap { channel in
            channel.pipeline.handler(type: HTTP2ClientHandler.self).map { handler in
                Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            }
        }
    }

    /// The connection with this channel takes no new streams: the next request opens another.
    private func connectionUnusable(_ id: ObjectIdentifier) {
        self.state.withLockedValue { state in
            if case .ready(let connection) = state, ObjectIdentifier(connection.channel) == id { state = .idle }
        }
    }
}

/// Turns a failed TLS handshake into what it most likely means: an
/// upstream that answered in plain text, or a certificate that failed its
/// checks.
final class TLSHandshakeDiagnosis: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private var handshakeCompleted = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { self.handshakeCompleted = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !self.handshakeCompleted, error is NIOSSLError || error is BoringSSLError else {
            context.fireErrorCaught(error)
            return
        }
        let text = "\(error)"
        // A plain-text server answers a ClientHello with bytes that are no TLS record, or hangs up without a word.
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("uncleanShutdown") || text.contains("HTTP_REQUEST")
            || text.contains("PACKET_LENGTH_TOO_LONG") || text.contains("EOF during handshake")
        {
            context.fireErrorCaught(
                HTTPClientError(.wrongProtocol(.plaintext), "did not answer the TLS handshake (\(text)): it looks like a plain-text port"))
        } else {
            context.fireErrorCaught(HTTPClientError(.connectFailed, "TLS handshake failed: \(text)"))
        }
    }
}

/// Why a connect failed, in a few words.
enum ConnectFailure {
    /// A connect failure in a few words: "connection refused", "DNS error: ...".
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(dns)" }
            if let first = error.connectionErrors.first { return Self.describe(first.error) }
        }
        if let error = error as? IOError {
            return error.errnoCode == ECONNREFUSED ? "connection refused" : String(cString: strerror(error.errnoCode)).lowercased()
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return "connect timed out" }
        return "\(error)"
    }
}
