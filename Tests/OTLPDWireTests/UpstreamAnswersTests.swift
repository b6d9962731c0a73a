import NIOCore
import OTLPDWire
import Testing

struct UpstreamAnswersTests {
    @Test("a google.rpc.Status with RetryInfo reads back its code, message and delay")
    func status() throws {
        let bytes = ResponseMessages.status(code: 14, message: "busy", retryDelay: .milliseconds(2500))
        let status = try #require(UpstreamAnswers.status(bytes))
        #expect(status.code == 14 && status.message == "busy" && status.retryDelay == .milliseconds(2500))
        #expect(UpstreamAnswers.status(ResponseMessages.status(code: 3, message: "bad"))?.retryDelay == nil)
    }

    @Test("partial_success: rejected count and message; nothing for a full success")
    func partialSuccess() {
        // ExportTraceServiceResponse { partial_success { rejected_spans: 2, error_message: "old" } }
        let response = ByteBuffer(bytes: [0x0A, 0x07, 0x08, 0x02, 0x12, 0x03] + Array("old".utf8))
        #expect(UpstreamAnswers.partialSuccess(response) == UpstreamAnswers.PartialSuccess(rejected: 2, message: "old"))
        #expect(UpstreamAnswers.partialSuccess(ByteBuffer()) == nil)
        #expect(UpstreamAnswers.partialSuccess(ByteBuffer(bytes: [0x0A, 0x00])) == nil)
    }

    @Test("grpc-status-details-bin's base64, with or without padding")
    func base64() {
        #expect(UpstreamAnswers.base64Decode("aGk") == ByteBuffer(string: "hi"))
        #expect(UpstreamAnswers.base64Decode("aGk=") == ByteBuffer(string: "hi"))
    }
}
