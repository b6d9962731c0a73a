import OTLPDCore
import OTLPDTestSupport
import Testing

/// A pipeline's last stage: a batch counts as kept only when every exporter kept it.
struct FanOutConsumerTests {
    @Test("every exporter gets the same bytes")
    func everyExporterGetsTheBatch() async throws {
        let first = RecordingConsumer()
        let second = RecordingConsumer()
        let batch = TestRequests.batch(spans: 3)
        try await FanOutConsumer([first, second]).consume(batch)
        #expect(first.batches.map(\.payload) == [batch.payload])
        #expect(second.batches.map(\.payload) == [batch.payload])
    }

    @Test("one exporter failing fails the batch, and its kind (retryable or not) reaches the client")
    func oneFailureFailsTheBatch() async {
        for failure in [ConsumeError.retryable("disk full", after: .seconds(1)), .permanent("bad data")] {
            let first = RecordingConsumer()
            let second = RecordingConsumer()
            second.fail(with: failure)
            do {
                try await FanOutConsumer([first, second]).consume(TestRequests.batch(spans: 2))
                Issue.record("a batch that one exporter did not keep was reported as kept")
            } catch {
                #expect(error.kind == failure.kind)
                #expect(error.message == failure.message)
            }
            #expect(first.itemCounts == [2])
        }
    }

    @Test("the answer waits for the slowest exporter")
    func waitsForEveryExporter() async throws {
        let fast = RecordingConsumer()
        let slow = RecordingConsumer()
        slow.hold()
        let fanOut = FanOutConsumer([fast, slow])
        let done = Task { try await fanOut.consume(TestRequests.batch(spans: 1)) }
        #expect(await eventually { fast.itemCounts == [1] })
        try await Task.sleep(for: .milliseconds(50))
        #expect(slow.itemCounts.isEmpty)
        slow.release()
        try await done.value
        #expect(slow.itemCounts == [1])
    }
}
