import NIOCore
import OTLPDHTTP
import OTLPDHTTP2

/// Connects one nghttp2 server connection to the request handler: turns
/// HTTP/2 requests into `ServerRequest`s and runs the handler for each.
final class HTTP2RequestBridge: HTTP2ServerDelegate {
    let handler: any RequestHandler
    let client: ClientInfo
    let executor: EventLoopTaskExecutor

    let account: BodyAccount

    init(handler: any RequestHandler, client: ClientInfo, executor: EventLoopTaskExecutor) {
        self.handler = handler
        self.client = client
        self.executor = executor
        self.account = BodyAccount(handler: handler)
    }

    /// The request handler's memory count, as the HTTP/2 layer sees it.
    final class BodyAccount: HTTP2BodyAccount {
        let handler: any RequestHandler

        init(handler: any RequestHandler) {
            self.handler = handler
        }

        func hold(_ bytes: Int) -> Bool { self.handler.hold(bytes) }
        func release(_ bytes: Int) { self.handler.release(bytes) }
        func hasRoom(for bytes: Int) -> Bool { self.handler.hasRoom(for: bytes) }
    }

    private func serverHead(_ head: HTTP2RequestHead) -> ServerRequestHead {
        ServerRequestHead(method: head.method, path: head.path, headers: head.headers, version: .http2, client: self.client)
    }

    var bodyAccount: (any HTTP2BodyAccount)? { self.account }

    func admit(_ head: HTTP2RequestHead) -> Bool {
        self.handler.admit(self.serverHead(head))
    }

    func bodyLimit(for head: HTTP2RequestHead) -> Int {
        self.handler.bodyLimit(for: self.serverHead(head))
    }

    func expectedBodySize(for head: HTTP2RequestHead, prefix: ByteBuffer) -> ExpectedBodySize {
        guard self.serverHead(head).isGRPC else { return .unknown }
        return GRPCFraming.expectedBodySize(prefix: prefix)
    }

    func handle(_ request: HTTP2Request, responder: HTTP2Responder) {
        var serverRequest: ServerRequest? = ServerRequest(framed: self.serverHead(request.head), body: request.body)
        let handler = self.handler
        // Runs on this event loop until the pipeline first waits, so a request
        // that no stage holds is answered without a thread hop; after a wait it
        // resumes on the same loop. The request is handed over, not kept by
        // the task, so its body goes when the pipeline lets go of it.
        Task.immediate(executorPreference: self.executor) {
            let response = await handler.handle(serverRequest.take()!)
            responder.respond(
                HTTP2Response(status: response.status, headers: response.headers, body: response.body, trailers: response.trailers, live: response.live))
        }
    }

    func refusalResponse(for head: HTTP2RequestHead, _ refusal: HTTP2Refusal) -> HTTP2Response {
        let head = self.serverHead(head)
        let response =
            switch refusal {
            case .tooLarge: self.handler.bodyTooLarge(head, limit: self.handler.bodyLimit(for: head))
            case .overloaded: self.handler.notAdmitted(head)
            }
        return HTTP2Response(status: response.status, headers: response.headers, body: response.body, trailers: response.trailers)
    }

    func connectionFailed(_ error: NGHTTP2Error) {
        let reason = error.isBadClientMagic ? "did not start with the HTTP/2 connection preface" : "\(error)"
        self.handler.connectionFailed(client: self.client, reason: reason)
    }
}
