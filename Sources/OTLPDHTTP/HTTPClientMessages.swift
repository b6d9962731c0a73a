import NIOCore

/// A request a client sends, whatever the HTTP version: the target's
/// parts, the headers, and a body in pieces that go out one after another
/// (a gRPC prefix, then a batch's parts), never copied into one buffer
/// first.
public struct HTTPClientRequest: Sendable {
    public var method: String
    /// `http` or `https`.
    public var scheme: String
    /// `host:port`, as the `Host` header or HTTP/2's `:authority`.
    public var authority: String
    public var path: String
    public var headers: [HTTPHeaderField]
    public var body: [ByteBuffer]

    public init(method: String = "POST", scheme: String, authority: String, path: String, headers: [HTTPHeaderField], body: [ByteBuffer]) {
        self.method = method
        self.scheme = scheme
        self.authority = authority
        self.path = path
        self.headers = headers
        self.body = body
    }

    public var bodyLength: Int { self.body.reduce(0) { $0 + $1.readableBytes } }
}

/// A complete response: status, headers, body, and trailers where it had
/// them (gRPC's status travels in trailers, or in the headers of a
/// response without a body).
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeaderField]
    public var body: ByteBuffer
    public var trailers: [HTTPHeaderField]

    public init(status: Int, headers: [HTTPHeaderField] = [], body: ByteBuffer = ByteBuffer(), trailers: [HTTPHeaderField] = []) {
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers
    }

    /// The first value of a header, by lowercase name.
    public func header(_ name: String) -> String? {
        self.headers.first(where: { $0.name == name })?.value
    }

    /// The first value of a trailer, else of a header of that name (a trailers-only gRPC answer).
    public func trailer(_ name: String) -> String? {
        self.trailers.first(where: { $0.name == name })?.value ?? self.header(name)
    }
}

/// Why a request got no response. Each case says whether the upstream may
/// have processed the request: a caller that retries needs to know, though
/// OTLP's at-least-once delivery lets it retry either way.
public struct HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No connection: refused, unreachable, DNS, a TLS handshake that failed.
        case connectFailed
        /// The connection closed, or was reset, before the response was complete.
        case connectionLost
        /// The upstream refused the stream before processing it (REFUSED_STREAM, or past a GOAWAY).
        case refused
        /// No response by the deadline; the stream was cancelled.
        case timedOut
        /// The peer does not speak the protocol asked for: an HTTP/1.1 answer to
        /// an HTTP/2 preface, TLS to plain text, plain text to TLS; this is what it spoke.
        case wrongProtocol(PeerProtocol)
        /// A protocol error on the connection or the stream.
        case protocolError
    }

    /// What a peer turned out to speak.
    public enum PeerProtocol: Sendable, Equatable {
        case http1
        case http2
        case tls
        case plaintext
        /// Something else, or nothing: it closed the connection without a word of the protocol asked for.
        case other
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { self.message }
}
