import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDWire

/// Gathers requests into larger batches, and sends each as soon as waiting
/// longer cannot make it bigger (see `BatchStateMachine`), at
/// `send_batch_size`, or after `timeout`.
///
/// Acknowledged means kept: a request's caller waits until the batch that
/// holds its data has been handed on (and the next stage kept it), and gets
/// that stage's error if it failed. Nothing is answered early and dropped
/// later. Shutdown and reload send whatever is held.
public final class BatchProcessor: Processor, RequestGatherer {
    let configuration: BatchProcessorConfiguration
    let signal: Signal
    let next: any Consumer
    let eventLoop: any EventLoop
    let metrics: BatchMetrics?
    let memory: MemoryGuard?
    private let state: NIOLockedValueBox<Machine>

    typealias Waiter = CheckedContinuation<Turn, Never>
    typealias Machine = BatchStateMachine<TelemetryBatch, Waiter>

    /// What a waiting request is told when it is woken.
    enum Turn {
        /// Its batch was handed on, with this outcome.
        case done(Result<Kept, ConsumeError>)
        /// Its batch goes now, and this request's task sends it and answers the others.
        case send(Machine.Dispatch)
    }

    public init(
        configuration: BatchProcessorConfiguration, signal: Signal, next: any Consumer, eventLoop: any EventLoop, metrics: BatchMetrics? = nil,
        memory: MemoryGuard? = nil
    ) {
        self.configuration = configuration
        self.signal = signal
        self.next = next
        self.eventLoop = eventLoop
        self.metrics = metrics
        self.memory = memory
        let policy = Machine.Policy(
            sendBatchSize: configuration.sendBatchSize, timeout: configuration.timeout,
            concurrentSends: configuration.earlySend ? configuration.numConsumers : 0)
        self.state = NIOLockedValueBox(Machine(policy: policy))
    }

    public func start() async throws {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        if self.configuration.timeout == .zero && self.configuration.sendBatchMaxSize == 0 {
            // Nothing to wait for: hand it on in this task.
            return try await self.next.consume(batch)
        }
        let items = batch.itemCount
        let memoryTight = self.memory?.isRefusing ?? false
        // The usual case under light load: nothing held, nothing on its way, so
        // the request goes alone, from its own task, with no waiter made.
        if let trigger = self.state.withLockedValue({ $0.requestGoesAlone(items: items, memoryTight: memoryTight) }) {
            self.count(trigger)
            let outcome = await self.send(batch)
            self.wake(self.state.withLockedValue { $0.sendFinished(answered: 1) })
            return try outcome.get()
        }
        let batch = batch
        let turn = await withCheckedContinuation { (waiter: Waiter) in
            let (dispatch, armTimer) = self.state.withLockedValue {
                $0.requestArrived(batch, items: items, waiter: waiter, now: ContinuousClock.now, memoryTight: memoryTight)
            }
            if let armTimer { self.armTimer(at: armTimer) }
            // A batch that goes now is sent by this request's own task (it is
            // the dispatch's sender): no new task and no thread hop.
            if let dispatch { dispatch.sender.resume(returning: .send(dispatch)) }
        }
        // Of a merged batch's rejection, each request is told at most its own items.
        switch turn {
        case .done(let outcome):
            return try outcome.get().share(of: items)
        case .send(let dispatch):
            return try await self.run(dispatch).get().share(of: items)
        }
    }

    // MARK: RequestGatherer

    public func requestEntered() {
        self.state.withLockedValue { $0.requestEntered() }
    }

    public func requestLeft() {
        self.wake(self.state.withLockedValue { $0.requestLeft() })
    }

    // MARK: Sending

    /// Sends a batch from its sender's task and answers its other requests;
    /// then, if the next batch is due, wakes one of its requests to send it.
    private func run(_ dispatch: Machine.Dispatch) async -> Result<Kept, ConsumeError> {
        self.count(dispatch.trigger)
        let requests = dispatch.requests
        // Requests one after another are one valid request: merging lists their buffers and copies nothing.
        let outcome = await self.send(requests.count == 1 ? requests[0] : TelemetryBatch(signal: self.signal, merging: requests))
        for waiter in dispatch.waiters { waiter.resume(returning: .done(outcome)) }
        self.wake(self.state.withLockedValue { $0.sendFinished(answered: dispatch.count) })
        return outcome
    }

