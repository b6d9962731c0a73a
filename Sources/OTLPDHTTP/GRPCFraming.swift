import NIOCore

/// gRPC's message framing and status over HTTP/2: a 5-byte prefix (a
/// compressed flag and a big-endian length) before each message, and the
/// status in trailers. Shared by the server and the clients.
public enum GRPCFraming {
    public static let prefixLength = 5

    /// The total body size stated by a message prefix, once 5 bytes are in.
    public static func expectedBodySize(prefix: ByteBuffer) -> ExpectedBodySize {
        guard prefix.readableBytes >= Self.prefixLength, let length = prefix.getInteger(at: prefix.readerIndex + 1, as: UInt32.self) else {
            return .needMoreBytes
        }
        return .bytes(Int(length) + Self.prefixLength)
    }

    public enum DeframeError: Error, Equatable {
        case truncated
        case trailingData
        /// A flag other than 0 (plain) or 1 (compressed): not a gRPC message.
        case unknownFlags(UInt8)
    }

    /// The one message of a unary request body, and whether it is compressed.
    public static func deframe(_ body: ByteBuffer) throws(DeframeError) -> (compressed: Bool, message: ByteBuffer) {
        var body = body
        guard let flag = body.readInteger(as: UInt8.self), let length = body.readInteger(as: UInt32.self),
            let message = body.readSlice(length: Int(length))
        else {
            throw .truncated
        }
        guard body.readableBytes == 0 else { throw .trailingData }
        guard flag <= 1 else { throw .unknownFlags(flag) }
        return (flag == 1, message)
    }

    /// A message with its prefix.
    public static func frame(_ message: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var framed = allocator.buffer(capacity: message.readableBytes + Self.prefixLength)
        framed.writeInteger(UInt8(0))
        framed.writeInteger(UInt32(message.readableBytes))
        framed.writeImmutableBuffer(message)
        return framed
    }

    /// gRPC status codes (grpc/doc/statuscodes.md).
    public enum StatusCode: Int, Sendable {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16

        /// The name gRPC gives it: `INVALID_ARGUMENT`.
        public var name: String {
            switch self {
            case .ok: "OK"
            case .cancelled: "CANCELLED"
            case .unknown: "UNKNOWN"
            case .invalidArgument: "INVALID_ARGUMENT"
            case .deadlineExceeded: "DEADLINE_EXCEEDED"
            case .notFound: "NOT_FOUND"
            case .alreadyExists: "ALREADY_EXISTS"
            case .permissionDenied: "PERMISSION_DENIED"
            case .resourceExhausted: "RESOURCE_EXHAUSTED"
            case .failedPrecondition: "FAILED_PRECONDITION"
            case .aborted: "ABORTED"
            case .outOfRange: "OUT_OF_RANGE"
            case .unimplemented: "UNIMPLEMENTED"
            case .internal: "INTERNAL"
            case .unavailable: "UNAVAILABLE"
            case .dataLoss: "DATA_LOSS"
            case .unauthenticated: "UNAUTHENTICATED"
            }
        }

        /// The HTTP status an OTLP/HTTP server answers with for this code
        /// (as gRPC-gateway maps them).
        public var httpStatus: Int {
            switch self {
            case .ok: 200
            case .cancelled: 499
            case .invalidArgument, .failedPrecondition, .outOfRange: 400
            case .deadlineExceeded: 504
            case .notFound: 404
            case .alreadyExists, .aborted: 409
            case .permissionDenied: 403
            case .resourceExhausted: 429
            case .unimplemented: 501
            case .unavailable: 503
            case .unauthenticated: 401
            case .unknown, .internal, .dataLoss: 500
            }
        }
    }

    /// The `google.rpc.Code` that goes with an OTLP/HTTP refusal's status (as
    /// gRPC-gateway maps them): what a receiver puts in its error body, and
    /// what an exporter passes back for an upstream's refusal without one.
    public static func code(forOTLPHTTPStatus status: Int) -> StatusCode {
        switch status {
        case 400: .invalidArgument
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 405, 415, 501: .unimplemented
        case 413, 429: .resourceExhausted
        case 503: .unavailable
        default: .unknown
        }
    }

    /// The gRPC status a client assumes for an HTTP status without one
    /// (grpc/doc/http-grpc-status-mapping.md).
    public static func statusCode(forHTTPStatus status: Int) -> StatusCode {
        switch status {
        case 400: .internal
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 429, 502, 503, 504: .unavailable
        default: .unknown
        }
    }

    /// grpc-message is percent-encoded: printable ASCII except '%' passes through.
    package static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// A `grpc-message` as sent: `%XX` escapes decoded, invalid ones kept as they are.
    package static func percentDecode(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    package static func base64NoPadding(_ buffer: ByteBuffer) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let bytes = Array(buffer.readableBytesView)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            if i + 1 < bytes.count { out.append(alphabet[Int(v >> 6 & 63)]) }
            if i + 2 < bytes.count { out.append(alphabet[Int(v & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}
