import NIOCore
import NIOEmbedded
import OTLPDHTTP
import OTLPDHTTP2
import Synchronization
import Testing

/// Counts held body bytes against a limit, as the receivers' memory count does.
final class CountingAccount: HTTP2BodyAccount {
    let held = Mutex(0)
    let limit: Int

    init(limit: Int = .max) {
        self.limit = limit
    }

    func hold(_ bytes: Int) -> Bool {
        self.held.withLock { held in
            guard held + bytes <= self.limit else { return false }
            held += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        self.held.withLock { $0 -= bytes }
    }

    func hasRoom(for bytes: Int) -> Bool {
        self.held.withLock { $0 + bytes <= self.limit }
    }

    var current: Int { self.held.withLock { $0 } }
}

/// A delegate that records what the server hands it and answers as told.
final class RecordingDelegate: HTTP2ServerDelegate {
    var requests: [HTTP2Request] = []
    var responders: [HTTP2Responder] = []
    var failures: [NGHTTP2Error] = []
    var limit = 1 << 20
    var answerAtOnce = true
    var expected: (ByteBuffer) -> ExpectedBodySize = { _ in .unknown }
    var admitting = true
    var account = CountingAccount()

    var bodyAccount: (any HTTP2BodyAccount)? { self.account }

    func admit(_ head: HTTP2RequestHead) -> Bool { self.admitting }

    func bodyLimit(for head: HTTP2RequestHead) -> Int { self.limit }

    func expectedBodySize(for head: HTTP2RequestHead, prefix: ByteBuffer) -> ExpectedBodySize { self.expected(prefix) }

    func handle(_ request: HTTP2Request, responder: HTTP2Responder) {
        self.requests.append(request)
        if self.answerAtOnce {
            responder.respond(Self.ok(request))
        } else {
            self.responders.append(responder)
        }
    }

    static func ok(_ request: HTTP2Request) -> HTTP2Response {
        HTTP2Response(
            status: 200, headers: [HTTPHeaderField("content-type", "application/grpc")],
            body: ByteBuffer(string: "echo:\(request.body.readableBytes)"), trailers: [HTTPHeaderField("grpc-status", "0")])
    }

    func refusalResponse(for head: HTTP2RequestHead, _ refusal: HTTP2Refusal) -> HTTP2Response {
        HTTP2Response(status: refusal == .tooLarge ? 413 : 503, headers: [HTTPHeaderField("content-type", "text/plain")])
    }

    func connectionFailed(_ error: NGHTTP2Error) {
        self.failures.append(error)
    }
}

/// A server handler on an embedded channel, and a real nghttp2 client talking to it.
struct Connection {
    let channel: EmbeddedChannel
    let client: TestHTTP2Client
    let delegate: RecordingDelegate

    init(
        settings: HTTP2ServerSettings = HTTP2ServerSettings(), delegate: RecordingDelegate = RecordingDelegate(), clientWindow: UInt32 = 65_535,
        drainTimeout: TimeAmount = .seconds(60)
    ) throws {
        self.channel = EmbeddedChannel()
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        self.delegate = delegate
        self.client = TestHTTP2Client(windowSize: clientWindow)
        try self.channel.pipeline.syncOperations.addHandler(HTTP2ServerHandler(settings: settings, delegate: delegate, drainTimeout: drainTimeout))
    }

    /// Moves bytes both ways until neither side has anything to say.
    func exchange() throws {
        for _ in 0..<100 {
            let fromClient = self.client.output()
            var moved = false
            if fromClient.readableBytes > 0 {
                try self.channel.writeInbound(fromClient)
                moved = true
            }
            while let fromServer = try self.channel.readOutbound(as: ByteBuffer.self) {
                self.client.receive(fromServer)
                moved = true
            }
            if !moved { return }
        }
    }
}

struct HTTP2ServerHandlerTests {
    @Test func requestAndResponseWithTrailers() throws {
        let connection = try Connection()
        let id = connection.client.request(path: "/svc/Export", headers: [("content-type", "application/grpc"), ("te", "trailers")], body: Array("hello".utf8))
        try connection.exchange()
        let request = try #require(connection.delegate.requests.first)
        #expect(request.head.method == "POST")
        #expect(request.head.path == "/svc/Export")
        #expect(request.head.header("content-type") == "application/grpc")
        #expect(String(buffer: request.body) == "hello")
        let response = try #require(connection.client.responses[id])
        #expect(response.status == "200")
        #expect(String(decoding: response.body, as: UTF8.self) == "echo:5")
        #expect(response.trailer("grpc-status") == "0")
        #expect(response.closedWith == 0)
    }

