import NIOCore
import NIOPosix
import NIOSSL
import OTLPDHTTP

/// How a client opens a connection to one upstream address: TCP with
/// NODELAY and keep-alive, TLS when configured (with the handshake's
/// failures named), then the protocol's handlers; a failed connect becomes
/// an `HTTPClientError` that says why in a few words.
struct UpstreamConnector: Sendable {
    let host: String
    let port: Int
    let tls: NIOSSLContext?
    /// The name the certificate is checked against and SNI carries; nil for an address.
    let serverName: String?
    /// `host:port` as the configuration names the upstream, for messages.
    let authority: String
    let group: any EventLoopGroup

    init(host: String, port: Int, tls: NIOSSLContext?, serverName: String?, authority: String, group: any EventLoopGroup) {
        self.host = host
        self.port = port
        self.tls = tls
        self.serverName = serverName ?? (Self.isAddress(host) ? nil : host)
        self.authority = authority
        self.group = group
    }

    /// An IPv6 or dotted IPv4 address, not a name (no SNI, nothing to resolve).
    static func isAddress(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." }
    }

    /// A connected channel with TLS (if any) and then `handlers` installed.
    func connect(deadline: NIODeadline, handlers: @escaping @Sendable (any Channel, ChannelPipeline.SynchronousOperations) throws -> Void)
        -> EventLoopFuture<any Channel>
    {
        let timeout = max(.milliseconds(100), min(deadline - .now(), .seconds(10)))
        let (tls, serverName, authority, group) = (self.tls, self.serverName, self.authority, self.group)
        return ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try sync.addHandler(TLSHandshakeDiagnosis())
                    }
                    try handlers(channel, sync)
                }
            }
            .connect(host: self.host, port: self.port)
            .flatMapError { error in
                group.any().makeFailedFuture(HTTPClientError(.connectFailed, "cannot connect to \(authority): \(ConnectFailure.describe(error))"))
            }
    }
}
