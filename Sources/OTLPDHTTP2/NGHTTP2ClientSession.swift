internal import CNGHTTP2
import NIOCore
import OTLPDHTTP

/// What a client session advertises to its peer. Responses are small
/// (an `Export*ServiceResponse`), so the receive windows are modest.
public struct HTTP2ClientSettings: Sendable {
    public var initialStreamWindow: Int32
    public var connectionWindow: Int32
    public var maxHeaderListSize: UInt32

    public init(initialStreamWindow: Int32 = 1 << 20, connectionWindow: Int32 = 16 << 20, maxHeaderListSize: UInt32 = 64 << 10) {
        self.initialStreamWindow = initialStreamWindow
        self.connectionWindow = connectionWindow
        self.maxHeaderListSize = maxHeaderListSize
    }
}

/// What a client session learns while it reads, for the handler to act on
/// once nghttp2 has returned.
enum NGHTTP2ClientEvent {
    /// A stream's response is complete.
    case response(Int32, HTTPClientResponse)
    /// A stream ended without a complete response (RST_STREAM, or the
    /// session gave up on it); `errorCode` is the HTTP/2 error code.
    case reset(Int32, errorCode: UInt32)
    /// The peer will take no new streams; those after `lastStreamID` were not processed.
    case goAway(lastStreamID: Int32, errorCode: UInt32, debug: String)
}

/// One nghttp2 client session: requests in through `submitRequest`, frames
/// out through `pendingOutput`, bytes from the peer through `receive`.
/// Streams beyond the peer's MAX_CONCURRENT_STREAMS wait inside nghttp2
/// until one closes. It must stay on one thread (its channel's event loop).
final class NGHTTP2ClientSession: NGHTTP2Session {
    final class Stream {
        /// The request body still to send, piece by piece.
        var body: [ByteBuffer]
        var nextPiece = 0
        var response = HTTPClientResponse(status: 0)
        var delivered = false

        init(body: [ByteBuffer]) {
            self.body = body
        }
    }

    private var streams: [Int32: Stream] = [:]
    private var events: [NGHTTP2ClientEvent] = []

    init(settings: HTTP2ClientSettings) throws(NGHTTP2Error) {
        try super.init(role: .client, manualWindowUpdates: false)
        try self.submitSettings(
            [
                (NGHTTP2_SETTINGS_ENABLE_PUSH, 0), (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UInt32(settings.initialStreamWindow)),
                (NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.maxHeaderListSize),
            ], connectionWindow: settings.connectionWindow)
    }

    /// Feeds bytes from the peer; returns the events they caused.
    func receive(_ buffer: ByteBuffer) throws(NGHTTP2Error) -> [NGHTTP2ClientEvent] {
        try self.feed(buffer)
        return self.takeEvents()
    }

    /// Events raised outside a read (a stream nghttp2 closed while writing).
    func takeEvents() -> [NGHTTP2ClientEvent] {
        defer { self.events.removeAll(keepingCapacity: true) }
        return self.events
    }

    /// Whether the session may open another stream: no GOAWAY either way.
    var acceptsNewStreams: Bool {
        nghttp2_session_check_request_allowed(self.session) != 0
    }

    /// Streams submitted and not yet finished.
    var activeStreams: Int { self.streams.count }

    /// Queues a request; returns its stream id. Its body goes out as the peer's windows allow.
    func submitRequest(_ request: HTTPClientRequest) throws(NGHTTP2Error) -> Int32 {
        var fields = [
            HTTPHeaderField(":method", request.method), HTTPHeaderField(":scheme", request.scheme),
            HTTPHeaderField(":authority", request.authority), HTTPHeaderField(":path", request.path),
        ]
        fields.append(contentsOf: request.headers)
        let stream = Stream(body: request.body)
        var provider = Self.bodyProvider
        let hasBody = request.bodyLength > 0
        let id = try self.withNameValues(fields) { (nva, count) throws(NGHTTP2Error) -> Int32 in
            let id = withUnsafePointer(to: &provider) { provider in
                nghttp2_submit_request(self.session, nil, nva, count, hasBody ? provider : nil, nil)
            }
            try check(id, "nghttp2_submit_request")
            return id
        }
        self.streams[id] = stream
        return id
    }

