import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import OTLPDHTTP2

/// Where and how to listen.
public struct ListenerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var role: ListenerRole
    public var tls: TLSServerConfiguration?
    public var http2: HTTP2ServerSettings
    /// Connections open at once; one past it is closed at once, with a log line.
    public var maxConnections = 4096
    /// HTTP/1.1's head and keep-alive idle deadlines; `readHeader` also bounds a new connection's silence.
    public var http1 = HTTP1Timeouts()

    public init(host: String, port: Int, role: ListenerRole, tls: TLSServerConfiguration? = nil, http2: HTTP2ServerSettings = HTTP2ServerSettings()) {
        self.host = host
        self.port = port
        self.role = role
        self.tls = tls
        self.http2 = http2
    }

    /// HTTP/2's windows sized for bodies of up to `maxBodyBytes`, and at most
    /// `maxConcurrentStreams` unanswered requests per connection.
    public init(host: String, port: Int, role: ListenerRole, tls: TLSServerConfiguration?, maxBodyBytes: Int, maxConcurrentStreams: Int? = nil) {
        var http2 = HTTP2ServerSettings.forBodies(upTo: maxBodyBytes)
        if let maxConcurrentStreams { http2.maxConcurrentStreams = UInt32(clamping: maxConcurrentStreams) }
        self.init(host: host, port: port, role: role, tls: tls, http2: http2)
    }
}

/// One listening socket. Each accepted connection gets TCP_NODELAY, TLS if
/// configured, then the sniffer that installs HTTP/2 (nghttp2) or HTTP/1.1.
/// Stopping is in two steps, as a graceful shutdown needs: stop accepting
/// and ask every connection to finish (`quiesce`), then wait for them.
public final class Listener: Sendable {
    public let configuration: ListenerConfiguration
    public let localAddress: SocketAddress
    private let serverChannel: any Channel
    private let connections: Connections
    /// The TLS context new connections get; a reload reads the files again and swaps it.
    private let tlsContext: NIOLockedValueBox<NIOSSLContext?>

    private final class Connections: Sendable {
        private let state = NIOLockedValueBox(State())

        struct State {
            var channels: [ObjectIdentifier: any Channel] = [:]
            var quiescing = false
        }

