import NIOCore
import OTLPDHTTP

/// Why a request was answered before its body was read.
public enum HTTP2Refusal: Sendable, Equatable {
    /// The body is over its size limit.
    case tooLarge
    /// The process holds as much telemetry as its memory limit allows.
    case overloaded
}

/// Counts the request body bytes that connections hold, against a limit
/// the layer above sets; `hold` says no when the limit would be passed.
public protocol HTTP2BodyAccount: AnyObject, Sendable {
    func hold(_ bytes: Int) -> Bool
    func release(_ bytes: Int)
    /// Whether a body of `bytes` (announced, not yet arrived) could be held now.
    func hasRoom(for bytes: Int) -> Bool
}

/// What the layer above provides to a server connection: body limits, and
/// the handling of complete requests. Called on the connection's event loop.
public protocol HTTP2ServerDelegate: AnyObject {
    /// Where body bytes are counted while a stream holds them.
    var bodyAccount: (any HTTP2BodyAccount)? { get }
    /// Whether a request may start now (false: it is refused as overloaded).
    func admit(_ head: HTTP2RequestHead) -> Bool
    /// The largest body this request may send.
    func bodyLimit(for head: HTTP2RequestHead) -> Int
    /// The size the body will have, judged from its first bytes (gRPC's length prefix), to allocate once.
    func expectedBodySize(for head: HTTP2RequestHead, prefix: ByteBuffer) -> ExpectedBodySize
    /// A complete request. Answer through `responder`, from any thread.
    func handle(_ request: HTTP2Request, responder: HTTP2Responder)
    /// The answer to a request refused before its body was read.
    func refusalResponse(for head: HTTP2RequestHead, _ refusal: HTTP2Refusal) -> HTTP2Response
    /// The connection failed: a protocol error or a client that is not speaking HTTP/2.
    func connectionFailed(_ error: NGHTTP2Error)
}

/// Answers one stream, from any thread: the response is submitted on the
/// connection's event loop.
public struct HTTP2Responder: Sendable {
    let handler: NIOLoopBound<HTTP2ServerHandler>
    public let streamID: Int32

    public func respond(_ response: HTTP2Response) {
        let eventLoop = self.handler.eventLoop
        if eventLoop.inEventLoop {
            self.handler.value.respond(self.streamID, response)
        } else {
            let handler = self.handler
            let streamID = self.streamID
            eventLoop.execute { handler.value.respond(streamID, response) }
        }
    }
}

