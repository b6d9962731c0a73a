internal import CNGHTTP2
import NIOCore
import OTLPDHTTP

/// What every nghttp2 session shares, whichever side of the connection it
/// is: the C session and its callbacks, bytes in and frames out, header
/// lists as `nghttp2_nv` blocks, and the names of error codes. A role (the
/// server's session; the forwarding client's is the next) subclasses it
/// and overrides the callbacks it needs; the C callbacks reach it through
/// the session's user data. Not thread-safe: it stays on one event loop.
class NGHTTP2Session {
    enum Role {
        case server
        case client
    }

    /// Set once by `init`; freed by `deinit`.
    private(set) var session: OpaquePointer?
    /// nghttp2's last words on a protocol error, for the report when it answers with GOAWAY / RST_STREAM.
    var lastErrorMessage: String?
    /// The last header lists built: most frames carry one of a few fixed lists.
    private var nameValueCache: [(fields: [HTTPHeaderField], block: NameValueBlock)] = []

    /// `manualWindowUpdates`: stream windows reopen only through `consume`
    /// (a server holding bodies until the pipeline took them), not as bytes arrive.
    init(role: Role, manualWindowUpdates: Bool) throws(NGHTTP2Error) {
        var callbacks: OpaquePointer?
        try check(nghttp2_session_callbacks_new(&callbacks), "nghttp2_session_callbacks_new")
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.install(callbacks)

        var option: OpaquePointer?
        try check(nghttp2_option_new(&option), "nghttp2_option_new")
        defer { nghttp2_option_del(option) }
        if manualWindowUpdates { nghttp2_option_set_no_auto_window_update(option, 1) }
        if role == .server {
            // Against floods, stated here rather than left to the library's defaults: rapid reset
            // (CVE-2023-44487: a burst of 1000 stream resets, then 33 a second), SETTINGS and
            // PING/SETTINGS-ack floods, and CONTINUATION floods; past one, nghttp2 ends the connection.
            nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
            nghttp2_option_set_max_settings(option, 32)
            nghttp2_option_set_max_outbound_ack(option, 1000)
            nghttp2_option_set_max_continuations(option, 8)
        }

        var session: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        switch role {
        case .server:
            try check(nghttp2_session_server_new2(&session, callbacks, userData, option), "nghttp2_session_server_new2")
        case .client:
            try check(nghttp2_session_client_new2(&session, callbacks, userData, option), "nghttp2_session_client_new2")
        }
        self.session = session
    }

    deinit {
        nghttp2_session_del(self.session)
    }

    /// The SETTINGS frame that opens the session (with `entries` as id and
    /// value) and the connection's receive window.
    func submitSettings(_ entries: [(nghttp2_settings_id, UInt32)], connectionWindow: Int32) throws(NGHTTP2Error) {
        var frame = entries.map { nghttp2_settings_entry(settings_id: Int32($0.0.rawValue), value: $0.1) }
        try check(nghttp2_submit_settings(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &frame, frame.count), "nghttp2_submit_settings")
        try check(
            nghttp2_session_set_local_window_size(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, connectionWindow),
            "nghttp2_session_set_local_window_size")
    }

    // MARK: Bytes in, frames out

