import NIOCore

/// How long an HTTP/1.1 connection may take: to send a request's head once
/// it started one (or, new, its first bytes) — `read_header_timeout`, the
/// defence against slow-header (slowloris) clients — and to start the next
/// request on a keep-alive connection — `idle_timeout`.
public struct HTTP1Timeouts: Sendable, Equatable {
    public var readHeader: Duration
    public var idle: Duration

    public init(readHeader: Duration = .seconds(10), idle: Duration = .seconds(60)) {
        self.readHeader = readHeader
        self.idle = idle
    }
}

/// Sits before NIO's HTTP/1 decoder and tells the server handler when
/// bytes arrive (the decoder says nothing until a head is whole), so a
/// waiting connection knows whether it is idle or in the middle of a head.
final class HTTP1ByteArrival: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The user event the server handler receives.
    struct Event {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireUserInboundEventTriggered(Event())
        context.fireChannelRead(data)
    }
}

/// The one timer of a connection waiting for a request head: idle until
/// bytes come, then the header deadline.
struct HTTP1HeadTimer {
    enum Expiry {
        /// A keep-alive connection that sent nothing for `idle_timeout`: closed quietly, as servers do.
        case idle
        /// Bytes came but no whole head within `read_header_timeout`.
        case slowHead
    }

    let timeouts: HTTP1Timeouts
    private var task: Scheduled<Void>?
    private(set) var readingHead = false

    init(timeouts: HTTP1Timeouts) {
        self.timeouts = timeouts
    }

    /// Waiting for a request: idle until bytes arrive.
    mutating func waitForRequest(on loop: any EventLoop, expire: @escaping (Expiry) -> Void) {
        self.cancel()
        self.readingHead = false
        self.task = loop.scheduleTask(in: Self.amount(self.timeouts.idle)) { expire(.idle) }
    }

    /// Bytes arrived while waiting: the head must be whole within `read_header_timeout`.
    mutating func bytesArrived(on loop: any EventLoop, expire: @escaping (Expiry) -> Void) {
        guard !self.readingHead, self.task != nil else { return }
        self.task?.cancel()
        self.readingHead = true
        self.task = loop.scheduleTask(in: Self.amount(self.timeouts.readHeader)) { expire(.slowHead) }
    }

    static func amount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    mutating func cancel() {
        self.task?.cancel()
        self.task = nil
        self.readingHead = false
    }
}