/// A server connection on nghttp2: the bytes of the socket go into the
/// session, complete requests go to the delegate, responses come back through
/// a responder. Output is gathered and written once per read burst.
public final class HTTP2ServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let settings: HTTP2ServerSettings
    private let delegate: any HTTP2ServerDelegate
    private var session: NGHTTP2ServerSession?
    private var state = HTTP2ServerConnection.StateMachine()
    private var context: ChannelHandlerContext?
    private var inReadBurst = false
    private var outputPending = false
    /// How long to wait for the PING answer before the final GOAWAY.
    private let drainTimeout: TimeAmount
    /// How long a request's body may make no progress before its stream is reset (a slow-body client).
    private let stallTimeout: TimeAmount
    private var stallTimer: Scheduled<Void>?
    /// The readers of live bodies, by stream: cancelled when their stream or the connection closes.
    private var liveBodies: [Int32: Task<Void, Never>] = [:]
    /// Bytes of a live body that may wait for a peer that does not read; pieces past it are dropped.
    static let liveBodyBacklog = 256 * 1024

    public init(
        settings: HTTP2ServerSettings, delegate: any HTTP2ServerDelegate, drainTimeout: TimeAmount = .seconds(1), stallTimeout: TimeAmount = .seconds(10)
    ) {
        self.settings = settings
        self.delegate = delegate
        self.drainTimeout = drainTimeout
        self.stallTimeout = stallTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            let session = try NGHTTP2ServerSession(settings: self.settings)
            session.policy = self.policy
            session.account = self.delegate.bodyAccount
            let eventLoop = context.eventLoop
            session.clock = { eventLoop.now.uptimeNanoseconds }
            self.session = session
        } catch {
            self.delegate.connectionFailed(error)
            context.close(promise: nil)
            return
        }
        // The server's SETTINGS go out at once, before the client's preface is read.
        self.flushOutput()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.stallTimer?.cancel()
        self.stallTimer = nil
        self.context = nil
        self.session = nil
        for task in self.liveBodies.values { task.cancel() }
        self.liveBodies = [:]
    }

    private lazy var policy = Policy(delegate: self.delegate)

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session = self.session else { return }
        let bytes = self.unwrapInboundIn(data)
        self.inReadBurst = true
        let events: [NGHTTP2SessionEvent]
        do {
            events = try session.receive(bytes)
        } catch {
            self.delegate.connectionFailed(error)
            self.inReadBurst = false
            self.flushOutput()
            context.close(promise: nil)
            return
        }
        self.process(events, session: session, context: context)
        self.outputPending = true
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        self.inReadBurst = false
        if self.outputPending { self.flushOutput() }
        // A request body still incomplete at the end of a read: watch that it keeps coming.
        if self.stallTimer == nil, self.session?.awaitsRequestBodies == true { self.watchStalls(after: self.stallTimeout, eventLoop: context.eventLoop) }
        context.fireChannelReadComplete()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.state.channelClosed()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.quiesce(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func process(_ events: [NGHTTP2SessionEvent], session: NGHTTP2ServerSession, context: ChannelHandlerContext) {
        for event in events {
            switch event {
            case .requestHead:
                break
            case .requestEnd(let id):
                guard let request = session.takeRequest(id) else { continue }
                let responder = HTTP2Responder(handler: NIOLoopBound(self, eventLoop: context.eventLoop), streamID: id)
                self.delegate.handle(request, responder: responder)
            case .refused(let id, let refusal):
                guard let head = session.head(of: id) else { continue }
                // Once the answer is out, tell the client to stop sending the rest.
                session.resetAfterResponse(id)
                self.respond(id, self.delegate.refusalResponse(for: head, refusal))
            case .streamClosed(let id, _):
                self.liveBodies.removeValue(forKey: id)?.cancel()
            case .pingAcknowledged:
                self.drainPointReached()
            }
        }
    }

    /// Submits a response; called on the event loop.
    func respond(_ id: Int32, _ response: HTTP2Response) {
        guard let session = self.session, self.context != nil else { return }
        // The pipeline has the request: its bytes no longer count against the windows.
        session.consume(id)
        do {
            if let live = response.live, let context = self.context {
                try session.submitStreamingResponse(id, status: response.status, headers: response.headers)
                self.readLiveBody(id, live, eventLoop: context.eventLoop)
            } else {
                try session.submitResponse(id, response)
            }
        } catch {
            session.resetStream(id, .internalError)
        }
        self.written()
    }

    /// Sends each piece of a live body as it comes, and ends the stream after the last.
    private func readLiveBody(_ id: Int32, _ live: AsyncStream<ByteBuffer>, eventLoop: any EventLoop) {
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let reader = Task { await HTTP2ServerHandler.forward(live, to: handler, stream: id) }
        self.liveBodies[id] = reader
    }

    private static func forward(_ live: AsyncStream<ByteBuffer>, to handler: NIOLoopBound<HTTP2ServerHandler>, stream id: Int32) async {
        let eventLoop = handler.eventLoop
        var pieces = live.makeAsyncIterator()
        while let piece = await pieces.next() {
            eventLoop.execute {
                guard let session = handler.value.session else { return }
                // A peer that does not read misses pieces rather than growing the backlog.
                if session.appendResponseBody(id, piece, limit: Self.liveBodyBacklog) { handler.value.written() }
            }
        }
        eventLoop.execute {
            handler.value.liveBodies.removeValue(forKey: id)
            handler.value.session?.finishResponseBody(id)
            handler.value.written()
        }
    }

    /// Resets the streams whose request body stopped coming, with one line for the connection.
    private func watchStalls(after delay: TimeAmount, eventLoop: any EventLoop) {
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        self.stallTimer = eventLoop.scheduleTask(in: delay) {
            let this = handler.value
            this.stallTimer = nil
            guard let session = this.session else { return }
            let limit = UInt64(this.stallTimeout.nanoseconds)
            let (stalled, next) = session.stalledRequests(limit: limit)
            if !stalled.isEmpty {
                for id in stalled { session.resetStream(id, .cancel) }
                let streams = stalled.count == 1 ? "stream \(stalled[0])" : "\(stalled.count) streams"
                this.delegate.connectionFailed(
                    NGHTTP2Error(
                        code: 0, operation: "\(streams) sent no more of the request body for \(Duration.nanoseconds(Int64(limit))); reset (CANCEL)"))
                this.flushOutput()
            }
            if let next { this.watchStalls(after: .nanoseconds(Int64(next)), eventLoop: eventLoop) }
        }
    }

    /// Output was queued: it goes out now, or with the rest of the read burst.
    private func written() {
        if self.inReadBurst {
            // Written once at the end of the burst, with everything else.
            self.outputPending = true
        } else {
            self.flushOutput()
        }
    }

    private func flushOutput() {
        guard let session = self.session, let context = self.context else { return }
        self.outputPending = false
        var buffer = context.channel.allocator.buffer(capacity: 256)
        do {
            try session.pendingOutput(into: &buffer)
        } catch {
            self.delegate.connectionFailed(error)
            context.close(promise: nil)
            return
        }
        for message in session.takeSentErrors() {
            self.delegate.connectionFailed(NGHTTP2Error(code: 0, operation: message))
        }
        if buffer.readableBytes > 0 {
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
        if self.state.outputWritten(sessionActive: session.isActive) == .close {
            context.close(promise: nil)
        }
    }

    private func quiesce(context: ChannelHandlerContext) {
        guard let session = self.session else { return }
        switch self.state.quiesceRequested() {
        case .none:
            return
        case .sendShutdownNotice:
            session.submitShutdownNotice()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: self.drainTimeout) { loopBound.value.drainPointReached() }
            self.flushOutput()
        }
    }

    private func drainPointReached() {
        guard let session = self.session else { return }
        switch self.state.drainPointReached() {
        case .none:
            return
        case .sendGoAway:
            session.submitGoAway()
            self.flushOutput()
        }
    }

    /// Answers nghttp2's questions during reads by asking the delegate.
    private final class Policy: NGHTTP2StreamPolicy {
        unowned let delegate: any HTTP2ServerDelegate

        init(delegate: any HTTP2ServerDelegate) {
            self.delegate = delegate
        }

        func admit(_ head: HTTP2RequestHead) -> Bool {
            self.delegate.admit(head)
        }

        func bodyLimit(for head: HTTP2RequestHead) -> Int {
            self.delegate.bodyLimit(for: head)
        }

        func expectedBodySize(for head: HTTP2RequestHead, prefix: ByteBuffer) -> ExpectedBodySize {
            self.delegate.expectedBodySize(for: head, prefix: prefix)
        }
    }
}
