import NIOCore
import NIOHTTP1
import OTLPDHTTP
import OTLPDHTTP2

/// Serves HTTP/1.1 requests (after NIO's HTTP/1 codec): gathers each body
/// within its limit, answers `Expect: 100-continue`, runs the request
/// handler, writes the response, and keeps the connection alive unless the
/// client or a shutdown says otherwise.
final class HTTP1ServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(ServerRequestHead, ByteBuffer, limit: Int, keepAlive: Bool)
        /// Refused (too large): the rest of the body is read and dropped, then the connection closes.
        case discarding
        /// Refused for memory, already answered: the rest of the body is read and dropped, so the
        /// client reads the answer rather than a reset, and the connection stays open if it may.
        case draining(keepAlive: Bool)
        case waitingForResponse(keepAlive: Bool)
        /// Answered with a live body (a feed): its pieces go out until it ends, then the connection closes.
        case live(Task<Void, Never>)
    }

    private let handler: any RequestHandler
    private let client: ClientInfo
    private let executor: EventLoopTaskExecutor
    private var state = State.idle
    private var quiescing = false
    /// Body bytes of the current request counted in the handler's memory count, until it is answered.
    private var held = 0
    /// Closes a connection idle past `idle_timeout`, or slow to send a head past `read_header_timeout`.
    private var headTimer: HTTP1HeadTimer
    /// When the body being received last grew: a body that stops for `read_header_timeout` is cut off
    /// (a slow-body client would otherwise hold its connection and what it sent for ever).
    private var bodyProgress = NIODeadline.distantPast
    private var bodyTimer: Scheduled<Void>?
    /// Closed here for a reason already logged: the decoder's complaint about the cut request is not another.
    private var cutOff = false

    init(handler: any RequestHandler, client: ClientInfo, executor: EventLoopTaskExecutor, timeouts: HTTP1Timeouts = HTTP1Timeouts()) {
        self.headTimer = HTTP1HeadTimer(timeouts: timeouts)
        self.handler = handler
        self.client = client
        self.executor = executor
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.waitForRequest(context: context)
    }

    /// Idle (or just connected): the next head is awaited, within the timeouts.
    private func waitForRequest(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.headTimer.waitForRequest(on: context.eventLoop) { expiry in
            let (handler, context) = loopBound.value
            handler.expired(expiry, context: context)
        }
    }

    private func expired(_ expiry: HTTP1HeadTimer.Expiry, context: ChannelHandlerContext) {
        guard case .idle = self.state else { return }
        if expiry == .slowHead {
            self.handler.connectionFailed(
                client: self.client,
                reason: "sent no complete request head within \(self.headTimer.timeouts.readHeader) (read_header_timeout); connection closed")
        }
        self.cutOff = true
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A live body answers the last request this connection takes.
        if case .live = self.state { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.headTimer.cancel()
            let headers = head.headers.map { HTTPHeaderField($0.name.lowercased(), $0.value) }
            let serverHead = ServerRequestHead(method: head.method.rawValue, path: head.uri, headers: headers, version: .http1, client: self.client)
            let limit = self.handler.bodyLimit(for: serverHead)
            guard self.handler.admit(serverHead) else {
                self.refuseOverloaded(serverHead, keepAlive: head.isKeepAlive, context: context)
                return
            }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                self.refuseTooLarge(serverHead, limit: limit, context: context)
                return
            }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
            }
            var body = context.channel.allocator.buffer(capacity: 0)
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > 0 {
                // Refused before it is read if it could not be held; allocated once, but counted as it
                // arrives, so a client that announces much and sends little holds little.
                guard self.handler.hasRoom(for: length) else {
                    self.refuseOverloaded(serverHead, keepAlive: head.isKeepAlive, context: context)
                    return
                }
                body.reserveCapacity(length)
            }
            self.state = .receiving(serverHead, body, limit: limit, keepAlive: head.isKeepAlive)
            self.bodyProgress = context.eventLoop.now
        case .body(var chunk):
            guard case .receiving(let head, var body, let limit, let keepAlive) = self.state else { return }
            guard body.readableBytes + chunk.readableBytes <= limit else {
                self.refuseTooLarge(head, limit: limit, context: context)
                return
            }
            let beyondHeld = body.readableBytes + chunk.readableBytes - self.held
            if beyondHeld > 0 {
                guard self.handler.hold(beyondHeld) else {
                    self.refuseOverloaded(head, keepAlive: keepAlive, context: context)
                    return
                }
                self.held += beyondHeld
            }
            self.state = .idle  // drop the reference so the write below does not copy
            self.bodyProgress = context.eventLoop.now
            body.writeBuffer(&chunk)
            self.state = .receiving(head, body, limit: limit, keepAlive: keepAlive)
        case .end:
            switch self.state {
            case .receiving(let head, let body, _, let keepAlive):
                self.state = .waitingForResponse(keepAlive: keepAlive)
                self.dispatch(ServerRequest(head: head, body: body), context: context)
            case .discarding:
                context.close(promise: nil)
            case .draining(let keepAlive):
                if keepAlive && !self.quiescing {
                    self.state = .idle
                    self.waitForRequest(context: context)
                } else {
                    context.close(promise: nil)
                }
            case .idle, .waitingForResponse, .live:
                break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A body still incomplete at the end of a read: watch that it keeps coming. (Most requests
        // arrive whole in one read and never arm the timer.)
        if case .receiving = self.state, self.bodyTimer == nil { self.watchBody(context: context, after: self.headTimer.timeouts.readHeader) }
        context.fireChannelReadComplete()
    }

    private func watchBody(context: ChannelHandlerContext, after delay: Duration) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.bodyTimer = context.eventLoop.scheduleTask(in: HTTP1HeadTimer.amount(delay)) {
            let (handler, context) = loopBound.value
            handler.bodyTimer = nil
            guard case .receiving = handler.state else { return }
            let limit = handler.headTimer.timeouts.readHeader
            let stalled = Duration.nanoseconds((context.eventLoop.now - handler.bodyProgress).nanoseconds)
            guard stalled >= limit else {
                handler.watchBody(context: context, after: limit - stalled)
                return
            }
            handler.handler.connectionFailed(
                client: handler.client, reason: "sent no more of its request body for \(limit) (read_header_timeout); connection closed")
            handler.cutOff = true
            context.close(promise: nil)
        }
    }

    private func dispatch(_ request: consuming ServerRequest, context: ChannelHandlerContext) {
        let handler = self.handler
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // Handed over, not kept by the task: the body goes when the pipeline lets go of it.
        var request: ServerRequest? = request
        Task.immediate(executorPreference: self.executor) {
            let response = await handler.handle(request.take()!)
            if loopBound.eventLoop.inEventLoop {
                loopBound.value.0.write(response, context: loopBound.value.1)
            } else {
                loopBound.eventLoop.execute { loopBound.value.0.write(response, context: loopBound.value.1) }
            }
        }
    }

    private func refuseTooLarge(_ head: ServerRequestHead, limit: Int, context: ChannelHandlerContext) {
        self.refuse(self.handler.bodyTooLarge(head, limit: limit), context: context)
    }

    /// Answers before the body is read, drops what came of it, and closes after.
    private func refuse(_ response: ServerResponse, context: ChannelHandlerContext) {
        self.state = .discarding
        self.releaseHeld()
        self.write(response, context: context, forceClose: true)
    }

    /// Answers 503 at once and reads the rest of the body into nothing.
    private func refuseOverloaded(_ head: ServerRequestHead, keepAlive: Bool, context: ChannelHandlerContext) {
        self.releaseHeld()
        self.state = .draining(keepAlive: keepAlive && !self.quiescing)
        self.write(self.handler.notAdmitted(head), context: context, forceClose: !keepAlive, closeAfter: false)
    }

    private func releaseHeld() {
        if self.held > 0 {
            self.handler.release(self.held)
            self.held = 0
        }
    }

    /// `closeAfter: false` leaves closing to the end of the request (a refusal whose body is still being drained).
    private func write(_ response: ServerResponse, context: ChannelHandlerContext, forceClose: Bool = false, closeAfter: Bool = true) {
        guard context.channel.isActive else { return }
        var keepAlive = !forceClose && !self.quiescing
        if case .waitingForResponse(let clientKeepAlive) = self.state {
            keepAlive = keepAlive && clientKeepAlive
            self.state = .idle
            self.releaseHeld()
        }
        var headers = HTTPHeaders()
        for field in response.headers { headers.add(name: field.name, value: field.value) }
        if let live = response.live {
            self.writeLive(status: response.status, headers: headers, live, context: context)
            return
        }
        headers.replaceOrAdd(name: "content-length", value: String(response.body?.readableBytes ?? 0))
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if let body = response.body, body.readableBytes > 0 {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive || !closeAfter {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            if keepAlive, case .idle = self.state { self.waitForRequest(context: context) }
        } else {
            // Close once the answer is out (and, for a refusal, before reading the rest of the body).
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Sends the head, then each piece as a chunk when it comes; a client
    /// whose socket is full misses pieces rather than growing a backlog.
    private func writeLive(status: Int, headers: HTTPHeaders, _ live: AsyncStream<ByteBuffer>, context: ChannelHandlerContext) {
        var headers = headers
        headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        headers.replaceOrAdd(name: "connection", value: "close")
        context.writeAndFlush(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        self.state = .live(
            Task {
                for await piece in live {
                    eventLoop.execute {
                        let (handler, context) = loopBound.value
                        guard context.channel.isWritable else { return }
                        context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(piece))), promise: nil)
                    }
                }
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    let channel = context.channel
                    context.writeAndFlush(handler.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
                }
            })
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is HTTP1ByteArrival.Event {
            if case .idle = self.state {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                self.headTimer.bytesArrived(on: context.eventLoop) { expiry in
                    let (handler, context) = loopBound.value
                    handler.expired(expiry, context: context)
                }
            }
            return
        }
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.quiescing = true
        // An idle connection closes now, and a live body ends; a busy one closes after its response.
        switch self.state {
        case .idle, .live: context.close(promise: nil)
        default: break
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.headTimer.cancel()
        self.bodyTimer?.cancel()
        if case .live(let task) = self.state { task.cancel() }
        // A connection that goes away mid-request: its body no longer counts.
        self.releaseHeld()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError, !self.cutOff {
            // The end of the stream in the middle of a request is the client leaving, not a malformed request.
            let reason =
                error == .invalidEOFState
                ? "closed the connection before its request was complete" : "not a valid HTTP/1.1 request (\(error))"
            self.handler.connectionFailed(client: self.client, reason: reason)
        }
        context.close(promise: nil)
    }
}
