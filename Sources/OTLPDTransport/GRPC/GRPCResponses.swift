import NIOCore
import OTLPDHTTP

/// The server's gRPC answers, as `ServerResponse`s.
extension GRPCFraming {
    /// The successful answer with an empty message (a full success of
    /// Export): the same for every request, so built once.
    public static let okEmptyResponse = okResponse(ByteBuffer())

    /// A successful unary response: headers, the framed message, `grpc-status: 0`.
    public static func okResponse(_ message: ByteBuffer) -> ServerResponse {
        ServerResponse(
            status: 200,
            headers: [HTTPHeaderField("content-type", "application/grpc"), HTTPHeaderField("grpc-accept-encoding", "gzip,zstd,identity")],
            body: Self.frame(message),
            trailers: [HTTPHeaderField("grpc-status", "0")])
    }

    /// A trailers-only error response. `details` is a serialized
    /// `google.rpc.Status`, sent in `grpc-status-details-bin`.
    public static func errorResponse(_ code: StatusCode, message: String, details: ByteBuffer? = nil) -> ServerResponse {
        var headers = [
            HTTPHeaderField("content-type", "application/grpc"),
            HTTPHeaderField("grpc-status", String(code.rawValue)),
            HTTPHeaderField("grpc-message", Self.percentEncode(message)),
        ]
        if let details {
            headers.append(HTTPHeaderField("grpc-status-details-bin", Self.base64NoPadding(details)))
        }
        return ServerResponse(status: 200, headers: headers)
    }
}
