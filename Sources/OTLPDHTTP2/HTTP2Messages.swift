import NIOCore
import OTLPDHTTP

/// A request's head as the peer sent it.
public struct HTTP2RequestHead: Sendable {
    public var streamID: Int32
    public var method: String
    public var path: String
    public var scheme: String
    public var authority: String
    /// The regular headers, in order (pseudo-headers are in the fields above).
    public var headers: [HTTPHeaderField]

    public init(streamID: Int32, method: String = "", path: String = "", scheme: String = "", authority: String = "", headers: [HTTPHeaderField] = []) {
        self.streamID = streamID
        self.method = method
        self.path = path
        self.scheme = scheme
        self.authority = authority
        self.headers = headers
    }

    /// The first value of a header, by lowercase name.
    public func header(_ name: String) -> String? {
        self.headers.first(where: { $0.name == name })?.value
    }
}

/// A complete request: head and body.
public struct HTTP2Request: Sendable {
    public var head: HTTP2RequestHead
    public var body: ByteBuffer
}

/// A response: status, headers, an optional body and optional trailers
/// (gRPC's status travels in trailers).
public struct HTTP2Response: Sendable {
    public var status: Int
    public var headers: [HTTPHeaderField]
    public var body: ByteBuffer?
    public var trailers: [HTTPHeaderField]?
    /// A body that goes on after the head (a live feed): each piece goes out
    /// as DATA when it comes, and the stream ends when the sequence does.
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
