internal import CNGHTTP2
import NIOCore
import OTLPDHTTP

/// What a server session advertises to its peer.
///
/// Flow control, as gRPC servers do it: the connection window is given back
/// as bytes arrive, so streams that interleave can never lock each other
/// out; a stream's window is given back only once its request is answered,
/// and `maxConcurrentStreams` bounds how many unanswered requests one
/// connection may hold (at most that many bodies of at most the limit).
public struct HTTP2ServerSettings: Sendable {
    public var maxConcurrentStreams: UInt32
    /// How much of one request body a client may send unanswered: at least
    /// the largest allowed body, so one request never waits mid-body.
    public var initialStreamWindow: Int32
    /// Large, so a big request is never held up by window round trips.
    public var connectionWindow: Int32
    public var maxFrameSize: UInt32
    public var maxHeaderListSize: UInt32

    public init(
        maxConcurrentStreams: UInt32 = 100,
        initialStreamWindow: Int32 = 16 << 20,
        connectionWindow: Int32 = 64 << 20,
        maxFrameSize: UInt32 = 256 << 10,
        maxHeaderListSize: UInt32 = 64 << 10
    ) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialStreamWindow = initialStreamWindow
        self.connectionWindow = connectionWindow
        self.maxFrameSize = maxFrameSize
        self.maxHeaderListSize = maxHeaderListSize
    }

    /// Windows sized for bodies up to `maxBody` bytes.
    public static func forBodies(upTo maxBody: Int) -> HTTP2ServerSettings {
        let window = Int32(clamping: max(maxBody + 64 * 1024, 1 << 20))
        return HTTP2ServerSettings(initialStreamWindow: window, connectionWindow: max(window, 64 << 20))
    }
}

/// What the session learns while it reads, in order, for the handler to act
/// on once nghttp2 has returned.
enum NGHTTP2SessionEvent: Equatable {
    case requestHead(Int32)
    case requestEnd(Int32)
    case refused(Int32, HTTP2Refusal)
    case streamClosed(Int32, errorCode: UInt32)
    case pingAcknowledged
}

/// The questions the session asks about each request while it reads.
protocol NGHTTP2StreamPolicy: AnyObject {
    func admit(_ head: HTTP2RequestHead) -> Bool
    func bodyLimit(for head: HTTP2RequestHead) -> Int
    func expectedBodySize(for head: HTTP2RequestHead, prefix: ByteBuffer) -> ExpectedBodySize
}

/// One nghttp2 server session: bytes in through `receive`, events out,
/// frames to send through `pendingOutput`. The only type that touches the
/// nghttp2 C API; it must stay on one thread (its channel's event loop).
final class NGHTTP2ServerSession: NGHTTP2Session {
    final class Stream {
        var head: HTTP2RequestHead
        var body: ByteBuffer
        var bodyLimit = Int.max
        var sizeKnown = false
        /// Body bytes nghttp2 delivered that the stream's window has not yet been given back for.
        var unconsumed = 0
        /// Refused for its size: later data is dropped and given back at once.
        var discarding = false
        /// Send RST_STREAM(NO_ERROR) once the response has gone out, so the client stops sending.
        var resetAfterResponse = false
        var responseBody: ByteBuffer?
        var trailers: [HTTPHeaderField]?
        /// A body that goes on (a live feed): when it runs dry, the stream waits for more instead of ending.
        var streaming = false
        /// The request's END_STREAM came (its body is whole).
        var requestEnded = false
        /// When the request last made progress (its head, a piece of its body), in uptime nanoseconds.
        var lastProgress: UInt64 = 0
        /// Body bytes counted in `account`: from arrival until the stream is gone,
        /// since the pipeline holds the body until the response.
        var held = 0
        let account: (any HTTP2BodyAccount)?

        init(id: Int32, account: (any HTTP2BodyAccount)?) {
            self.head = HTTP2RequestHead(streamID: id)
            self.body = ByteBuffer()
            self.account = account
        }

        deinit {
            if self.held > 0 { self.account?.release(self.held) }
        }
    }