    /// Feeds bytes from the peer; the callbacks run during the call.
    func feed(_ buffer: ByteBuffer) throws(NGHTTP2Error) {
        let result = buffer.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(self.session, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        try check(Int32(clamping: result), "nghttp2_session_mem_recv")
    }

    /// Frames ready to send, appended to `buffer`. nghttp2's pointer is valid
    /// only until its next call, so each chunk is copied at once.
    func pendingOutput(into buffer: inout ByteBuffer) throws(NGHTTP2Error) {
        while true {
            var data: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(self.session, &data)
            try check(Int32(clamping: count), "nghttp2_session_mem_send")
            guard count > 0, let data else { return }
            buffer.writeBytes(UnsafeRawBufferPointer(start: data, count: count))
        }
    }

    /// Frames ready to send, appended to `output` in order: nghttp2's bytes
    /// copied into buffers of their own, and DATA that a role sends without a
    /// copy (`sendDataWithoutCopy`) as slices of the buffers it came in.
    func pendingOutput(into output: inout [ByteBuffer], allocator: ByteBufferAllocator) throws(NGHTTP2Error) {
        var current = allocator.buffer(capacity: 512)
        self.uncopiedOutput = []
        defer { self.uncopiedOutput = nil }
        while true {
            var data: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(self.session, &data)
            try check(Int32(clamping: count), "nghttp2_session_mem_send")
            // A DATA frame without a copy was emitted during the call, after the bytes before it were returned.
            if let uncopied = self.uncopiedOutput, !uncopied.isEmpty {
                if current.readableBytes > 0 {
                    output.append(current)
                    current = allocator.buffer(capacity: 512)
                }
                output.append(contentsOf: uncopied)
                self.uncopiedOutput = []
            }
            guard count > 0, let data else { break }
            current.writeBytes(UnsafeRawBufferPointer(start: data, count: count))
        }
        if current.readableBytes > 0 { output.append(current) }
    }

    /// What `sendDataWithoutCopy` emitted during the current `pendingOutput`; nil outside it.
    private var uncopiedOutput: [ByteBuffer]?

    /// For a role's `sendData`: a DATA frame's 9-byte header, then its payload as the given slices.
    func emitWithoutCopy(header: UnsafePointer<UInt8>, payload: [ByteBuffer]) -> Int32 {
        guard self.uncopiedOutput != nil else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
        self.uncopiedOutput!.append(ByteBuffer(bytes: UnsafeBufferPointer(start: header, count: 9)))
        self.uncopiedOutput!.append(contentsOf: payload)
        return 0
    }

    /// False once the session is finished (GOAWAY exchanged, no streams left).
    var isActive: Bool {
        nghttp2_session_want_read(self.session) != 0 || nghttp2_session_want_write(self.session) != 0
    }

    // MARK: Callbacks, overridden by a role (each returns 0 or an nghttp2 error code)

    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    func onHeader(_ frame: UnsafePointer<nghttp2_frame>, _ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>) -> Int32 { 0 }
    func onFrame(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    func onData(_ id: Int32, _ data: UnsafeRawBufferPointer) -> Int32 { 0 }
    func onStreamClose(_ id: Int32, _ errorCode: UInt32) -> Int32 { 0 }
    func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    /// A DATA frame of stream `id` whose `readBody` set NGHTTP2_DATA_FLAG_NO_COPY: emit
    /// its header and `length` bytes of payload through `emitWithoutCopy`.
    func sendData(_ id: Int32, header: UnsafePointer<UInt8>, length: Int) -> Int32 { NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }

    /// Fills `buffer` with up to `length` bytes of stream `id`'s outgoing
    /// body, setting `flags` at its end; returns how many.
    func readBody(_ id: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        return 0
    }

    /// A data provider whose reads come to `readBody`.
    static var bodyProvider: nghttp2_data_provider {
        var provider = nghttp2_data_provider()
        provider.read_callback = { _, streamID, buffer, length, flags, _, userData in
            Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue().readBody(streamID, buffer!, length, flags!)
        }
        return provider
    }

    private static func install(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue().onBeginHeaders(frame!)
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            let session = Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
            return session.onHeader(
                frame!, UnsafeBufferPointer(start: name, count: nameLength), UnsafeBufferPointer(start: value, count: valueLength))
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue().onFrame(frame!)
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            let session = Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
            return session.onData(streamID, UnsafeRawBufferPointer(start: data, count: length))
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue().onStreamClose(streamID, errorCode)
        }
        nghttp2_session_callbacks_set_error_callback2(callbacks) { _, _, message, length, userData in
            let session = Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue()
            session.lastErrorMessage = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue().onFrameSent(frame!)
        }
        nghttp2_session_callbacks_set_send_data_callback(callbacks) { _, frame, header, length, _, userData in
            Unmanaged<NGHTTP2Session>.fromOpaque(userData!).takeUnretainedValue().sendData(frame!.pointee.hd.stream_id, header: header!, length: length)
        }
    }

    // MARK: Header lists and error names

    /// Header fields as nghttp2_nv entries pointing into one byte array
    /// (nghttp2 copies them during the call).
    func withNameValues<Result, Failure: Error>(
        _ fields: [HTTPHeaderField],
        _ body: (UnsafePointer<nghttp2_nv>, Int) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        if let index = self.nameValueCache.firstIndex(where: { $0.fields == fields }) {
            return try self.nameValueCache[index].block.withEntries(body)
        }
        let block = NameValueBlock(fields)
        if self.nameValueCache.count >= 4 { self.nameValueCache.removeFirst() }
        self.nameValueCache.append((fields, block))
        return try block.withEntries(body)
    }

    /// An HTTP/2 error code's name (RFC 9113 section 7), for log lines.
    static func errorName(_ code: UInt32) -> String {
        switch code {
        case 0x1: "PROTOCOL_ERROR"
        case 0x2: "INTERNAL_ERROR"
        case 0x3: "FLOW_CONTROL_ERROR"
        case 0x4: "SETTINGS_TIMEOUT"
        case 0x5: "STREAM_CLOSED"
        case 0x6: "FRAME_SIZE_ERROR"
        case 0x7: "REFUSED_STREAM"
        case 0x8: "CANCEL"
        case 0x9: "COMPRESSION_ERROR"
        case 0xB: "ENHANCE_YOUR_CALM"
        default: "error 0x\(String(code, radix: 16))"
        }
    }

    /// One header list as nghttp2_nv entries over one allocation.
    private final class NameValueBlock {
        let storage: UnsafeMutableBufferPointer<UInt8>
        let entries: UnsafeMutableBufferPointer<nghttp2_nv>
        let count: Int

        init(_ fields: [HTTPHeaderField]) {
            let total = fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            self.storage = .allocate(capacity: max(total, 1))
            self.entries = .allocate(capacity: max(fields.count, 1))
            var offset = 0
            for (index, field) in fields.enumerated() {
                let name = offset
                for byte in field.name.utf8 { self.storage[offset] = byte; offset += 1 }
                let value = offset
                for byte in field.value.utf8 { self.storage[offset] = byte; offset += 1 }
                self.entries[index] = nghttp2_nv(
                    name: self.storage.baseAddress! + name, value: self.storage.baseAddress! + value, namelen: value - name,
                    valuelen: offset - value, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            self.count = fields.count
        }

        deinit {
            self.storage.deallocate()
            self.entries.deallocate()
        }

        func withEntries<Result, Failure: Error>(_ body: (UnsafePointer<nghttp2_nv>, Int) throws(Failure) -> Result) throws(Failure) -> Result {
            try body(UnsafePointer(self.entries.baseAddress!), self.count)
        }
    }
}