    private func count(_ trigger: Machine.Trigger) {
        switch trigger {
        case .size: self.metrics?.sizeTriggered.add()
        case .timeout: self.metrics?.timeoutTriggered.add()
        case .idle, .stopping, .memory: break
        }
    }

    private func wake(_ dispatch: Machine.Dispatch?) {
        if let dispatch { dispatch.sender.resume(returning: .send(dispatch)) }
    }

    private func armTimer(at deadline: ContinuousClock.Instant) {
        let delay = max(.zero, deadline - ContinuousClock.now)
        self.eventLoop.scheduleTask(in: .nanoseconds(delay.nanosecondsValue)) {
            let (dispatch, again) = self.state.withLockedValue { $0.tick(now: ContinuousClock.now) }
            if let again { self.armTimer(at: again) }
            self.wake(dispatch)
        }
    }

    /// Hands a batch on (in copies of at most `send_batch_max_size` items,
    /// cut inside resources where needed) and returns the outcome.
    private func send(_ batch: consuming TelemetryBatch) async -> Result<Kept, ConsumeError> {
        let maxItems = self.configuration.sendBatchMaxSize
        guard maxItems > 0, batch.itemCount > maxItems else {
            self.metrics?.sendSize.record(batch.itemCount)
            do throws(ConsumeError) {
                return .success(try await self.next.consume(batch))
            } catch {
                return .failure(error)
            }
        }
        let parts = ItemSplitter.split(batch.payload, signal: self.signal, maxItems: maxItems)
        for part in parts { self.metrics?.sendSize.record(part.itemCount) }
        // A split batch is a copy beside its callers' requests: it counts until handed on.
        let copied = parts.count > 1 ? parts.reduce(0) { $0 + $1.byteCount } : 0
        self.memory?.charge(copied)
        defer { self.memory?.release(copied) }
        var kept = Kept.all
        var failure: ConsumeError?
        for var part in parts {
            part.deadline = batch.deadline
            do throws(ConsumeError) {
                kept = kept.plus(try await self.next.consume(part))
            } catch {
                failure = error
            }
        }
        return failure.map { .failure($0) } ?? .success(kept)
    }

    public func beginShutdown() async {
        self.wake(self.state.withLockedValue { $0.stopHolding() })
    }

    public func shutdown() async {
        await self.beginShutdown()
        // Wait for every send under way, so the exporters see it all before they stop.
        while self.state.withLockedValue({ $0.sending > 0 }) {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// otelcol's batch metrics: the size of each batch sent, and what made it go.
public struct BatchMetrics: Sendable {
    let sendSize: TelemetryHistogram
    let sizeTriggered: TelemetryCounter
    let timeoutTriggered: TelemetryCounter

    /// otelcol's buckets for batch sizes.
    static let buckets: [Double] = [10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 20000, 30000, 50000, 100000]

    public init(telemetry: SelfTelemetry, id: ComponentID) {
        let labels = [("processor", id.description)]
        self.sendSize = telemetry.histogram("otelcol_processor_batch_batch_send_size", labels: labels, buckets: Self.buckets)
        self.sizeTriggered = telemetry.counter("otelcol_processor_batch_batch_size_trigger_send_total", labels: labels)
        self.timeoutTriggered = telemetry.counter("otelcol_processor_batch_timeout_trigger_send_total", labels: labels)
    }
}

/// Builds `batch` processors.
public struct BatchProcessorFactory: ProcessorFactory {
    public let type = "batch"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        BatchProcessorConfiguration.decode(reader)
    }

    public func gathersRequests(_ configuration: ComponentConfiguration) -> Bool {
        let configuration = configuration as! BatchProcessorConfiguration
        return configuration.timeout != .zero || configuration.sendBatchMaxSize != 0
    }

    public func makeProcessor(
        _ configuration: ComponentConfiguration,
        signal: Signal,
        next: any Consumer,
        settings: ComponentSettings
    ) throws -> any Processor {
        BatchProcessor(
            configuration: configuration as! BatchProcessorConfiguration, signal: signal, next: next,
            eventLoop: settings.eventLoopGroup.next(), metrics: BatchMetrics(telemetry: settings.telemetry, id: settings.id),
            memory: settings.memoryGuard)
    }
}
