import NIOCore
import OTLPDHTTP

/// A client connection on nghttp2: requests are submitted on the channel's
/// event loop and each completes its promise with the response, or with an
/// `HTTPClientError`. Many streams share the connection; those beyond the
/// peer's MAX_CONCURRENT_STREAMS wait in nghttp2 for a free one.
public final class HTTP2ClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let settings: HTTP2ClientSettings
    private var session: NGHTTP2ClientSession?
    private var context: ChannelHandlerContext?
    private var pending: [Int32: EventLoopPromise<HTTPClientResponse>] = [:]
    private var sawFirstBytes = false
    private var inReadBurst = false
    private var outputPending = false
    /// Why the connection can take no more requests, once it cannot.
    private var failure: HTTPClientError?
    /// Told once, on the event loop, when the connection takes no new streams
    /// (a GOAWAY either way, an error, or the close), so its owner opens another.
    private let unusable: () -> Void
    private var toldUnusable = false

    public init(settings: HTTP2ClientSettings = HTTP2ClientSettings(), unusable: @escaping () -> Void) {
        self.settings = settings
        self.unusable = unusable
    }

    /// Whether a request submitted now would be sent on this connection.
    public var acceptsNewStreams: Bool {
        self.failure == nil && self.session?.acceptsNewStreams == true
    }

    /// Requests sent and not yet answered.
    public var activeStreams: Int { self.pending.count }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            self.session = try NGHTTP2ClientSession(settings: self.settings)
        } catch {
            self.fail(HTTPClientError(.protocolError, "\(error)"))
            context.close(promise: nil)
            return
        }
        if context.channel.isActive { self.flushOutput() }
    }

    public func channelActive(context: ChannelHandlerContext) {
        // The preface and SETTINGS go first.
        self.flushOutput()
        context.fireChannelActive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.fail(HTTPClientError(.connectionLost, "the connection closed"))
        self.context = nil
        self.session = nil
    }

    // MARK: Requests

    /// Sends a request; `promise` completes with its response. Call on the event loop.
    /// Returns the stream id, or nil when the connection takes no new streams (the promise then fails).
    @discardableResult
    public func submit(_ request: HTTPClientRequest, promise: EventLoopPromise<HTTPClientResponse>) -> Int32? {
        guard let session = self.session, self.acceptsNewStreams else {
            // A peer that is not an HTTP/2 server may have answered before this request was submitted: say so.
            if let failure = self.failure, case .wrongProtocol = failure.kind {
                promise.fail(failure)
                return nil
            }
            // Not sent: the caller may send it again on another connection.
            promise.fail(HTTPClientError(.refused, "the connection takes no new requests\(self.failure.map { ": \($0)" } ?? "")"))
            return nil
        }
        let id: Int32
        do {
            id = try session.submitRequest(request)
        } catch {
            promise.fail(HTTPClientError(.protocolError, "\(error)"))
            return nil
        }
        self.pending[id] = promise
        if self.inReadBurst {
            self.outputPending = true
        } else {
            self.flushOutput()
        }
        return id
    }

    /// Gives up on a request (its deadline passed): the stream is reset and its promise fails with `error`.
    public func cancel(_ id: Int32, _ error: HTTPClientError) {
        guard let promise = self.pending.removeValue(forKey: id) else { return }
        self.session?.resetStream(id, .cancel)
        promise.fail(error)
        self.flushOutput()
    }

    /// A graceful close: no new streams; the connection closes once those under way are answered.
    public func close() {
        guard let session = self.session else { return }
        if self.pending.isEmpty {
            self.context?.close(promise: nil)
            return
        }
        session.submitGoAway()
        self.tellUnusable()
        self.flushOutput()
    }

    // MARK: Reading

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session = self.session else { return }
        let bytes = self.unwrapInboundIn(data)
        if !self.sawFirstBytes {
            self.sawFirstBytes = true
            if let error = Self.notHTTP2(bytes) {
                self.fail(error)
                context.close(promise: nil)
                return
            }
        }
        self.inReadBurst = true
        defer { self.inReadBurst = false }
        let events: [NGHTTP2ClientEvent]
        do {
            events = try session.receive(bytes)
        } catch {
            let detail = session.lastErrorMessage.map { "\(error): \($0)" } ?? "\(error)"
            self.fail(HTTPClientError(.protocolError, "HTTP/2 protocol error from the upstream: \(detail)"))
            context.close(promise: nil)
            return
        }
        self.process(events)
        self.outputPending = true
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if self.outputPending { self.flushOutput() }
        context.fireChannelReadComplete()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !self.sawFirstBytes && !self.pending.isEmpty {
            // Not even SETTINGS, which an HTTP/2 server sends first: most likely not an HTTP/2 server.
            self.fail(HTTPClientError(.wrongProtocol(.other), "closed the connection without answering HTTP/2 (no SETTINGS frame)"))
        }
        self.fail(HTTPClientError(.connectionLost, "the upstream closed the connection"))
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.sawFirstBytes && !self.pending.isEmpty && !(error is HTTPClientError) {
            self.fail(HTTPClientError(.wrongProtocol(.other), "reset the connection without answering HTTP/2 (\(error))"))
        }
        self.fail(error as? HTTPClientError ?? HTTPClientError(.connectionLost, "\(error)"))
        context.close(promise: nil)
    }

    private func process(_ events: [NGHTTP2ClientEvent]) {
        for event in events {
            switch event {
            case .response(let id, let response):
                self.pending.removeValue(forKey: id)?.succeed(response)
            case .reset(let id, let code):
                let kind: HTTPClientError.Kind = code == HTTP2ErrorCode.refusedStream.rawValue ? .refused : .connectionLost
                self.pending.removeValue(forKey: id)?.fail(
                    HTTPClientError(kind, "the upstream reset the stream (\(NGHTTP2Session.errorName(code)))"))
            case .goAway(let last, let code, let debug):
                // Streams after `last` were never processed; nghttp2 closes them, with REFUSED_STREAM.
                if code != 0 {
                    self.failure = HTTPClientError(
                        .connectionLost, "the upstream ended the connection: \(NGHTTP2Session.errorName(code))\(debug.isEmpty ? "" : " (\(debug))")")
                }
                _ = last
                self.tellUnusable()
            }
        }
        if let session = self.session, !session.isActive { self.context?.close(promise: nil) }
    }

    private func flushOutput() {
        guard let session = self.session, let context = self.context, context.channel.isActive else { return }
        self.outputPending = false
        // Request bodies go out as slices of their own buffers (one writev), not copied.
        var output: [ByteBuffer] = []
        do {
            try session.pendingOutput(into: &output, allocator: context.channel.allocator)
        } catch {
            self.fail(HTTPClientError(.protocolError, "\(error)"))
            context.close(promise: nil)
            return
        }
        self.process(session.takeEvents())
        if !output.isEmpty {
            for chunk in output { context.write(self.wrapOutboundOut(chunk), promise: nil) }
            context.flush()
        }
        if !session.isActive || (!session.acceptsNewStreams && self.pending.isEmpty) {
            context.close(promise: nil)
        }
    }

    /// Fails every request under way, and every later one, with `error`.
    private func fail(_ error: HTTPClientError) {
        if self.failure == nil { self.failure = error }
        let pending = self.pending
        self.pending = [:]
        for (_, promise) in pending { promise.fail(self.failure ?? error) }
        self.tellUnusable()
    }

    private func tellUnusable() {
        guard !self.toldUnusable else { return }
        self.toldUnusable = true
        self.unusable()
    }

    /// The first bytes of a peer that is not an HTTP/2 server, which must
    /// start with a SETTINGS frame: an HTTP/1.x status line, a TLS record (a
    /// server that wants TLS answers a plain preface with an alert), or
    /// anything else.
    static func notHTTP2(_ bytes: ByteBuffer) -> HTTPClientError? {
        let view = bytes.readableBytesView
        if view.starts(with: "HTTP/".utf8) {
            let line = view.prefix(80).prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
            return HTTPClientError(.wrongProtocol(.http1), "answered HTTP/1.x (\"\(String(decoding: line, as: UTF8.self))\"), not HTTP/2")
        }
        if let first = view.first, first == 0x15 || first == 0x16, view.dropFirst().first == 0x03 {
            return HTTPClientError(.wrongProtocol(.tls), "answered with TLS to a plain-text connection")
        }
        // A frame header: 3 bytes of length, then the type, 0x4 for SETTINGS.
        guard view.count >= 4, view[view.startIndex + 3] != 0x04 else { return nil }
        let printable = view.prefix(32).map { $0 >= 0x20 && $0 < 0x7F ? Character(Unicode.Scalar($0)) : "." }
        return HTTPClientError(.wrongProtocol(.other), "answered something other than HTTP/2 (\"\(String(printable))\")")
    }
}