    private(set) var streams: [Int32: Stream] = [:]
    /// The stream of the last callback: nghttp2 reports one stream's headers
    /// and data in a row, so most lookups need no hashing.
    private var lastStream: Stream?
    private var events: [NGHTTP2SessionEvent] = []
    /// Protocol errors found while writing (our GOAWAY or RST_STREAM with an error code), to report.
    private(set) var sentErrors: [String] = []
    weak var policy: (any NGHTTP2StreamPolicy)?
    var account: (any HTTP2BodyAccount)?
    /// Frames that carry nothing (WINDOW_UPDATE, PRIORITY, empty DATA) since `idleFramesSince`:
    /// nghttp2 counts floods of the frames it must answer, not of these, which cost only reading.
    private var idleFrames = 0
    private var idleFramesSince: UInt64 = 0
    /// Why this session ended itself (a flood of frames that carry nothing), for the log line.
    private(set) var flood: String?
    /// More than this many such frames within a second is a flood; a client sends a few per request.
    static let idleFrameBudget = 10_000

    /// Streams whose request body has not ended: counted, so that asking after each read costs nothing.
    private var requestsUnfinished = 0
    /// Uptime nanoseconds, for a request's progress: the event loop's clock (virtual in tests).
    var clock: () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }

    init(settings: HTTP2ServerSettings) throws(NGHTTP2Error) {
        // Windows reopen when the pipeline has taken a request, not when bytes arrive.
        try super.init(role: .server, manualWindowUpdates: true)
        try self.submitSettings(
            [
                (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.maxConcurrentStreams),
                (NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UInt32(settings.initialStreamWindow)), (NGHTTP2_SETTINGS_MAX_FRAME_SIZE, settings.maxFrameSize),
                (NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.maxHeaderListSize), (NGHTTP2_SETTINGS_ENABLE_PUSH, 0),
            ], connectionWindow: settings.connectionWindow)
    }

    // MARK: Reading

    /// Feeds bytes from the peer; returns the events they caused.
    func receive(_ buffer: ByteBuffer) throws(NGHTTP2Error) -> [NGHTTP2SessionEvent] {
        do {
            try self.feed(buffer)
        } catch {
            // A flood this session found itself is said in its own words, not as a callback failure.
            if let flood = self.flood { throw NGHTTP2Error(code: 0, operation: flood) }
            throw error
        }
        defer { self.events.removeAll(keepingCapacity: true) }
        return self.events
    }

    /// The body of a finished request, handed over (the session keeps no copy).
    func takeRequest(_ id: Int32) -> HTTP2Request? {
        guard let stream = self.streams[id] else { return nil }
        let body = stream.body
        stream.body = ByteBuffer()
        return HTTP2Request(head: stream.head, body: body)
    }

    func head(of id: Int32) -> HTTP2RequestHead? {
        self.streams[id]?.head
    }

    /// Gives a stream's delivered body bytes back to its window (the connection's were given back on arrival).
    func consume(_ id: Int32) {
        guard let stream = self.streams[id], stream.unconsumed > 0 else { return }
        nghttp2_session_consume_stream(self.session, id, stream.unconsumed)
        stream.unconsumed = 0
    }

    // MARK: Writing

    /// Queues a response; its body and trailers are sent as the peer's windows allow.
    func submitResponse(_ id: Int32, _ response: HTTP2Response) throws(NGHTTP2Error) {
        guard let stream = self.streams[id] else { return }
        var fields = [HTTPHeaderField(":status", String(response.status))]
        fields.append(contentsOf: response.headers)
        let hasBody = response.body.map { $0.readableBytes > 0 } ?? false
        if !hasBody && response.trailers == nil {
            try self.withNameValues(fields) { (nva, count) throws(NGHTTP2Error) in
                try check(nghttp2_submit_response(self.session, id, nva, count, nil), "nghttp2_submit_response")
            }
            return
        }
        stream.responseBody = response.body ?? ByteBuffer()
        stream.trailers = response.trailers
        var provider = Self.bodyProvider
        try self.withNameValues(fields) { (nva, count) throws(NGHTTP2Error) in
            try check(nghttp2_submit_response(self.session, id, nva, count, &provider), "nghttp2_submit_response")
        }
    }

    /// Starts a response whose body comes piece by piece (`appendResponseBody`) until `finishResponseBody`.
    func submitStreamingResponse(_ id: Int32, status: Int, headers: [HTTPHeaderField]) throws(NGHTTP2Error) {
        guard let stream = self.streams[id] else { return }
        var fields = [HTTPHeaderField(":status", String(status))]
        fields.append(contentsOf: headers)
        stream.responseBody = ByteBuffer()
        stream.streaming = true
        var provider = Self.bodyProvider
        try self.withNameValues(fields) { (nva, count) throws(NGHTTP2Error) in
            try check(nghttp2_submit_response(self.session, id, nva, count, &provider), "nghttp2_submit_response")
        }
    }

    /// Queues a piece of a streaming body; false (and dropped) when more than
    /// `limit` bytes already wait for a peer that does not read.
    func appendResponseBody(_ id: Int32, _ piece: ByteBuffer, limit: Int) -> Bool {
        guard let stream = self.streams[id], stream.streaming, var body = stream.responseBody else { return false }
        guard body.readableBytes + piece.readableBytes <= limit else { return false }
        stream.responseBody = nil  // no second reference: the write below does not copy
        body.writeImmutableBuffer(piece)
        stream.responseBody = body
        nghttp2_session_resume_data(self.session, id)
        return true
    }

    /// Ends a streaming body once what is queued has gone out.
    func finishResponseBody(_ id: Int32) {
        guard let stream = self.streams[id], stream.streaming else { return }
        stream.streaming = false
        nghttp2_session_resume_data(self.session, id)
    }

    /// Whether a request's body is still awaited on some stream.
    var awaitsRequestBodies: Bool { self.requestsUnfinished > 0 }

    /// The streams whose request has made no progress for `limit` nanoseconds, and
    /// how long until the next one would reach it (nil when no request is awaited).
    func stalledRequests(limit: UInt64) -> (stalled: [Int32], nextCheckIn: UInt64?) {
        let now = self.clock()
        var stalled: [Int32] = []
        var next: UInt64?
        for (id, stream) in self.streams where !stream.requestEnded {
            let quiet = now &- stream.lastProgress
            if quiet >= limit {
                stalled.append(id)
            } else {
                next = min(next ?? .max, limit - quiet)
            }
        }
        return (stalled.sorted(), next)
    }

    /// Stops a stream at once.
    func resetStream(_ id: Int32, _ code: HTTP2ErrorCode) {
        nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, code.rawValue)
    }

    /// Stops the client's upload once the response is out (RFC 9113 section 8.1:
    /// a complete response, then RST_STREAM with NO_ERROR).
    func resetAfterResponse(_ id: Int32) {
        self.streams[id]?.resetAfterResponse = true
    }

    /// The first step of a graceful close: a GOAWAY that admits every stream
    /// already under way, and a PING whose answer says the peer has seen it.
    func submitShutdownNotice() {
        nghttp2_submit_shutdown_notice(self.session)
        nghttp2_submit_ping(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// The final GOAWAY: streams after the last one processed are refused.
    func submitGoAway(_ code: HTTP2ErrorCode = .noError) {
        let last = nghttp2_session_get_last_proc_stream_id(self.session)
        nghttp2_submit_goaway(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, code.rawValue, nil, 0)
    }

    // MARK: Callbacks

    override func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            let id = frame.pointee.hd.stream_id
            let stream = Stream(id: id, account: self.account)
            stream.lastProgress = self.clock()
            self.streams[id] = stream
            self.requestsUnfinished += 1
            self.lastStream = stream
        }
        return 0
    }

    @inline(__always)
    private func stream(_ id: Int32) -> Stream? {
        if let last = self.lastStream, last.head.streamID == id { return last }
        let stream = self.streams[id]
        if stream != nil { self.lastStream = stream }
        return stream
    }

    override func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>,
        _ name: UnsafeBufferPointer<UInt8>,
        _ value: UnsafeBufferPointer<UInt8>
    ) -> Int32 {
        // Trailers a client sends after its body are not needed.
        guard frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST, let stream = self.stream(frame.pointee.hd.stream_id) else {
            return 0
        }
        let valueText = CommonHeaderText.string(value)
        if name.first == UInt8(ascii: ":") {
            switch CommonHeaderText.string(name) {
            case ":method": stream.head.method = valueText
            case ":path": stream.head.path = valueText
            case ":scheme": stream.head.scheme = valueText
            case ":authority": stream.head.authority = valueText
            default: break
            }
        } else {
            stream.head.headers.append(HTTPHeaderField(CommonHeaderText.string(name), valueText))
        }
        return 0
    }

    override func onFrame(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(header.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard let stream = self.stream(header.stream_id) else { return 0 }
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                stream.bodyLimit = self.policy?.bodyLimit(for: stream.head) ?? Int.max
                if self.policy?.admit(stream.head) == false {
                    self.refuse(stream, .overloaded)
                } else if let length = stream.head.header("content-length").flatMap(Int.init) {
                    if length > stream.bodyLimit {
                        self.refuse(stream, .tooLarge)
                    } else if let account = stream.account, !account.hasRoom(for: length) {
                        self.refuse(stream, .overloaded)
                    } else {
                        stream.body.reserveCapacity(length)
                        stream.sizeKnown = true
                    }
                }
                self.events.append(.requestHead(header.stream_id))
            }
            if endStream { self.endRequest(stream) }
            if endStream && !stream.discarding { self.events.append(.requestEnd(header.stream_id)) }
        case NGHTTP2_DATA.rawValue:
            if endStream, let stream = self.stream(header.stream_id) {
                self.endRequest(stream)
                if !stream.discarding { self.events.append(.requestEnd(header.stream_id)) }
            }
        case NGHTTP2_PING.rawValue:
            if header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { self.events.append(.pingAcknowledged) }
        case NGHTTP2_WINDOW_UPDATE.rawValue:
            return self.countIdleFrame("WINDOW_UPDATE")
        case NGHTTP2_PRIORITY.rawValue:
            return self.countIdleFrame("PRIORITY")
        default:
            break
        }
        if UInt32(header.type) == NGHTTP2_DATA.rawValue && header.length == 0 && !endStream { return self.countIdleFrame("empty DATA") }
        return 0
    }

    /// Counts a frame that carries nothing; past the budget in a second, fails the session.
    private func countIdleFrame(_ kind: String) -> Int32 {
        self.idleFrames += 1
        // The clock is read once per 1,024 such frames: a client's few cost nothing.
        guard self.idleFrames & 1023 == 0 else { return 0 }
        let now = self.clock()
        if now &- self.idleFramesSince > 1_000_000_000 {
            self.idleFramesSince = now
            self.idleFrames = 0
        } else if self.idleFrames >= Self.idleFrameBudget {
            self.flood = "sent more than \(Self.idleFrameBudget) \(kind) and other empty frames within a second (a flood); connection closed"
            return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
        }
        return 0
    }

    override func onData(_ id: Int32, _ data: UnsafeRawBufferPointer) -> Int32 {
        nghttp2_session_consume_connection(self.session, data.count)
        guard let stream = self.stream(id), !stream.discarding else {
            nghttp2_session_consume_stream(self.session, id, data.count)
            return 0
        }
        stream.unconsumed += data.count
        stream.lastProgress = self.clock()
        guard stream.body.readableBytes + data.count <= stream.bodyLimit else {
            self.refuse(stream, .tooLarge)
            return 0
        }
        guard self.holdBody(stream, upTo: stream.body.readableBytes + data.count) else {
            self.refuse(stream, .overloaded)
            return 0
        }
        stream.body.writeBytes(data)
        if !stream.sizeKnown, let policy = self.policy {
            switch policy.expectedBodySize(for: stream.head, prefix: stream.body) {
            case .needMoreBytes:
                break
            case .unknown:
                stream.sizeKnown = true
            case .bytes(let size):
                stream.sizeKnown = true
                if size > stream.bodyLimit {
                    self.refuse(stream, .tooLarge)
                } else if let account = stream.account, !account.hasRoom(for: size - stream.held) {
                    self.refuse(stream, .overloaded)
                } else {
                    // Allocated once; counted as it arrives, so a client that announces much and sends little holds little.
                    stream.body.reserveCapacity(size)
                }
            }
        }
        return 0
    }

    /// Counts a stream's body as `size` bytes (what has arrived); false when the account is full.
    private func holdBody(_ stream: Stream, upTo size: Int) -> Bool {
        guard size > stream.held, let account = stream.account else { return true }
        guard account.hold(size - stream.held) else { return false }
        stream.held = size
        return true
    }

    /// Drops a body that is refused and reports it once.
    private func refuse(_ stream: Stream, _ refusal: HTTP2Refusal) {
        stream.discarding = true
        stream.body = ByteBuffer()
        if stream.held > 0 {
            stream.account?.release(stream.held)
            stream.held = 0
        }
        self.consume(stream.head.streamID)
        self.events.append(.refused(stream.head.streamID, refusal))
    }

    /// A request's END_STREAM came: its body is whole.
    private func endRequest(_ stream: Stream) {
        guard !stream.requestEnded else { return }
        stream.requestEnded = true
        self.requestsUnfinished -= 1
    }

    override func onStreamClose(_ id: Int32, _ errorCode: UInt32) -> Int32 {
        if let stream = self.streams.removeValue(forKey: id) { self.endRequest(stream) }
        if self.lastStream?.head.streamID == id { self.lastStream = nil }
        self.events.append(.streamClosed(id, errorCode: errorCode))
        return 0
    }

    /// The protocol errors reported since the last call.
    func takeSentErrors() -> [String] {
        defer { self.sentErrors = [] }
        return self.sentErrors
    }

    override func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        // nghttp2 answers a peer that breaks the protocol with GOAWAY (the
        // connection) or RST_STREAM (one stream) carrying an error code.
        if UInt32(header.type) == NGHTTP2_GOAWAY.rawValue, frame.pointee.goaway.error_code != 0 {
            let goaway = frame.pointee.goaway
            let debug = String(decoding: UnsafeBufferPointer(start: goaway.opaque_data, count: goaway.opaque_data_len), as: UTF8.self)
            self.sentErrors.append("HTTP/2 protocol error \(Self.errorName(goaway.error_code)): \(self.lastErrorMessage ?? debug)")
            self.lastErrorMessage = nil
        } else if UInt32(header.type) == NGHTTP2_RST_STREAM.rawValue,
            [HTTP2ErrorCode.protocolError.rawValue, HTTP2ErrorCode.flowControlError.rawValue].contains(frame.pointee.rst_stream.error_code)
        {
            self.sentErrors.append(
                "HTTP/2 stream \(header.stream_id) reset, \(Self.errorName(frame.pointee.rst_stream.error_code)): \(self.lastErrorMessage ?? "invalid stream")")
            self.lastErrorMessage = nil
        }
        let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        let type = UInt32(header.type)
        if endStream, type == NGHTTP2_HEADERS.rawValue || type == NGHTTP2_DATA.rawValue,
            let stream = self.streams[header.stream_id], stream.resetAfterResponse
        {
            stream.resetAfterResponse = false
            nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), header.stream_id, HTTP2ErrorCode.noError.rawValue)
        }
        return 0
    }

    /// The response body, then its trailers (gRPC's status) once it is all out.
    override func readBody(_ id: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = self.stream(id), var body = stream.responseBody else {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return 0
        }
        let count = min(length, body.readableBytes)
        body.readWithUnsafeReadableBytes { raw in
            if count > 0 { buffer.update(from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count) }
            return count
        }
        stream.responseBody = body
        if body.readableBytes == 0 {
            // A live body with nothing queued: wait for `appendResponseBody`.
            if stream.streaming { return count > 0 ? count : Int(NGHTTP2_ERR_DEFERRED.rawValue) }
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if let trailers = stream.trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                _ = self.withNameValues(trailers) { nva, nvCount in
                    nghttp2_submit_trailer(self.session, id, nva, nvCount)
                }
            }
        }
        return count
    }
}