        /// Counts the connection in unless `limit` are open already (then false).
        func add(_ channel: any Channel, limit: Int) -> Bool {
            let (added, quiesceNow) = self.state.withLockedValue { state -> (Bool, Bool) in
                guard state.channels.count < limit else { return (false, false) }
                state.channels[ObjectIdentifier(channel)] = channel
                return (true, state.quiescing)
            }
            guard added else { return false }
            if quiesceNow { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
            channel.closeFuture.whenComplete { _ in self.remove(channel) }
            return true
        }

        private func remove(_ channel: any Channel) {
            self.state.withLockedValue { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
        }

        func quiesceAll() {
            let channels = self.state.withLockedValue { state in
                state.quiescing = true
                return Array(state.channels.values)
            }
            for channel in channels { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        }

        func closeAll() {
            let channels = self.state.withLockedValue { Array($0.channels.values) }
            for channel in channels { channel.close(promise: nil) }
        }

        var count: Int { self.state.withLockedValue { $0.channels.count } }
    }

    private init(
        configuration: ListenerConfiguration, serverChannel: any Channel, connections: Connections, tlsContext: NIOLockedValueBox<NIOSSLContext?>
    ) {
        self.configuration = configuration
        self.serverChannel = serverChannel
        self.localAddress = serverChannel.localAddress!
        self.connections = connections
        self.tlsContext = tlsContext
    }

    /// Reads the certificate and key files again (a renewed certificate) for
    /// the connections from now on; on failure the one in use stays and the error is thrown.
    public func reloadTLS() throws {
        guard let tls = self.configuration.tls else { return }
        let context = try tls.makeContext()
        self.tlsContext.withLockedValue { $0 = context }
    }

    /// Binds and starts accepting. Throws if the address cannot be bound or the TLS files cannot be used.
    public static func start(
        _ configuration: ListenerConfiguration,
        handler: any RequestHandler,
        group: any EventLoopGroup
    ) async throws -> Listener {
        let tlsContext = NIOLockedValueBox(try configuration.tls?.makeContext())
        let connections = Connections()
        let http2Settings = configuration.http2
        let role = configuration.role
        let (maxConnections, http1) = (configuration.maxConnections, configuration.http1)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                let sslContext = tlsContext.withLockedValue { $0 }
                // Past the cap the connection is closed at once: every client already connected keeps being served.
                guard connections.add(channel, limit: maxConnections) else {
                    handler.connectionFailed(
                        client: ConnectionSetup.client(of: channel, role: role, tls: sslContext != nil),
                        reason: "over max_connections (\(maxConnections)) on this listener; connection closed")
                    return channel.close()
                }
                do {
                    try ConnectionSetup.install(on: channel, handler: handler, role: role, http2: http2Settings, http1: http1, tls: sslContext)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        return Listener(configuration: configuration, serverChannel: channel, connections: connections, tlsContext: tlsContext)
    }

    /// Stops accepting and asks every connection to finish what it has
    /// started: HTTP/2 sends GOAWAY, HTTP/1.1 closes after its response.
    public func quiesce() async {
        try? await self.serverChannel.close()
        self.connections.quiesceAll()
    }

    /// Waits for every connection to close; false if `timeout` passed first.
    public func waitForConnections(timeout: Duration) async -> Bool {
        // Shutdown is rare and short: a poll is simpler than waking waiters from close callbacks.
        let deadline = ContinuousClock.now + timeout
        while self.connections.count > 0 {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Closes whatever is still open.
    public func closeAll() {
        self.connections.closeAll()
    }

    public var openConnectionCount: Int { self.connections.count }
}

/// The handlers of one accepted connection: back-pressure, TLS if
/// configured, then the sniffer that installs HTTP/2 (nghttp2) or HTTP/1.1.
package enum ConnectionSetup {
    package static func install(
        on channel: any Channel,
        handler: any RequestHandler,
        role: ListenerRole,
        http2: HTTP2ServerSettings,
        http1: HTTP1Timeouts = HTTP1Timeouts(),
        tls sslContext: NIOSSLContext?
    ) throws {
        let client = Self.client(of: channel, role: role, tls: sslContext != nil)
        let executor = EventLoopTaskExecutor(channel.eventLoop)
        let pipeline = channel.pipeline.syncOperations
        // A client that does not read its answers stops being read from, so answers cannot pile up.
        try pipeline.addHandler(BackPressureHandler())
        if let sslContext {
            try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
            try pipeline.addHandler(TLSErrorReporter(handler: handler, client: client))
        }
        try pipeline.addHandler(
            ProtocolSniffer(
                makeHTTP2Handler: {
                    HTTP2ServerHandler(
                        settings: http2, delegate: HTTP2RequestBridge(handler: handler, client: client, executor: executor),
                        stallTimeout: HTTP1HeadTimer.amount(http1.readHeader))
                },
                makeHTTP1Handler: { HTTP1ServerHandler(handler: handler, client: client, executor: executor, timeouts: http1) },
                onPlaintextTLS: { handler.connectionFailed(client: client, reason: "sent a TLS handshake to a listener without TLS") },
                silence: http1.readHeader,
                onSilent: { handler.connectionFailed(client: client, reason: "sent nothing within \(http1.readHeader) (read_header_timeout); connection closed") }))
    }

    /// Who is at the other end of a connection, for log lines.
    package static func client(of channel: any Channel, role: ListenerRole, tls: Bool) -> ClientInfo {
        let remote = channel.remoteAddress
        return ClientInfo(
            address: remote?.ipAddress ?? "unknown",
            endpoint: remote.map { "\($0.ipAddress ?? "unknown"):\($0.port ?? 0)" } ?? "unknown",
            role: role,
            localPort: channel.localAddress?.port ?? 0,
            isTLS: tls)
    }
}

/// Reports TLS handshake failures with the client's address. Errors after
/// a completed handshake (a client closing without close_notify) are not
/// refusals and are not reported.
private final class TLSErrorReporter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let handler: any RequestHandler
    let client: ClientInfo
    private var handshakeCompleted = false

    init(handler: any RequestHandler, client: ClientInfo) {
        self.handler = handler
        self.client = client
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { self.handshakeCompleted = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.handshakeCompleted, error is NIOSSLError || error is BoringSSLError {
            self.handler.connectionFailed(client: self.client, reason: "TLS handshake failed: \(error)")
        }
        context.fireErrorCaught(error)
    }
}
