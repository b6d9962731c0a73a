import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore

/// The delivery side of a persistent queue: consumers take the log's
/// records in order, send each until the upstream confirms it or refuses it
/// for good, with no time limit (what is in the log was acknowledged), and
/// the confirmed position advances over every record before the first one
/// still under way, so a restart sends again only what was not confirmed.
/// A permanent refusal goes to `deadLetter`, never away silently.
package final class PersistentDelivery: Sendable {
    package typealias Send = @Sendable (TelemetryBatch) async -> AttemptOutcome
    /// Keeps a refused record; false if it could not (the record stays and comes again later).
    package typealias DeadLetter = @Sendable (TelemetryBatch, AttemptFailure) async -> Bool
    /// Records confirmed (or dead-lettered) and their bytes on disk.
    package typealias Confirmed = @Sendable (_ records: Int, _ bytes: Int) -> Void

    private let writer: DurableLogWriter
    private let signal: Signal
    private let consumers: Int
    private let retry: RetryPolicy
    private let send: Send
    private let deadLetter: DeadLetter
    private let onConfirmed: Confirmed
    private let state: NIOLockedValueBox<State>

    private struct Handed {
        var end: LogPosition
        var bytes: Int
        var appendedAt: Int64
        var done = false
    }

    private struct State {
        /// Where the next record to hand out starts.
        var next: LogPosition
        /// Records read ahead of the consumers.
        var prefetched: [LogRecord] = []
        /// The records handed out, in log order, and whether each is done.
        var handedOut: [Handed] = []
        var idle: [CheckedContinuation<Void, Never>] = []
        /// Stop taking records: at once, or (draining) once none is left or an attempt fails.
        var stopping = false
        var draining = false
        var tasks: [Task<Void, Never>] = []
    }

    package init(
        writer: DurableLogWriter, signal: Signal, consumers: Int, retry: RetryPolicy, send: @escaping Send,
        deadLetter: @escaping DeadLetter, onConfirmed: @escaping Confirmed = { _, _ in }
    ) {
        self.writer = writer
        self.signal = signal
        self.consumers = max(1, consumers)
        var unlimited = retry
        unlimited.maxElapsedTime = .zero
        unlimited.enabled = true
        self.retry = unlimited
        self.send = send
        self.deadLetter = deadLetter
        self.onConfirmed = onConfirmed
        self.state = NIOLockedValueBox(State(next: writer.durableLog.confirmed))
    }

    package func start() {
        let tasks = (0..<self.consumers).map { _ in Task { await self.consume() } }
        self.state.withLockedValue { $0.tasks = tasks }
    }

    /// New records were appended: wake the consumers that wait for some.
    package func notify() {
        let idle = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            defer { state.idle = [] }
            return state.idle
        }
        for waiter in idle { waiter.resume() }
    }

    /// When the oldest record not yet confirmed was appended (Unix nanoseconds); nil when none is read.
    package var oldestPending: Int64? {
        self.state.withLockedValue { state in
            state.handedOut.first(where: { !$0.done })?.appendedAt ?? state.prefetched.first?.appendedAt
        }
    }

    /// Stops the consumers; what they had not confirmed stays in the log for
    /// the next start. With `drainUntil`, they first go on sending until the
    /// log is empty, an attempt fails, or that time comes.
    package func stop(drainUntil deadline: ContinuousClock.Instant? = nil) async {
        let tasks = self.state.withLockedValue { state -> [Task<Void, Never>] in
            if deadline == nil { state.stopping = true } else { state.draining = true }
            return state.tasks
        }
        self.notify()
        var timer: Task<Void, Never>?
        if let deadline {
            timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.state.withLockedValue { $0.stopping = true }
            }
        }
        for task in tasks { await task.value }
        timer?.cancel()
    }

    private var isStopping: Bool { self.state.withLockedValue { $0.stopping } }

    private func consume() async {
        while !self.isStopping {
            guard let record = self.takeNext() else {
                if self.state.withLockedValue({ $0.draining }) { return }
                await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                    let wait = self.state.withLockedValue { state -> Bool in
                        if state.stopping || state.draining { return false }
                        state.idle.append(waiter)
                        return true
                    }
                    if !wait { waiter.resume() }
                }
                continue
            }
            guard await self.deliver(record) else { return }
            self.finished(record.end)
        }
    }

    /// The next record to send, read ahead from the durable log a few at a time.
    private func takeNext() -> LogRecord? {
        self.state.withLockedValue { state -> LogRecord? in
            if state.prefetched.isEmpty {
                let after = state.handedOut.last?.end ?? state.next
                // A few records ahead, and a few MiB at most: a record may be a whole batch.
                state.prefetched = (try? self.writer.records(after: after, limit: 64, maxBytes: 8 << 20)) ?? []
            }
            guard !state.prefetched.isEmpty else { return nil }
            let record = state.prefetched.removeFirst()
            state.handedOut.append(Handed(end: record.end, bytes: record.byteCount + SegmentLog.headerBytes, appendedAt: record.appendedAt))
            return record
        }
    }

    /// Sends one record until it is confirmed or refused for good; false if stopped first.
    private func deliver(_ record: LogRecord) async -> Bool {
        // Its parts as appended, or as read back: one request either way (OTLP's requests concatenate).
        let batch = TelemetryBatch(signal: self.signal, parts: record.parts, itemCount: record.items)
        var schedule = RetrySchedule(policy: self.retry, start: .now)
        while !self.isStopping {
            switch await self.send(batch) {
            case .confirmed:
                return true
            case .failed(let failure) where !failure.retryable:
                if await self.deadLetter(batch, failure) { return true }
                let resume = ContinuousClock.now + self.retry.maxInterval
                while ContinuousClock.now < resume && !self.isStopping {
                    try? await Task.sleep(for: min(resume - .now, .milliseconds(50)))
                }
            case .failed(let failure):
                // Draining at shutdown: a failing upstream ends it; the rest waits on disk for the next start.
                let stop = self.state.withLockedValue { state -> Bool in
                    if state.draining { state.stopping = true }
                    return state.stopping
                }
                if stop { return false }
                let delay = schedule.nextDelay(now: .now, random: Double.random(in: 0..<1), retryAfter: failure.retryAfter) ?? self.retry.maxInterval
                let resume = ContinuousClock.now + delay
                while ContinuousClock.now < resume && !self.isStopping {
                    try? await Task.sleep(for: min(resume - .now, .milliseconds(50)))
                }
            }
        }
        return false
    }

    /// A record is done: the confirmed position moves over every done record before the first one under way.
    private func finished(_ end: LogPosition) {
        let (through, records, bytes) = self.state.withLockedValue { state -> (LogPosition?, Int, Int) in
            guard let index = state.handedOut.firstIndex(where: { $0.end == end }) else { return (nil, 0, 0) }
            state.handedOut[index].done = true
            var through: LogPosition?
            var (records, bytes) = (0, 0)
            while let first = state.handedOut.first, first.done {
                through = first.end
                records += 1
                bytes += first.bytes
                state.handedOut.removeFirst()
            }
            if let through { state.next = through }
            return (through, records, bytes)
        }
        guard let through else { return }
        self.writer.confirm(through: through)
        self.onConfirmed(records, bytes)
    }
}
