import NIOCore
import NIOHTTP1
import OTLPDHTTP2

/// Tells HTTP/2 (prior knowledge, or after TLS) from HTTP/1.1 by a
/// connection's first bytes, installs the right handlers, and steps aside.
/// This is what lets either port serve either protocol.
package final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    package enum Verdict: Equatable {
        case needMoreBytes
        case http2
        case http1
        /// A TLS handshake on a plaintext listener.
        case tls
    }

    /// The decision from the bytes seen so far.
    package static func classify(_ bytes: ByteBuffer) -> Verdict {
        let count = min(bytes.readableBytes, Self.http2Preface.count)
        guard count > 0 else { return .needMoreBytes }
        let view = bytes.readableBytesView
        if count >= 2, view[view.startIndex] == 0x16, view[view.startIndex + 1] == 0x03 { return .tls }
        if view.prefix(count).elementsEqual(Self.http2Preface.prefix(count)) {
            return count == Self.http2Preface.count ? .http2 : .needMoreBytes
        }
        return .http1
    }

    private let makeHTTP2Handler: () -> HTTP2ServerHandler
    private let makeHTTP1Handler: () -> HTTP1ServerHandler
    private let onPlaintextTLS: () -> Void
    private var buffered: ByteBuffer?
    /// A connection that says too little for too long (nothing, or part of a preface) is closed.
    private let silence: Duration
    private let onSilent: () -> Void
    private var silenceTimer: Scheduled<Void>?

    init(
        makeHTTP2Handler: @escaping () -> HTTP2ServerHandler,
        makeHTTP1Handler: @escaping () -> HTTP1ServerHandler,
        onPlaintextTLS: @escaping () -> Void,
        silence: Duration = .seconds(10),
        onSilent: @escaping () -> Void = {}
    ) {
        self.makeHTTP2Handler = makeHTTP2Handler
        self.makeHTTP1Handler = makeHTTP1Handler
        self.onPlaintextTLS = onPlaintextTLS
        self.silence = silence
        self.onSilent = onSilent
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.silenceTimer = context.eventLoop.scheduleTask(in: HTTP1HeadTimer.amount(self.silence)) {
            let (sniffer, context) = loopBound.value
            sniffer.onSilent()
            context.close(promise: nil)
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.silenceTimer?.cancel()
        self.silenceTimer = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        if var buffered = self.buffered {
            buffered.writeBuffer(&incoming)
            incoming = buffered
        }
        switch Self.classify(incoming) {
        case .needMoreBytes:
            self.buffered = incoming
        case .tls:
            self.onPlaintextTLS()
            context.close(promise: nil)
        case .http2:
            self.install(http2: true, replaying: incoming, context: context)
        case .http1:
            self.install(http2: false, replaying: incoming, context: context)
        }
    }

    private func install(http2: Bool, replaying bytes: ByteBuffer, context: ChannelHandlerContext) {
        self.buffered = nil
        do {
            let pipeline = context.pipeline.syncOperations
            if http2 {
                try pipeline.addHandler(self.makeHTTP2Handler(), position: .after(self))
            } else {
                let handler = self.makeHTTP1Handler()
                try pipeline.addHandler(handler, position: .after(self))
                try pipeline.configureHTTPServerPipeline(position: .after(self), withPipeliningAssistance: true, withErrorHandling: true)
                try pipeline.addHandler(HTTP1ByteArrival(), position: .after(self))
            }
        } catch {
            context.close(promise: nil)
            return
        }
        // The bytes read so far go to the new handlers, then this one leaves.
        context.fireChannelRead(self.wrapInboundOut(bytes))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        self.buffered = nil
        context.fireChannelInactive()
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A connection that has not said a word yet when shutdown starts is simply closed.
        if event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
