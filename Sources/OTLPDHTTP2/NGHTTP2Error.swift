internal import CNGHTTP2

/// An error code from libnghttp2, with its text.
public struct NGHTTP2Error: Error, Sendable, CustomStringConvertible, Equatable {
    public var code: Int32
    public var operation: String

    public var description: String {
        // Code 0: a protocol error nghttp2 described in words (the operation text).
        self.code == 0 ? self.operation : "\(self.operation): \(String(cString: nghttp2_strerror(self.code)))"
    }

    /// The peer did not start with the HTTP/2 connection preface.
    public var isBadClientMagic: Bool {
        self.code == NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue
    }
}

/// Every nghttp2 call's return code goes through here.
@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(NGHTTP2Error) {
    if code < 0 { throw NGHTTP2Error(code: code, operation: operation()) }
}

/// HTTP/2 error codes for RST_STREAM and GOAWAY (RFC 9113 section 7).
public enum HTTP2ErrorCode: UInt32, Sendable {
    case noError = 0x0
    case protocolError = 0x1
    case internalError = 0x2
    case flowControlError = 0x3
    case refusedStream = 0x7
    case cancel = 0x8
    case enhanceYourCalm = 0xB
}

/// The libnghttp2 this process runs with.
public enum NGHTTP2Library {
    public static var version: String {
        String(cString: nghttp2_version(0).pointee.version_str)
    }
}
