import NIOCore
import OTLPDHTTP
import OTLPDHTTP2

/// Which protocol a listener was configured for: the port a user meant for
/// OTLP/gRPC (4317) or OTLP/HTTP (4318). Both serve both; the role only
/// tells when a client mixed them up.
public enum ListenerRole: String, Sendable, Hashable {
    case grpc
    case http
}

/// How the request arrived.
public enum WireProtocol: String, Sendable {
    case http1 = "HTTP/1.1"
    case http2 = "HTTP/2"
}

/// Who sent a request, and where.
public struct ClientInfo: Sendable, Hashable {
    /// The peer's IP address (without port), for per-client warnings.
    public var address: String
    /// `address:port`, for log lines.
    public var endpoint: String
    public var role: ListenerRole
    /// The port the request came in on.
    public var localPort: Int
    public var isTLS: Bool

    public init(address: String, endpoint: String, role: ListenerRole, localPort: Int, isTLS: Bool) {
        self.address = address
        self.endpoint = endpoint
        self.role = role
        self.localPort = localPort
        self.isTLS = isTLS
    }
}

/// A request's head, the same for HTTP/1.1 and HTTP/2.
public struct ServerRequestHead: Sendable {
    public var method: String
    public var path: String
    /// Lowercase names.
    public var headers: [HTTPHeaderField]
    public var version: WireProtocol
    public var client: ClientInfo

    public init(method: String, path: String, headers: [HTTPHeaderField], version: WireProtocol, client: ClientInfo) {
        self.method = method
        self.path = path
        self.headers = headers
        self.version = version
        self.client = client
    }

    public func header(_ name: String) -> String? {
        self.headers.first(where: { $0.name == name })?.value
    }

    /// A gRPC call: HTTP/2 with a gRPC content type.
    public var isGRPC: Bool {
        guard self.version == .http2, let contentType = self.header("content-type") else { return false }
        // Compared as bytes, ignoring ASCII case: asked several times per request, so no allocation.
        let prefix = "application/grpc".utf8
        guard contentType.utf8.count >= prefix.count else { return false }
        return zip(contentType.utf8, prefix).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }
}

public struct ServerRequest: Sendable {
    public var head: ServerRequestHead
    /// The body as sent; for a gRPC call, empty: its message is in `grpc`.
    public var body: ByteBuffer
    /// A gRPC call's one message, taken out of its frame by the transport; nil for anything else.
    public var grpc: GRPCMessage?

    public init(head: ServerRequestHead, body: ByteBuffer) {
        self.head = head
        self.body = body
    }

    /// A request as the transport hands it on: a gRPC call's body deframed.
    public init(framed head: ServerRequestHead, body: ByteBuffer) {
        self.head = head
        guard head.isGRPC else {
            self.body = body
            return
        }
        self.body = ByteBuffer()
        do {
            let (compressed, message) = try GRPCFraming.deframe(body)
            self.grpc = .message(message, compressed: compressed)
        } catch {
            self.grpc = .malformed(error)
        }
    }
}

/// The message of a unary gRPC call, or why its body held none.
public enum GRPCMessage: Sendable {
    /// The message, still compressed (with the call's `grpc-encoding`) when flagged so.
    case message(ByteBuffer, compressed: Bool)
    case malformed(GRPCFraming.DeframeError)
}

/// A response for either HTTP version. Trailers exist on HTTP/2 only (gRPC status).
public struct ServerResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeaderField]
    public var body: ByteBuffer?
    public var trailers: [HTTPHeaderField]?
    /// A body that goes on after the head (a live feed, such as Server-Sent
    /// Events): each piece is sent when it comes (an HTTP/1.1 chunk, an
    /// HTTP/2 DATA frame) until the sequence ends; the sequence is cancelled
    /// when the client goes away. A client that does not read misses pieces.
    public var live: AsyncStream<ByteBuffer>?

    public init(
        status: Int, headers: [HTTPHeaderField] = [], body: ByteBuffer? = nil, trailers: [HTTPHeaderField]? = nil, live: AsyncStream<ByteBuffer>? = nil
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.live = live
    }
}

/// The seam between transport and receiver: the listener hands it each
/// complete request and sends back what it answers.
public protocol RequestHandler: Sendable {
    /// The largest body (as sent, before decompression) a request may carry.
    func bodyLimit(for head: ServerRequestHead) -> Int
    /// The answer to a body over its limit (413, or gRPC RESOURCE_EXHAUSTED).
    func bodyTooLarge(_ head: ServerRequestHead, limit: Int) -> ServerResponse
    func handle(_ request: consuming ServerRequest) async -> ServerResponse
    /// A connection that failed before a request: not HTTP, a protocol error, a TLS failure.
    func connectionFailed(client: ClientInfo, reason: String)
    /// Whether a request may start now (its body is not read otherwise); false answers it with `notAdmitted`.
    func admit(_ head: ServerRequestHead) -> Bool
    /// Counts body bytes as held until the request is answered; false when
    /// that would pass the memory limit (the request is then `notAdmitted`).
    func hold(_ bytes: Int) -> Bool
    func release(_ bytes: Int)
    /// Whether a body of `bytes` (announced, not yet arrived) could be held
    /// now; false answers it with `notAdmitted` before it is read.
    func hasRoom(for bytes: Int) -> Bool
    /// The answer to a request turned away at its head: without valid
    /// credentials (401 / UNAUTHENTICATED), or because otlpd holds too much
    /// (503 / UNAVAILABLE, with a retry delay).
    func notAdmitted(_ head: ServerRequestHead) -> ServerResponse
}

extension RequestHandler {
    public func admit(_ head: ServerRequestHead) -> Bool { true }
    public func hold(_ bytes: Int) -> Bool { true }
    public func release(_ bytes: Int) {}
    public func hasRoom(for bytes: Int) -> Bool { true }
    public func notAdmitted(_ head: ServerRequestHead) -> ServerResponse { ServerResponse(status: 503, headers: [HTTPHeaderField("retry-after", "1")]) }
}
