import CNGHTTP2
import NIOCore

/// A real nghttp2 client session, for driving the server handler in tests:
/// it writes the preface, SETTINGS, HEADERS and DATA a client would, and
/// reads back the server's frames.
final class TestHTTP2Client {
    struct Response {
        var status: String?
        var headers: [(String, String)] = []
        var trailers: [(String, String)] = []
        var body: [UInt8] = []
        var closedWith: UInt32?

        func header(_ name: String) -> String? { self.headers.first { $0.0 == name }?.1 }
        func trailer(_ name: String) -> String? { self.trailers.first { $0.0 == name }?.1 }
    }

    private var session: OpaquePointer?
    private(set) var responses: [Int32: Response] = [:]
    private var bodies: [Int32: [UInt8]] = [:]
    private(set) var goAwayLastStreamIDs: [Int32] = []

    init(windowSize: UInt32 = 65_535) {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, user in
            let client = Unmanaged<TestHTTP2Client>.fromOpaque(user!).takeUnretainedValue()
            let id = frame!.pointee.hd.stream_id
            let field = (
                String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
            )
            var response = client.responses[id] ?? Response()
            if field.0 == ":status" {
                response.status = field.1
            } else if frame!.pointee.headers.cat == NGHTTP2_HCAT_HEADERS {
                response.trailers.append(field)
            } else {
                response.headers.append(field)
            }
            client.responses[id] = response
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, id, data, length, user in
            let client = Unmanaged<TestHTTP2Client>.fromOpaque(user!).takeUnretainedValue()
            client.responses[id, default: Response()].body += UnsafeBufferPointer(start: data, count: length)
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, id, code, user in
            let client = Unmanaged<TestHTTP2Client>.fromOpaque(user!).takeUnretainedValue()
            client.responses[id, default: Response()].closedWith = code
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
            let client = Unmanaged<TestHTTP2Client>.fromOpaque(user!).takeUnretainedValue()
            if frame!.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) {
                client.goAwayLastStreamIDs.append(frame!.pointee.goaway.last_stream_id)
            }
            return 0
        }
        nghttp2_session_client_new(&self.session, callbacks, Unmanaged.passUnretained(self).toOpaque())
        var settings = [nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: windowSize)]
        nghttp2_submit_settings(self.session, 0, &settings, 1)
    }

    deinit {
        nghttp2_session_del(self.session)
    }

    /// Queues a request; the body is sent as the server's windows allow.
    @discardableResult
    func request(method: String = "POST", path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) -> Int32 {
        let fields = [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path)] + headers
        // All names and values in one array; nghttp2 copies them during the call.
        var storage: [UInt8] = []
        var spans: [(Int, Int, Int, Int)] = []
        for (name, value) in fields {
            let nameStart = storage.count
            storage += Array(name.utf8)
            let valueStart = storage.count
            storage += Array(value.utf8)
            spans.append((nameStart, valueStart - nameStart, valueStart, storage.count - valueStart))
        }
        var id: Int32 = 0
        storage.withUnsafeMutableBufferPointer { bytes in
            let base = bytes.baseAddress!
            let nva = spans.map { nghttp2_nv(name: base + $0.0, value: base + $0.2, namelen: $0.1, valuelen: $0.3, flags: 0) }
            if let body {
                var provider = nghttp2_data_provider()
                provider.read_callback = { session, streamID, buffer, length, flags, _, user in
                    let client = Unmanaged<TestHTTP2Client>.fromOpaque(user!).takeUnretainedValue()
                    let remaining = client.bodies[streamID] ?? []
                    let count = min(length, remaining.count)
                    remaining.withUnsafeBufferPointer { if count > 0 { buffer!.update(from: $0.baseAddress!, count: count) } }
                    client.bodies[streamID] = Array(remaining.dropFirst(count))
                    if client.bodies[streamID]!.isEmpty { flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
                    return count
                }
                id = nghttp2_submit_request(self.session, nil, nva, nva.count, &provider, nil)
                self.bodies[id] = body
            } else {
                id = nghttp2_submit_request(self.session, nil, nva, nva.count, nil, nil)
            }
        }
        return id
    }

    func resetStream(_ id: Int32) {
        nghttp2_submit_rst_stream(self.session, 0, id, 0x8)
    }

    /// What the client would write now.
    func output() -> ByteBuffer {
        var buffer = ByteBuffer()
        while true {
            var data: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(self.session, &data)
            guard count > 0, let data else { break }
            buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: count))
        }
        return buffer
    }

    func receive(_ buffer: ByteBuffer) {
        _ = buffer.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(self.session, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
    }
}