    @Test func trailersOnlyResponse() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let connection = try Connection(delegate: delegate)
        let id = connection.client.request(path: "/x", body: [1, 2, 3])
        try connection.exchange()
        delegate.responders[0].respond(HTTP2Response(status: 200, headers: [HTTPHeaderField("grpc-status", "3"), HTTPHeaderField("grpc-message", "bad")]))
        try connection.exchange()
        let response = try #require(connection.client.responses[id])
        #expect(response.header("grpc-status") == "3")
        #expect(response.body.isEmpty)
        #expect(response.closedWith == 0)
    }

    @Test func manyStreamsOnOneConnection() throws {
        let connection = try Connection()
        let ids = (0..<20).map { connection.client.request(path: "/p/\($0)", body: Array(repeating: UInt8($0), count: 1000 + $0)) }
        try connection.exchange()
        #expect(connection.delegate.requests.count == 20)
        for (index, id) in ids.enumerated() {
            #expect(String(decoding: connection.client.responses[id]?.body ?? [], as: UTF8.self) == "echo:\(1000 + index)")
        }
    }

    @Test("a body over the limit is refused with the delegate's answer, and the stream stopped")
    func bodyOverLimit() throws {
        let delegate = RecordingDelegate()
        delegate.limit = 10_000
        let connection = try Connection(delegate: delegate, clientWindow: 1 << 20)
        let withLength = connection.client.request(path: "/a", headers: [("content-length", "20000")], body: Array(repeating: 1, count: 20_000))
        let streamed = connection.client.request(path: "/b", body: Array(repeating: 2, count: 20_000))
        let fine = connection.client.request(path: "/c", body: Array(repeating: 3, count: 5000))
        try connection.exchange()
        #expect(connection.client.responses[withLength]?.status == "413")
        #expect(connection.client.responses[streamed]?.status == "413")
        #expect(connection.client.responses[fine]?.status == "200")
        #expect(connection.delegate.requests.map(\.head.path) == ["/c"])
        // The connection is still usable, and its windows were given back.
        for round in 0..<5 {
            let id = connection.client.request(path: "/after/\(round)", body: Array(repeating: 4, count: 9000))
            try connection.exchange()
            #expect(connection.client.responses[id]?.status == "200")
        }
    }

    @Test("a stated size over the limit is refused from the first bytes")
    func expectedSizeOverLimit() throws {
        let delegate = RecordingDelegate()
        delegate.limit = 100
        delegate.expected = { prefix in prefix.readableBytes >= 5 ? .bytes(Int(prefix.getInteger(at: prefix.readerIndex + 1, as: UInt32.self)!) + 5) : .needMoreBytes }
        let connection = try Connection(delegate: delegate)
        var framed: [UInt8] = [0, 0, 0, 1, 0]  // gRPC prefix: 256 bytes follow
        framed += Array(repeating: 7, count: 20)
        let id = connection.client.request(path: "/g", body: framed)
        try connection.exchange()
        #expect(connection.client.responses[id]?.status == "413")
        #expect(delegate.requests.isEmpty)
    }

    @Test("a request is refused as overloaded at its head when the delegate does not admit it")
    func notAdmitted() throws {
        let delegate = RecordingDelegate()
        delegate.admitting = false
        let connection = try Connection(delegate: delegate, clientWindow: 1 << 20)
        let id = connection.client.request(path: "/a", body: Array(repeating: 1, count: 20_000))
        try connection.exchange()
        #expect(connection.client.responses[id]?.status == "503")
        #expect(delegate.requests.isEmpty)
        #expect(delegate.account.current == 0)
        delegate.admitting = true
        let later = connection.client.request(path: "/b", body: Array(repeating: 2, count: 100))
        try connection.exchange()
        #expect(connection.client.responses[later]?.status == "200")
    }

