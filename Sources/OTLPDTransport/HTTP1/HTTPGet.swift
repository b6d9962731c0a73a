import NIOCore
import NIOHTTP1
import NIOPosix

/// A plain HTTP/1.1 GET, for `otlpd status` asking a running daemon.
public enum HTTPGet {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func fetch(host: String, port: Int, path: String, timeout: TimeAmount = .seconds(5)) async throws -> Response {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: Response.self)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
                }
            }
            .connect(host: host, port: port)
            .get()
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "\(host):\(port)")
        headers.add(name: "connection", value: "close")
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        channel.eventLoop.scheduleTask(in: timeout) { promise.fail(Failure(description: "no answer within \(timeout)")) }
        defer { channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        let promise: EventLoopPromise<Response>
        var status = 0
        var body = ByteBuffer()

        init(promise: EventLoopPromise<Response>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head): self.status = Int(head.status.code)
            case .body(var chunk): self.body.writeBuffer(&chunk)
            case .end: self.promise.succeed(Response(status: self.status, body: String(buffer: self.body)))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.promise.fail(Failure(description: "the connection closed before the answer"))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.promise.fail(error)
            context.close(promise: nil)
        }
    }
}
