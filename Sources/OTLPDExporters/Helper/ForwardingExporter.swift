import Logging
import NIOConcurrencyHelpers
import OTLPDCore
import OTLPDWire

/// A forwarding exporter, as the Collector's exporterhelper chains it:
/// sending queue, then retry, then a timeout on each attempt, around a
/// sender that speaks the protocol.
///
/// A batch is kept once the upstream confirmed it, and only then does
/// `consume` return, so the client's answer means delivered. Retries
/// happen inside the client's deadline (gRPC's `grpc-timeout`; without one,
/// the exporter's `timeout`), a little before it, so the client hears a
/// retryable error in time, not its own timeout; then its SDK retries.
/// A permanent refusal goes back to the client as the upstream gave it.
package final class ForwardingExporter<Sender: UpstreamSender>: Exporter {
    let helper: ExporterHelperConfiguration
    let sender: Sender
    /// One per signal, as the Collector has an exporter per signal.
    package let queues: [Signal: MemorySendingQueue]
    let id: ComponentID
    let logger: Logger
    let counters: ExporterCounters
    let retries: [Signal: TelemetryCounter]
    private let state = NIOLockedValueBox(State())

    private struct State {
        /// Set at shutdown: no attempt starts after it.
        var shutdownDeadline: ContinuousClock.Instant?
        /// Diagnoses of the settings already logged.
        var diagnosed: Set<String> = []
        /// Since when attempts fail, and the latest failure; nil while the upstream confirms.
        var failingSince: ContinuousClock.Instant?
        var lastFailure: AttemptFailure?
        /// The latest failure of all, kept after the upstream recovers, for the status page.
        var lastError: (text: String, at: ContinuousClock.Instant)?
        var sentItems = 0
        var failedItems = 0
    }

    package init(helper: ExporterHelperConfiguration, sender: Sender, signals: Set<Signal>, settings: ComponentSettings) {
        self.helper = helper
        self.sender = sender
        var queues: [Signal: MemorySendingQueue] = [:]
        var retries: [Signal: TelemetryCounter] = [:]
        for signal in signals {
            let gauges = settings.telemetry.sendingQueue(settings.id, signal: signal)
            queues[signal] = MemorySendingQueue(settings: helper.queue, gauges: gauges)
            retries[signal] = gauges.retries
        }
        self.queues = queues
        self.retries = retries
        self.counters = settings.telemetry.exporter(settings.id)
        self.statusBoard = settings.telemetry.exporterStatus
        self.id = settings.id
        var logger = settings.logger
        logger[metadataKey: "upstream"] = "\(sender.upstream)"
        self.logger = logger
    }

    let statusBoard: ExporterStatusBoard

    package func start() async throws {
        self.statusBoard.register(self, id: self.id.description) { [weak self] in
            self?.status() ?? ExporterStatus(
                exporter: "", target: "", state: .down, queuedRequests: 0, queuedBytes: 0, oldestAge: nil, sent: 0, failed: 0, lastError: nil,
                lastErrorAge: nil)
        }
    }

    /// For `/services` and `otlpd status`.
    package func status() -> ExporterStatus {
        let now = ContinuousClock.now
        let depths = self.queues.values.map(\.depth)
        let oldest = depths.compactMap(\.oldest).min()
        let requests = depths.reduce(0) { $0 + $1.requests }
        return self.state.withLockedValue { state in
            let stateName: ExporterStatus.State = state.failingSince == nil ? .connected : requests > 0 ? .retrying : .down
            return ExporterStatus(
                exporter: self.id.description, target: self.sender.upstream, state: stateName, queuedRequests: requests,
                queuedBytes: depths.reduce(0) { $0 + $1.bytes }, oldestAge: oldest.map { now - $0 }, sent: state.sentItems,
                failed: state.failedItems, lastError: state.lastError?.text, lastErrorAge: state.lastError.map { now - $0.at })
        }
    }

    package func beginShutdown(deadline: ContinuousClock.Instant) async {
        self.state.withLockedValue { $0.shutdownDeadline = deadline }
    }

    package func shutdown() async {
        self.statusBoard.unregister(self)
        await self.sender.shutdown()
    }

    package var countsItsOwnSends: Bool { true }

    package func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        let arrived = ContinuousClock.now
        let request = batch
        let (signal, items) = (request.signal, request.itemCount)
        guard let queue = self.queues[signal] else { throw .permanent("exporter \(self.id) takes no \(signal)") }
        guard let outcome = await queue.withConsumer(bytes: request.byteCount, { await self.deliver(request, arrived: arrived) }) else {
            self.counters.enqueueFailed.add(items, for: signal)
            throw .retryable(
                "exporter \(self.id) holds as many batches as its sending queue allows (queue_size \(queue.capacity)); retry later",
                after: .seconds(1))
        }
        switch outcome {
        case .success(let kept):
            self.counters.sent.add(items, for: signal)
            self.state.withLockedValue { $0.sentItems += items }
            return kept
        case .failure(let error):
            self.counters.sendFailed.add(items, for: signal)
            self.state.withLockedValue { $0.failedItems += items }
            throw error
        }
    }

    /// Attempts until the upstream confirms, refuses for good, or the deadline comes.
    private func deliver(_ batch: TelemetryBatch, arrived: ContinuousClock.Instant) async -> Result<Kept, ConsumeError> {
        var schedule = RetrySchedule(policy: self.helper.retry, start: arrived)
        var lastFailure: AttemptFailure?
        while true {
            let deadline = self.deadline(for: batch, arrived: arrived)
            let now = ContinuousClock.now
            guard now < deadline else { return .failure(self.gaveUp(batch, lastFailure)) }
            switch await self.sender.send(batch, deadline: min(now + self.helper.timeout, deadline)) {
            case .confirmed(let partial):
                self.confirmed()
                guard let partial else { return .success(.all) }
                self.logger.warning(
                    "the upstream rejected part of a batch",
                    metadata: ["rejected": "\(partial.rejected)", "items": "\(batch.itemCount)", "reason": "\(partial.message)"])
                // Passed back to the clients in their responses' partial_success.
                let rejected = Int(clamping: max(0, partial.rejected))
                return .success(
                    Kept(
                        rejected: min(rejected, batch.itemCount),
                        message: "the upstream \(self.sender.upstream) rejected \(rejected) of \(batch.itemCount): \(partial.message)"))
            case .failed(let failure):
                lastFailure = failure
                self.failed(failure)
                guard failure.retryable else {
                    self.logger.error(
                        "the upstream refused a batch; the client is told so and it is not retried",
                        metadata: ["status": "\(failure.status)", "reason": "\(failure.message)", "items": "\(batch.itemCount)"])
                    return .failure(
                        .permanent("the upstream \(self.sender.upstream) refused the data: \(failure.status): \(failure.message)", code: failure.code))
                }
                guard
                    let delay = schedule.nextDelay(
                        now: .now, random: Double.random(in: 0..<1), retryAfter: failure.retryAfter, deadline: deadline)
                else {
                    return .failure(self.gaveUp(batch, failure))
                }
                guard await self.wait(delay) else { return .failure(self.gaveUp(batch, failure)) }
                self.retries[batch.signal]?.add()
            }
        }
    }

    /// When to stop trying: a little before the client stops waiting, and no later than the shutdown's deadline.
    private func deadline(for batch: TelemetryBatch, arrived: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let client = batch.deadline ?? arrived + self.helper.timeout
        // Time for the answer to reach the client: a tenth of its budget, at most 200 ms.
        var deadline = client - min(.milliseconds(200), (client - arrived) / 10)
        if let shutdown = self.state.withLockedValue({ $0.shutdownDeadline }) { deadline = min(deadline, shutdown) }
        return deadline
    }

    /// Sleeps `delay`; false, at once, when a shutdown's deadline comes before the next attempt would.
    private func wait(_ delay: Duration) async -> Bool {
        let resume = ContinuousClock.now + delay
        while ContinuousClock.now < resume {
            if let shutdown = self.state.withLockedValue({ $0.shutdownDeadline }), shutdown < resume { return false }
            try? await Task.sleep(for: min(resume - .now, .milliseconds(50)))
        }
        return true
    }

    private func gaveUp(_ batch: TelemetryBatch, _ failure: AttemptFailure?) -> ConsumeError {
        let stopping = self.state.withLockedValue { $0.shutdownDeadline != nil }
        let why = failure.map { "\($0.status): \($0.message)" } ?? "no attempt fitted before the deadline"
        let when = stopping ? "before otlpd stops" : "within the client's deadline"
        return .retryable(
            "the upstream \(self.sender.upstream) did not confirm the data \(when) (\(why)); nothing was kept, retry later",
            after: failure?.retryAfter ?? .seconds(1))
    }

    /// Logs once when the upstream starts failing, and each setting mistake once.
    private func failed(_ failure: AttemptFailure) {
        let (firstFailure, newDiagnosis) = self.state.withLockedValue { state -> (Bool, Bool) in
            let first = state.failingSince == nil
            if first { state.failingSince = .now }
            state.lastFailure = failure
            state.lastError = (failure.description, .now)
            guard let diagnosis = failure.diagnosis else { return (first, false) }
            return (first, state.diagnosed.insert(diagnosis).inserted)
        }
        if newDiagnosis, let diagnosis = failure.diagnosis {
            self.logger.error("\(diagnosis)")
        }
        if firstFailure && failure.retryable {
            self.logger.warning(
                "the upstream does not confirm; retrying within each client's deadline",
                metadata: ["status": "\(failure.status)", "reason": "\(failure.message)"])
        }
    }

    /// Logs once when the upstream confirms again after failures.
    private func confirmed() {
        let since = self.state.withLockedValue { state -> ContinuousClock.Instant? in
            defer {
                state.failingSince = nil
                state.lastFailure = nil
            }
            return state.failingSince
        }
        if let since {
            self.logger.info(
                "the upstream confirms again", metadata: ["failing_for": "\(ConfigUnits.format(.milliseconds((ContinuousClock.now - since).nanosecondsValue / 1_000_000)))"])
        }
    }
}