    @Test("body bytes are held from arrival until the stream is done; past the account's limit the body is refused")
    func bodyBytesAreHeldAndBounded() throws {
        let delegate = RecordingDelegate()
        delegate.account = CountingAccount(limit: 1 << 16)
        delegate.answerAtOnce = false
        let connection = try Connection(delegate: delegate, clientWindow: 1 << 20)
        let small = connection.client.request(path: "/small", body: Array(repeating: 1, count: 40_000))
        try connection.exchange()
        // The pipeline holds the request: its bytes still count.
        #expect(delegate.account.current == 40_000)
        // 40 000 + 30 000 passes the 64 KiB account: refused mid-body, its part given back.
        let big = connection.client.request(path: "/big", body: Array(repeating: 2, count: 30_000))
        try connection.exchange()
        #expect(connection.client.responses[big]?.status == "503")
        #expect(delegate.account.current == 40_000)
        delegate.responders[0].respond(RecordingDelegate.ok(delegate.requests[0]))
        try connection.exchange()
        #expect(connection.client.responses[small]?.status == "200")
        #expect(delegate.account.current == 0)
    }

    @Test("a connection that goes away gives back what its streams held")
    func closedConnectionReleasesHeldBytes() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let connection = try Connection(delegate: delegate, clientWindow: 1 << 20)
        _ = connection.client.request(path: "/held", body: Array(repeating: 1, count: 10_000))
        try connection.exchange()
        #expect(delegate.account.current == 10_000)
        _ = try connection.channel.finish()
        #expect(delegate.account.current == 0)
    }

    @Test("unanswered requests per connection are bounded by max concurrent streams")
    func concurrentStreamsBoundUnansweredRequests() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let connection = try Connection(settings: HTTP2ServerSettings(maxConcurrentStreams: 2), delegate: delegate)
        try connection.exchange()  // the client learns the limit from the server's SETTINGS
        let ids = (1...3).map { connection.client.request(path: "/\($0)", body: Array(repeating: UInt8($0), count: 1000)) }
        try connection.exchange()
        #expect(delegate.requests.map(\.head.path) == ["/1", "/2"])
        delegate.responders[0].respond(RecordingDelegate.ok(delegate.requests[0]))
        try connection.exchange()
        #expect(delegate.requests.map(\.head.path) == ["/1", "/2", "/3"])
        for index in 1..<3 { delegate.responders[index].respond(RecordingDelegate.ok(delegate.requests[index])) }
        try connection.exchange()
        #expect(ids.allSatisfy { connection.client.responses[$0]?.status == "200" })
    }

    @Test("interleaved bodies larger than the connection window all arrive (no window deadlock)")
    func interleavedLargeBodies() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let settings = HTTP2ServerSettings(initialStreamWindow: 1 << 20, connectionWindow: 100_000)
        let connection = try Connection(settings: settings, delegate: delegate)
        for index in 1...4 { connection.client.request(path: "/\(index)", body: Array(repeating: UInt8(index), count: 90_000)) }
        try connection.exchange()
        #expect(delegate.requests.count == 4)
        #expect(delegate.requests.allSatisfy { $0.body.readableBytes == 90_000 })
    }

    @Test("graceful close: GOAWAY, streams under way finish, then the connection closes")
    func quiesce() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let connection = try Connection(delegate: delegate)
        let id = connection.client.request(path: "/slow", body: [1])
        try connection.exchange()
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try connection.exchange()
        // The notice first (admits everything), then, after the PING answer, the final GOAWAY.
        #expect(connection.client.goAwayLastStreamIDs == [Int32.max, id])
        #expect(connection.channel.isActive)
        delegate.responders[0].respond(RecordingDelegate.ok(delegate.requests[0]))
        try connection.exchange()
        #expect(connection.client.responses[id]?.status == "200")
        #expect(!connection.channel.isActive)
    }

    @Test("graceful close with a client that never answers the PING: the final GOAWAY comes at the drain timeout")
    func quiesceWithoutPingAnswer() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let connection = try Connection(delegate: delegate, drainTimeout: .seconds(5))
        let id = connection.client.request(path: "/slow", body: [1])
        try connection.exchange()
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        // The server's notice and PING reach the client; the client's answer is never sent back.
        while let fromServer = try connection.channel.readOutbound(as: ByteBuffer.self) { connection.client.receive(fromServer) }
        _ = connection.client.output()
        #expect(connection.client.goAwayLastStreamIDs == [Int32.max])
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(try connection.channel.readOutbound(as: ByteBuffer.self) == nil)
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        while let fromServer = try connection.channel.readOutbound(as: ByteBuffer.self) { connection.client.receive(fromServer) }
        #expect(connection.client.goAwayLastStreamIDs == [Int32.max, id])
        // The stream under way is still answered, then the connection closes.
        delegate.responders[0].respond(RecordingDelegate.ok(delegate.requests[0]))
        try connection.exchange()
        #expect(connection.client.responses[id]?.status == "200")
        #expect(!connection.channel.isActive)
    }

    @Test func notHTTP2IsAConnectionFailure() throws {
        let delegate = RecordingDelegate()
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(HTTP2ServerHandler(settings: HTTP2ServerSettings(), delegate: delegate))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(delegate.failures.count == 1)
        #expect(delegate.failures.first?.isBadClientMagic == true)
        #expect(!channel.isActive)
    }

    @Test("garbage after the preface: GOAWAY with the error, reported once, connection closed")
    func garbageAfterThePreface() throws {
        let delegate = RecordingDelegate()
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(HTTP2ServerHandler(settings: HTTP2ServerSettings(), delegate: delegate))
        var bytes = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        bytes.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  // an empty SETTINGS frame
        bytes.writeBytes([0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01])  // a 16 MiB DATA frame: over the frame size
        _ = try? channel.writeInbound(bytes)
        _ = try? channel.writeInbound(ByteBuffer(repeating: 7, count: 100))
        #expect(delegate.failures.map(\.description) == ["HTTP/2 protocol error FRAME_SIZE_ERROR: too large frame size"])
    }

    @Test func answerAfterTheClientResetIsDropped() throws {
        let delegate = RecordingDelegate()
        delegate.answerAtOnce = false
        let connection = try Connection(delegate: delegate)
        let id = connection.client.request(path: "/x", body: [1, 2])
        try connection.exchange()
        connection.client.resetStream(id)
        try connection.exchange()
        delegate.responders[0].respond(RecordingDelegate.ok(delegate.requests[0]))
        try connection.exchange()
        let next = connection.client.request(path: "/y", body: [3])
        try connection.exchange()
        #expect(delegate.requests.count == 2)
        #expect(connection.channel.isActive)
        _ = next
    }
}