    /// Stops a stream at once (its deadline passed).
    func resetStream(_ id: Int32, _ code: HTTP2ErrorCode) {
        guard self.streams.removeValue(forKey: id) != nil else { return }
        nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, code.rawValue)
    }

    /// A graceful close: no new streams, those under way finish.
    func submitGoAway() {
        nghttp2_session_terminate_session(self.session, HTTP2ErrorCode.noError.rawValue)
    }

    // MARK: Callbacks

    override func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>,
        _ name: UnsafeBufferPointer<UInt8>,
        _ value: UnsafeBufferPointer<UInt8>
    ) -> Int32 {
        guard let stream = self.streams[frame.pointee.hd.stream_id] else { return 0 }
        let field = HTTPHeaderField(CommonHeaderText.string(name), CommonHeaderText.string(value))
        switch frame.pointee.headers.cat {
        case NGHTTP2_HCAT_RESPONSE:
            if field.name == ":status" {
                stream.response.status = Int(field.value) ?? 0
            } else {
                stream.response.headers.append(field)
            }
        case NGHTTP2_HCAT_HEADERS:
            // A 1xx answer is followed by the real head; after a final head, these are trailers.
            if field.name == ":status" {
                stream.response.status = Int(field.value) ?? 0
            } else if stream.response.status >= 200 {
                stream.response.trailers.append(field)
            }
        default:
            break
        }
        return 0
    }

    override func onData(_ id: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        self.streams[id]?.response.body.writeBytes(data)
        return 0
    }

    override func onFrame(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        switch UInt32(header.type) {
        case NGHTTP2_HEADERS.rawValue, NGHTTP2_DATA.rawValue:
            // The response is whole at END_STREAM, even if the request's body is still going out.
            guard header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0, let stream = self.streams[header.stream_id],
                !stream.delivered, stream.response.status >= 200
            else { return 0 }
            stream.delivered = true
            self.events.append(.response(header.stream_id, stream.response))
            stream.response = HTTPClientResponse(status: 0)
        case NGHTTP2_GOAWAY.rawValue:
            let goaway = frame.pointee.goaway
            let debug = String(decoding: UnsafeBufferPointer(start: goaway.opaque_data, count: goaway.opaque_data_len), as: UTF8.self)
            self.events.append(.goAway(lastStreamID: goaway.last_stream_id, errorCode: goaway.error_code, debug: debug))
        default:
            break
        }
        return 0
    }

    override func onStreamClose(_ id: Int32, _ errorCode: UInt32) -> Int32 {
        guard let stream = self.streams.removeValue(forKey: id) else { return 0 }
        if !stream.delivered {
            // Closed cleanly but without a whole response still means no answer.
            self.events.append(.reset(id, errorCode: errorCode == 0 ? HTTP2ErrorCode.internalError.rawValue : errorCode))
        }
        return 0
    }

    /// How much of the request body the next DATA frame carries: the bytes
    /// are not copied here but sent from their own buffers (`sendData`).
    override func readBody(_ id: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = self.streams[id] else {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return 0
        }
        let remaining = stream.body[stream.nextPiece...].reduce(0) { $0 + $1.readableBytes }
        let count = min(length, remaining)
        flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        if count == remaining { flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
        return count
    }

    /// The DATA frame `readBody` sized: its header, then slices of the body pieces.
    override func sendData(_ id: Int32, header: UnsafePointer<UInt8>, length: Int) -> Int32 {
        guard let stream = self.streams[id] else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
        var payload: [ByteBuffer] = []
        var needed = length
        while needed > 0 && stream.nextPiece < stream.body.count {
            let count = min(needed, stream.body[stream.nextPiece].readableBytes)
            if let slice = stream.body[stream.nextPiece].readSlice(length: count) { payload.append(slice) }
            needed -= count
            if stream.body[stream.nextPiece].readableBytes == 0 {
                // The stream lets the piece go; the slices keep it until written.
                stream.body[stream.nextPiece] = ByteBuffer()
                stream.nextPiece += 1
            }
        }
        guard needed == 0 else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
        return self.emitWithoutCopy(header: header, payload: payload)
    }
}
