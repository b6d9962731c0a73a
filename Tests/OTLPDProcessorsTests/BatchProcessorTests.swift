import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCore
import OTLPDProcessors
import OTLPDTestSupport
import OTLPDWire
import Testing

struct BatchProcessorTests {
    /// `earlySend: false` holds partial batches for their size or timeout, as the tests of those triggers need.
    func make(timeout: Duration = .seconds(60), size: Int = 10, max: Int = 0, earlySend: Bool = false) -> (BatchProcessor, RecordingConsumer) {
        var configuration = BatchProcessorConfiguration()
        configuration.timeout = timeout
        configuration.sendBatchSize = size
        configuration.sendBatchMaxSize = max
        configuration.earlySend = earlySend
        let next = RecordingConsumer()
        let processor = BatchProcessor(configuration: configuration, signal: .traces, next: next, eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        return (processor, next)
    }

    @Test("sends when the size is reached, one merged valid request")
    func sizeTrigger() async throws {
        let (processor, next) = self.make(size: 10)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { try await processor.consume(TestRequests.batch(spans: 4)) } }
            try await group.waitForAll()
        }
        #expect(next.itemCounts == [12])
        let merged = try #require(next.batches.first)
        #expect(try WireValidator.validate(merged.payload, signal: .traces) == RequestSummary(itemCount: 12, resourceCount: 3))
    }

    @Test func timeoutTrigger() async throws {
        let (processor, next) = self.make(timeout: .milliseconds(30), size: 1000)
        let start = ContinuousClock.now
        try await processor.consume(TestRequests.batch(spans: 3))
        #expect(ContinuousClock.now - start >= .milliseconds(25))
        #expect(next.itemCounts == [3])
    }

    @Test("a caller is answered only once the next stage kept its batch")
    func callersWaitForTheNextStage() async throws {
        let (processor, next) = self.make(size: 1)
        next.hold()
        let done = NIOLockedValueBox(false)
        let task = Task {
            try await processor.consume(TestRequests.batch(spans: 2))
            done.withLockedValue { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!done.withLockedValue { $0 })
        next.release()
        try await task.value
        #expect(done.withLockedValue { $0 })
        #expect(next.itemCounts == [2])
    }

    @Test("the next stage's error reaches every caller of the batch")
    func errorsPropagate() async {
        let (processor, next) = self.make(size: 4)
        next.fail(with: .retryable("disk full"))
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    do throws(ConsumeError) {
                        try await processor.consume(TestRequests.batch(spans: 2))
                        return true
                    } catch {
                        // Failed, and as retryable as the next stage said.
                        return !error.isRetryable
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == [false, false])
    }

    @Test("send_batch_max_size splits at resource boundaries")
    func maxSizeSplits() async throws {
        let (processor, next) = self.make(size: 10, max: 10)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await processor.consume(TestRequests.batch(spans: 3)) } }
            try await group.waitForAll()
        }
        #expect(next.itemCounts.reduce(0, +) == 12)
        #expect(next.itemCounts.allSatisfy { $0 <= 10 })
        for batch in next.batches {
            #expect(try WireValidator.validate(batch.payload, signal: .traces).itemCount == batch.itemCount)
        }
    }

    @Test("shutdown sends what is held, and its callers are answered")
    func shutdownFlushes() async throws {
        let (processor, next) = self.make(timeout: .seconds(60), size: 1000)
        let pending = Task { try await processor.consume(TestRequests.batch(spans: 5)) }
        try await Task.sleep(for: .milliseconds(20))
        #expect(next.batches.isEmpty)
        await processor.shutdown()
        try await pending.value
        #expect(next.itemCounts == [5])
    }

    @Test("once shutdown begins, held data goes on at once and later requests pass straight through")
    func beginShutdownStopsHolding() async throws {
        let (processor, next) = self.make(timeout: .seconds(60), size: 1000)
        let pending = Task { try await processor.consume(TestRequests.batch(spans: 2)) }
        try await Task.sleep(for: .milliseconds(20))
        await processor.beginShutdown()
        try await pending.value
        try await processor.consume(TestRequests.batch(spans: 3))
        #expect(next.itemCounts == [2, 3])
    }

    @Test("timeout 0 sends each request at once")
    func zeroTimeout() async throws {
        let (processor, next) = self.make(timeout: .zero, size: 1000)
        try await processor.consume(TestRequests.batch(spans: 1))
        try await processor.consume(TestRequests.batch(spans: 2))
        #expect(next.itemCounts == [1, 2])
    }

    // MARK: Group commit

    @Test("a lone request is answered once written, not after the timeout")
    func loneRequestGoesAtOnce() async throws {
        let (processor, next) = self.make(timeout: .seconds(60), size: 1000, earlySend: true)
        let start = ContinuousClock.now
        try await processor.consume(TestRequests.batch(spans: 3))
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(next.itemCounts == [3])
    }

    @Test("requests that arrive while a send is under way go together when it returns")
    func requestsDuringASendMerge() async throws {
        let (processor, next) = self.make(timeout: .seconds(60), size: 1000, earlySend: true)
        next.hold()
        let first = Task { try await processor.consume(TestRequests.batch(spans: 1)) }
        #expect(await eventually { next.waitingCount == 1 })
        let later = (0..<3).map { _ in Task { try await processor.consume(TestRequests.batch(spans: 2)) } }
        try await Task.sleep(for: .milliseconds(20))
        #expect(next.waitingCount == 1, "one send under way at a time")
        next.release()
        try await first.value
        for task in later { try await task.value }
        #expect(next.itemCounts == [1, 6])
    }

    @Test("with a feed counting requests on their way, a batch waits for them and goes when the last arrives")
    func waitsForRequestsOnTheirWay() async throws {
        let (processor, next) = self.make(timeout: .seconds(60), size: 1000, earlySend: true)
        processor.requestEntered()
        processor.requestEntered()
        let first = Task {
            defer { processor.requestLeft() }
            try await processor.consume(TestRequests.batch(spans: 1))
        }
        try await Task.sleep(for: .milliseconds(20))
        #expect(next.batches.isEmpty, "one more request is on its way")
        try await processor.consume(TestRequests.batch(spans: 2))
        processor.requestLeft()
        try await first.value
        #expect(next.itemCounts == [3])
    }
}