struct HTTP2ServerConnectionStateMachineTests {
    @Test func servingToClosed() {
        var machine = HTTP2ServerConnection.StateMachine()
        #expect(machine.isServing)
        #expect(machine.outputWritten(sessionActive: true) == .none)
        #expect(machine.drainPointReached() == .none)
        #expect(machine.quiesceRequested() == .sendShutdownNotice)
        #expect(!machine.isServing)
        #expect(machine.quiesceRequested() == .none)
        #expect(machine.outputWritten(sessionActive: true) == .none)
        #expect(machine.drainPointReached() == .sendGoAway)
        #expect(machine.drainPointReached() == .none)
        #expect(machine.outputWritten(sessionActive: false) == .close)
        #expect(machine.outputWritten(sessionActive: false) == .none)
    }

    @Test func peerEndsTheSession() {
        var machine = HTTP2ServerConnection.StateMachine()
        #expect(machine.outputWritten(sessionActive: false) == .close)
        #expect(machine.quiesceRequested() == .none)
    }

    @Test func closedChannelNeedsNothing() {
        var machine = HTTP2ServerConnection.StateMachine()
        machine.channelClosed()
        #expect(machine.quiesceRequested() == .none)
        #expect(machine.outputWritten(sessionActive: false) == .none)
    }
}
