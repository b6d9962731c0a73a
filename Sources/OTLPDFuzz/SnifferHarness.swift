import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import OTLPDHTTP
import OTLPDHTTP2
import OTLPDTransport

/// A server connection as a listener sets it up (`ConnectionSetup.install`:
/// the sniffer, then HTTP/1.1 or the nghttp2 server session), on an
/// embedded channel, with a request handler that answers 200.
///
/// Input: one byte, then what the client sends. The byte's lowest bit picks
/// the listener's role (gRPC or HTTP port), the other seven the pieces the
/// bytes arrive in (`Chunking`). After the last piece the clock jumps past
/// every deadline (head, idle, silence) and the connection is closed.
///
/// Invariant: every body byte the connection counted as held (`hold`) is
/// given back (`release`) once it is closed, never more.
enum SnifferHarness {
    static func run(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let handler = FuzzRequestHandler()
        let channel = EmbeddedChannel()
        do {
            try channel.connect(to: SocketAddress(ipAddress: "10.1.2.3", port: 5555)).wait()
            channel.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 4317)
            try ConnectionSetup.install(
                on: channel, handler: handler, role: control & 1 == 0 ? .grpc : .http,
                http2: HTTP2ServerSettings.forBodies(upTo: FuzzRequestHandler.bodyLimit), tls: nil)
        } catch {
            fatalError("cannot set up the embedded connection: \(error)")
        }
        for piece in Chunking.pieces(of: input.dropFirst(), pattern: control >> 1) {
            guard channel.isActive else { break }
            // Errors that reach the end of the pipeline are the connection's answer to bad bytes: fine.
            _ = try? channel.writeInbound(piece)
            Self.drain(channel)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(3600))
        Self.drain(channel)
        _ = try? channel.finish(acceptAlreadyClosed: true)
        Self.drain(channel)
        try? channel.embeddedEventLoop.syncShutdownGracefully()
        let held = handler.held.withLockedValue { $0 }
        invariant(held == 0, "\(held) body bytes still held after the connection closed")
    }

    /// Reads what the server wrote (and drops it), so that nothing accumulates.
    static func drain(_ channel: EmbeddedChannel) {
        while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
        while (try? channel.readInbound(as: ByteBuffer.self)) != nil {}
    }
}

/// Answers every request 200 (gRPC calls with an empty message and
/// `grpc-status: 0`), with small limits so that refusals happen: a body
/// limit of 64 KiB and 128 KiB of bodies held at once.
final class FuzzRequestHandler: RequestHandler {
    static let bodyLimit = 64 << 10
    static let memoryLimit = 128 << 10
    let held = NIOLockedValueBox(0)

    func bodyLimit(for head: ServerRequestHead) -> Int { Self.bodyLimit }

    func bodyTooLarge(_ head: ServerRequestHead, limit: Int) -> ServerResponse {
        ServerResponse(status: 413, body: ByteBuffer(string: "too large"))
    }

    func hold(_ bytes: Int) -> Bool {
        invariant(bytes >= 0, "hold(\(bytes))")
        return self.held.withLockedValue { held in
            guard held + bytes <= Self.memoryLimit else { return false }
            held += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        self.held.withLockedValue { held in
            invariant(bytes >= 0 && bytes <= held, "release(\(bytes)) with \(held) held")
            held -= bytes
        }
    }

    func handle(_ request: consuming ServerRequest) async -> ServerResponse {
        let request = request
        if request.head.isGRPC {
            return ServerResponse(
                status: 200, headers: [HTTPHeaderField("content-type", "application/grpc")], body: GRPCFraming.frame(ByteBuffer()),
                trailers: [HTTPHeaderField("grpc-status", "0")])
        }
        return ServerResponse(
            status: 200, headers: [HTTPHeaderField("content-type", "text/plain")], body: ByteBuffer(string: "ok:\(request.body.readableBytes)"))
    }

    func connectionFailed(client: ClientInfo, reason: String) {}
}
