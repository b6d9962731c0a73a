import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import OTLPDHTTP
import OTLPDHTTP2

/// The nghttp2 client handler (what the `otlp` exporter forwards with) on an
/// embedded channel: a gRPC Export is submitted, then the input arrives as
/// the server's bytes, in pieces; a second request is submitted after the
/// first piece (to a connection that may have seen SETTINGS, a GOAWAY, or
/// nothing yet), then the clock jumps and the connection closes.
///
/// Input: one byte picking the pieces (`Chunking`), then the server's bytes.
///
/// Invariants: every submitted request's promise is completed by the time
/// the connection is gone (a response, or an error), and the owner is told
/// at most once that the connection takes no new requests.
enum H2ClientHarness {
    static let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    /// What became of the requests and the connection; counted from callbacks.
    final class Outcomes: Sendable {
        let completed = NIOLockedValueBox(0)
        let unusable = NIOLockedValueBox(0)
    }

    static func run(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let outcomes = Outcomes()
        let handler = HTTP2ClientHandler(settings: HTTP2ClientSettings(initialStreamWindow: 65_535, connectionWindow: 1 << 20)) {
            outcomes.unusable.withLockedValue { $0 += 1 }
        }
        let channel = EmbeddedChannel()
        do {
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4317)).wait()
        } catch {
            fatalError("cannot set up the embedded connection: \(error)")
        }
        var submitted = 0
        func submit(_ message: String) {
            let promise = channel.eventLoop.makePromise(of: HTTPClientResponse.self)
            promise.futureResult.whenComplete { _ in outcomes.completed.withLockedValue { $0 += 1 } }
            submitted += 1
            let request = HTTPClientRequest(
                scheme: "http", authority: "upstream:4317", path: Self.path,
                headers: [HTTPHeaderField("content-type", "application/grpc"), HTTPHeaderField("te", "trailers")],
                body: [GRPCFraming.frame(ByteBuffer(string: message))])
            handler.submit(request, promise: promise)
        }
        submit("first")
        SnifferHarness.drain(channel)
        for (index, piece) in Chunking.pieces(of: input.dropFirst(), pattern: control).enumerated() {
            guard channel.isActive else { break }
            _ = try? channel.writeInbound(piece)
            SnifferHarness.drain(channel)
            if index == 0 {
                submit("second")
                SnifferHarness.drain(channel)
            }
        }
        if submitted == 1 { submit("second") }
        channel.embeddedEventLoop.advanceTime(by: .seconds(3600))
        SnifferHarness.drain(channel)
        handler.close()
        SnifferHarness.drain(channel)
        _ = try? channel.finish(acceptAlreadyClosed: true)
        try? channel.embeddedEventLoop.syncShutdownGracefully()
        let completed = outcomes.completed.withLockedValue { $0 }
        let unusable = outcomes.unusable.withLockedValue { $0 }
        invariant(completed == submitted, "\(submitted) requests submitted, \(completed) completed after the connection closed")
        invariant(unusable <= 1, "told \(unusable) times that the connection takes no new requests")
    }
}
