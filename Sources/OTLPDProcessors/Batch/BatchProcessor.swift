import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDWire

/// Gathers requests into larger batches, by count or after `timeout`.
///
/// Acknowledged means kept: a request's caller waits until the batch that
/// holds its data has been handed on (and the next stage kept it), and gets
/// that stage's error if it failed. Nothing is answered early and dropped
/// later. Shutdown sends whatever is held.
public final class BatchProcessor: Processor {
    let configuration: BatchProcessorConfiguration
    let signal: Signal
    let next: any Consumer
    let eventLoop: any EventLoop
    let metrics: BatchMetrics?
    let memory: MemoryGuard?
    private let state = NIOLockedValueBox(State())

    typealias Waiter = CheckedContinuation<Turn, Never>

    /// What a waiting request is told when it is woken.
    enum Turn {
        /// Its batch was handed on, with this outcome.
        case done(Result<Void, ConsumeError>)
        /// Its request filled the batch: it sends these itself and answers the others.
        case send([TelemetryBatch], [Waiter])
    }

    struct State {
        var batches: [TelemetryBatch] = []
        var items = 0
        var waiters: [Waiter] = []
        var timer: Scheduled<Void>?
        /// Bumped on each send, so that a timer armed for an earlier batch does nothing.
        var generation = 0
        var inFlight = 0
        /// Shutting down: every request is sent on at once.
        var passThrough = false
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
    }

    public func start() async throws {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) {
        if self.configuration.timeout == .zero && self.configuration.sendBatchMaxSize == 0 {
            // Nothing to wait for: hand it on in this task.
            try await self.next.consume(batch)
            return
        }
        let batch = batch
        let turn = await withCheckedContinuation { (waiter: Waiter) in
            let full = self.state.withLockedValue { state -> ([TelemetryBatch], [Waiter])? in
                state.batches.append(batch)
                state.items += batch.itemCount
                if state.items >= self.configuration.sendBatchSize || self.configuration.timeout == .zero || state.passThrough {
                    self.metrics?.sizeTriggered.add()
                    return Self.takeAll(&state)
                }
                state.waiters.append(waiter)
                if state.timer == nil {
                    let generation = state.generation
                    let delay = TimeAmount.nanoseconds(self.configuration.timeout.nanosecondsValue)
                    state.timer = self.eventLoop.scheduleTask(in: delay) { self.timerFired(generation) }
                }
                return nil
            }
            // The request that fills the batch sends it from its own task: no
            // new task, and no hop to another thread, for each batch.
            if let (batches, waiters) = full { waiter.resume(returning: .send(batches, waiters)) }
        }
        switch turn {
        case .done(let outcome):
            try outcome.get()
        case .send(let batches, let waiters):
            let outcome = await self.send(batches)
            for waiter in waiters { waiter.resume(returning: .done(outcome)) }
            try outcome.get()
        }
    }

    private static func takeAll(_ state: inout State) -> ([TelemetryBatch], [Waiter]) {
        defer {
            state.batches = []
            state.items = 0
            state.waiters = []
            state.timer?.cancel()
            state.timer = nil
            state.generation += 1
            state.inFlight += 1
        }
        return (state.batches, state.waiters)
    }

    private func timerFired(_ generation: Int) {
        let due = self.state.withLockedValue { state -> ([TelemetryBatch], [Waiter])? in
            guard state.generation == generation, !state.batches.isEmpty else { return nil }
            self.metrics?.timeoutTriggered.add()
            return Self.takeAll(&state)
        }
        if let (batches, waiters) = due { self.sendInTask(batches, waiters) }
    }

    /// Sends from a task of its own, for sends no request's task makes: the
    /// timer's, and shutdown's.
    private func sendInTask(_ batches: [TelemetryBatch], _ waiters: [Waiter]) {
        Task {
            let outcome = await self.send(batches)
            for waiter in waiters { waiter.resume(returning: .done(outcome)) }
        }
    }

    /// Hands the gathered requests on as one batch (or several, within the
    /// maximum size) and returns the outcome.
    private func send(_ batches: [TelemetryBatch]) async -> Result<Void, ConsumeError> {
        let parts = Self.merge(batches, signal: self.signal, maxItems: self.configuration.sendBatchMaxSize)
        for part in parts { self.metrics?.sendSize.record(part.itemCount) }
        // A split batch is a copy beside its callers' requests: it counts until handed on.
        let copied = parts.count > 1 ? parts.reduce(0) { $0 + $1.byteCount } : 0
        self.memory?.charge(copied)
        defer {
            self.memory?.release(copied)
            self.state.withLockedValue { $0.inFlight -= 1 }
        }
        var outcome: Result<Void, ConsumeError> = .success(())
        for part in parts {
            do throws(ConsumeError) {
                try await self.next.consume(part)
            } catch {
                outcome = .failure(error)
            }
        }
        return outcome
    }

    /// Requests one after another are one valid request: merging lists
    /// their buffers and copies nothing. Past `maxItems`, the merged request
    /// is cut into copies of at most that many items, inside resources where
    /// needed.
    static func merge(_ batches: [TelemetryBatch], signal: Signal, maxItems: Int) -> [TelemetryBatch] {
        let merged = batches.count == 1 ? batches[0] : TelemetryBatch(signal: signal, merging: batches)
        guard maxItems > 0, merged.itemCount > maxItems else { return [merged] }
        return ItemSplitter.split(merged.payload, signal: signal, maxItems: maxItems)
    }

    public func beginShutdown() async {
        let held = self.state.withLockedValue { state -> ([TelemetryBatch], [Waiter])? in
            state.passThrough = true
            return state.batches.isEmpty ? nil : Self.takeAll(&state)
        }
        if let (batches, waiters) = held { self.sendInTask(batches, waiters) }
    }

    public func shutdown() async {
        await self.beginShutdown()
        // Wait for every send under way, so the exporters see it all before they stop.
        while self.state.withLockedValue({ $0.inFlight > 0 }) {
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
