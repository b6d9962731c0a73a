import Logging
import NIOConcurrencyHelpers
import NIOPosix
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
///
/// With `sending_queue.storage`, the queue is a log on disk instead: a batch
/// is kept (and its clients answered) once it is durable there, and the
/// queue's consumers send it with no time limit; what the upstream refuses
/// for good goes to the dead-letter file.
package final class ForwardingExporter<Sender: UpstreamSender>: Exporter {
    let helper: ExporterHelperConfiguration
    let sender: Sender
    /// One per signal, as the Collector has an exporter per signal (empty with a persistent queue).
    package let queues: [Signal: MemorySendingQueue]
    let id: ComponentID
    let logger: Logger
    let counters: ExporterCounters
    let gauges: [Signal: SendingQueueGauges]
    let telemetry: SelfTelemetry
    /// Where the persistent queues go, and where refused data is kept; nil without `storage`.
    let storage: (any QueueStorage)?
    let deadLetterFile: DeadLetterFile?
    /// Opened at start, per signal.
    private let persistent = NIOLockedValueBox<[Signal: PersistentQueue]>([:])
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
        var deadLettered = 0
        var stopped = false
        /// Why the persistent queue refuses requests now; nil once it takes them again.
        var queueFull: String?
    }

    package init(helper: ExporterHelperConfiguration, sender: Sender, signals: Set<Signal>, settings: ComponentSettings) throws {
        self.helper = helper
        self.sender = sender
        var queues: [Signal: MemorySendingQueue] = [:]
        var gauges: [Signal: SendingQueueGauges] = [:]
        for signal in signals {
            gauges[signal] = settings.telemetry.sendingQueue(settings.id, signal: signal)
        }
        self.id = settings.id
        if let storageID = helper.queue.storage {
            guard let storage = settings.extensions[storageID] as? any QueueStorage else {
                throw PersistentQueueError("exporter \(settings.id): sending_queue.storage names '\(storageID)', which is not a running file_storage extension")
            }
            self.storage = storage
            let folder = storage.queueDirectory(for: settings.id, signal: .traces).dropLast("/traces".count)
            self.deadLetterFile = DeadLetterFile(
                path: helper.queue.deadLetter.path ?? "\(folder)/dead-letter.jsonl", exporter: settings.id.description, maxBytes: helper.queue.deadLetter.maxSize)
        } else {
            self.storage = nil
            self.deadLetterFile = nil
            for signal in signals { queues[signal] = MemorySendingQueue(settings: helper.queue, gauges: gauges[signal]) }
        }
        self.queues = queues
        self.gauges = gauges
        self.telemetry = settings.telemetry
        self.counters = settings.telemetry.exporter(settings.id)
        self.statusBoard = settings.telemetry.exporterStatus
        var logger = settings.logger
        logger[metadataKey: "upstream"] = "\(sender.upstream)"
        self.logger = logger
    }

    let statusBoard: ExporterStatusBoard

    package func start() async throws {
        if let storage = self.storage {
            try self.openPersistentQueues(storage)
        }
        self.statusBoard.register(self, id: self.id.description) { [weak self] in
            self?.status() ?? ExporterStatus(
                exporter: "", target: "", state: .down, queuedRequests: 0, queuedBytes: 0, oldestAge: nil, sent: 0, failed: 0, lastError: nil,
                lastErrorAge: nil)
        }
        self.telemetry.onScrape(self) { [weak self] in self?.refreshGauges() }
        self.logger.info(
            "forwarding",
            metadata: [
                "signals": "\(self.gauges.keys.map(\.rawValue).sorted().joined(separator: ","))",
                "queue": "\(self.storage.map { "persistent in \($0.directory)" } ?? "memory")",
            ])
    }

    /// A queue per signal in the storage's folder, taken over from a predecessor (a reload) or opened and recovered.
    private func openPersistentQueues(_ storage: any QueueStorage) throws {
        let budget = DiskBudget.shared(for: storage.directory, limit: storage.maxSize)
        var opened: [Signal: PersistentQueue] = [:]
        do {
            for signal in self.gauges.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
                let settings = PersistentQueue.Settings(
                    directory: storage.queueDirectory(for: self.id, signal: signal), signal: signal, fsync: storage.fsync, budget: budget,
                    consumers: self.helper.queue.numConsumers, capacity: self.helper.queue.queueSize, retry: self.helper.retry,
                    syncCounter: self.gauges[signal]?.syncs)
                let route = PersistentQueue.Route(
                    send: { batch in await self.sendQueued(batch) },
                    deadLetter: { batch, failure in await self.keepRefused(batch, status: failure.status, message: failure.message) })
                let (queue, fresh) = try PersistentQueue.attach(settings, owner: self, route: route)
                opened[signal] = queue
                self.gauges[signal]?.capacity.set(self.helper.queue.queueSize)
                // A queue taken over from a reload's predecessor was reported when it opened.
                if fresh { self.reportRecovery(queue) }
            }
        } catch {
            for queue in opened.values { Task { await queue.detach(owner: self, deadline: .now) } }
            throw error
        }
        self.persistent.withLockedValue { $0 = opened }
    }

    private func reportRecovery(_ queue: PersistentQueue) {
        let pending = queue.pending
        for path in queue.recovery.quarantined {
            self.logger.error(
                "a record of the persistent queue failed its check; it was moved aside and the rest is delivered",
                metadata: ["file": "\(path)", "queue": "\(queue.directory)"])
        }
        if pending.records > 0 {
            self.logger.info(
                "the persistent queue holds data from before the start; sending it",
                metadata: [
                    "queue": "\(queue.directory)", "requests": "\(pending.records)", "bytes": "\(pending.bytes)",
                    "cut_tail_bytes": "\(queue.recovery.truncatedBytes)",
                ])
        }
    }

    /// For `/services` and `otlpd status`.
    package func status() -> ExporterStatus {
        let now = ContinuousClock.now
        let depth = self.depth()
        return self.state.withLockedValue { state in
            let stateName: ExporterStatus.State = state.failingSince == nil ? .connected : depth.requests > 0 ? .retrying : .down
            var status = ExporterStatus(
                exporter: self.id.description, target: self.sender.upstream, state: stateName, queuedRequests: depth.requests,
                queuedBytes: depth.bytes, oldestAge: depth.oldestAge, sent: state.sentItems,
                failed: state.failedItems, lastError: state.lastError?.text, lastErrorAge: state.lastError.map { now - $0.at })
            status.deadLettered = state.deadLettered
            status.persistent = self.storage != nil
            status.queueFull = state.queueFull
            return status
        }
    }

    /// What every queue of this exporter holds.
    private func depth() -> (requests: Int, bytes: Int, oldestAge: Duration?) {
        self.depths().values.reduce((0, 0, nil)) { total, depth in
            (total.0 + depth.requests, total.1 + depth.bytes, [total.2, depth.oldestAge].compactMap { $0 }.max())
        }
    }

    private func depths() -> [Signal: (requests: Int, bytes: Int, oldestAge: Duration?)] {
        var depths: [Signal: (requests: Int, bytes: Int, oldestAge: Duration?)] = [:]
        let now = ContinuousClock.now
        for (signal, queue) in self.queues {
            let depth = queue.depth
            depths[signal] = (depth.requests, depth.bytes, depth.oldest.map { now - $0 })
        }
        let wallNow = Timestamp.nowNanoseconds()
        for (signal, queue) in self.persistent.withLockedValue({ $0 }) {
            let pending = queue.pending
            depths[signal] = (pending.records, pending.bytes, pending.oldest.map { .nanoseconds(max(0, wallNow - $0)) })
        }
        return depths
    }

    /// Sets the queue gauges that are read at a scrape.
    private func refreshGauges() {
        let persistent = self.storage != nil
        for (signal, depth) in self.depths() {
            guard let gauges = self.gauges[signal] else { continue }
            if persistent { gauges.size.set(depth.requests) }
            gauges.bytes.set(depth.bytes)
            gauges.oldestAgeSeconds.set(Int(depth.oldestAge.map { $0.nanosecondsValue / 1_000_000_000 } ?? 0))
        }
    }

    package func beginShutdown(deadline: ContinuousClock.Instant) async {
        self.state.withLockedValue { $0.shutdownDeadline = deadline }
    }

    package func shutdown() async {
        self.statusBoard.unregister(self)
        self.telemetry.removeScrapeHooks(self)
        let queues = self.persistent.withLockedValue { queues in
            defer { queues = [:] }
            return queues
        }
        self.state.withLockedValue { $0.stopped = true }
        if !queues.isEmpty {
            // What the upstream does not confirm by then stays on disk for the next start.
            let deadline = self.state.withLockedValue { $0.shutdownDeadline } ?? .now + self.helper.timeout
            await withTaskGroup(of: Void.self) { group in
                for queue in queues.values { group.addTask { await queue.detach(owner: self, deadline: deadline) } }
            }
        }
        await self.sender.shutdown()
    }

    package var countsItsOwnSends: Bool { true }

    package func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        if self.storage != nil { return try await self.enqueue(batch) }
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

    // MARK: Persistent queue

    /// Kept once durable in the signal's log: the clients are answered, the queue's consumers send it.
    private func enqueue(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        let request = batch
        guard let queue = self.persistent.withLockedValue({ $0[request.signal] }) else {
            throw .retryable("exporter \(self.id) is stopping; retry later", after: .seconds(1))
        }
        do {
            try await queue.append(request)
        } catch {
            self.counters.enqueueFailed.add(request.itemCount, for: request.signal)
            let firstRefusal = self.state.withLockedValue { state -> Bool in
                defer { state.queueFull = error.message }
                return state.queueFull == nil
            }
            if firstRefusal {
                self.logger.warning("the persistent queue refuses requests; clients are told to retry later", metadata: ["reason": "\(error.message)"])
            }
            throw error
        }
        if self.state.withLockedValue({ $0.queueFull }) != nil {
            let cleared = self.state.withLockedValue { state -> Bool in
                defer { state.queueFull = nil }
                return state.queueFull != nil
            }
            if cleared { self.logger.info("the persistent queue takes requests again") }
        }
        return .all
    }

    /// One attempt for a record of the persistent queue (its consumers retry with no time limit).
    private func sendQueued(_ batch: TelemetryBatch) async -> AttemptOutcome {
        let now = ContinuousClock.now
        var deadline = now + self.helper.timeout
        if let shutdown = self.state.withLockedValue({ $0.shutdownDeadline }) { deadline = min(deadline, max(now, shutdown)) }
        let outcome = await self.sender.send(batch, deadline: deadline)
        switch outcome {
        case .confirmed(let partial):
            self.confirmed()
            self.counters.sent.add(batch.itemCount, for: batch.signal)
            self.state.withLockedValue { $0.sentItems += batch.itemCount }
            if let partial, partial.rejected > 0 {
                // Acknowledged already: the rejected items cannot be told to the client, so they are kept.
                await self.keepRefused(
                    batch, status: "partial success", message: "the upstream rejected \(partial.rejected) of \(batch.itemCount): \(partial.message)")
            }
            return .confirmed(nil)
        case .failed(let failure):
            self.failed(failure)
            if failure.retryable { self.gauges[batch.signal]?.retries.add() }
            return outcome
        }
    }

    /// Writes data the upstream refused for good to the dead-letter file;
    /// false if that failed (the record stays in the queue and comes again).
    private func keepRefused(_ batch: TelemetryBatch, status: String, message: String) async -> Bool {
        guard let file = self.deadLetterFile else { return false }
        do {
            let payload = batch.payload
            try await NIOThreadPool.singleton.runIfActive {
                try file.write(payload, signal: batch.signal, status: status, message: message)
            }
        } catch {
            self.logger.error(
                "the upstream refused acknowledged data and the dead-letter file cannot be written; it stays in the queue",
                metadata: ["file": "\(file.path)", "error": "\(error)", "status": "\(status)"])
            return false
        }
        self.counters.sendFailed.add(batch.itemCount, for: batch.signal)
        self.gauges[batch.signal]?.deadLetterRecords.add()
        self.state.withLockedValue {
            $0.deadLettered += 1
            $0.failedItems += batch.itemCount
            $0.lastError = ("\(status): \(message)", .now)
        }
        self.logger.error(
            "the upstream refused acknowledged data for good; it is kept in the dead-letter file",
            metadata: ["status": "\(status)", "reason": "\(message)", "items": "\(batch.itemCount)", "file": "\(file.path)"])
        return true
    }

    // MARK: Memory queue

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
                self.gauges[batch.signal]?.retries.add()
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
                self.storage == nil
                    ? "the upstream does not confirm; retrying within each client's deadline"
                    : "the upstream does not confirm; the persistent queue keeps the data and retries until it does",
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
