import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDWire

/// The delivery side of a persistent queue: consumers take the log's
/// records in order, send each until the upstream confirms it or refuses it
/// for good, with no time limit (what is in the log was acknowledged), and
/// the confirmed position advances over every record before the first one
/// still under way, so a restart sends again only what was not confirmed.
/// A permanent refusal goes to `deadLetter`, never away silently.
package final class PersistentDelivery: Sendable {
    package typealias Send = @Sendable (TelemetryBatch) async -> AttemptOutcome
    package typealias DeadLetter = @Sendable (ByteBuffer, AttemptFailure) -> Void

    private let writer: DurableLogWriter
    private let signal: Signal
    private let consumers: Int
    private let retry: RetryPolicy
    private let send: Send
    private let deadLetter: DeadLetter
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    private struct State {
        /// Where the next record to hand out starts.
        var next: LogPosition
        /// Records read ahead of the consumers.
        var prefetched: [(end: LogPosition, payload: ByteBuffer)] = []
        /// The ends of the records handed out, in log order, and whether each is done.
        var handedOut: [(end: LogPosition, done: Bool)] = []
        var idle: [CheckedContinuation<Void, Never>] = []
        var stopping = false
        var tasks: [Task<Void, Never>] = []
    }

    package init(
        writer: DurableLogWriter, signal: Signal, consumers: Int, retry: RetryPolicy, logger: Logger, send: @escaping Send,
        deadLetter: @escaping DeadLetter
    ) {
        self.writer = writer
        self.signal = signal
        self.consumers = max(1, consumers)
        var unlimited = retry
        unlimited.maxElapsedTime = .zero
        unlimited.enabled = true
        self.retry = unlimited
        self.logger = logger
        self.send = send
        self.deadLetter = deadLetter
        self.state = NIOLockedValueBox(State(next: writer.withLog { $0.confirmed }))
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

    /// Stops the consumers; what they had not confirmed stays in the log for the next start.
    package func stop() async {
        let tasks = self.state.withLockedValue { state -> [Task<Void, Never>] in
            state.stopping = true
            return state.tasks
        }
        self.notify()
        for task in tasks { await task.value }
    }

    private var isStopping: Bool { self.state.withLockedValue { $0.stopping } }

    private func consume() async {
        while !self.isStopping {
            guard let (end, payload) = self.takeNext() else {
                await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                    let wait = self.state.withLockedValue { state -> Bool in
                        if state.stopping { return false }
                        state.idle.append(waiter)
                        return true
                    }
                    if !wait { waiter.resume() }
                }
                continue
            }
            guard await self.deliver(payload) else { return }
            self.finished(end)
        }
    }

    /// The next record to send, read ahead from the log a few at a time.
    private func takeNext() -> (LogPosition, ByteBuffer)? {
        self.state.withLockedValue { state -> (LogPosition, ByteBuffer)? in
            if state.prefetched.isEmpty {
                let after = state.handedOut.last?.end ?? state.next
                state.prefetched = (try? self.writer.withLog { try $0.records(after: after, limit: 64) }) ?? []
            }
            guard !state.prefetched.isEmpty else { return nil }
            let (end, payload) = state.prefetched.removeFirst()
            state.handedOut.append((end, false))
            return (end, payload)
        }
    }

    /// Sends one record until it is confirmed or refused for good; false if stopped first.
    private func deliver(_ payload: ByteBuffer) async -> Bool {
        let items = (try? WireValidator.validate(payload, signal: self.signal).itemCount) ?? 0
        let batch = TelemetryBatch(signal: self.signal, payload: payload, itemCount: items)
        var schedule = RetrySchedule(policy: self.retry, start: .now)
        while !self.isStopping {
            switch await self.send(batch) {
            case .confirmed:
                return true
            case .failed(let failure) where !failure.retryable:
                self.logger.error(
                    "the upstream refused acknowledged data for good; it goes to the dead-letter file",
                    metadata: ["status": "\(failure.status)", "reason": "\(failure.message)", "items": "\(items)"])
                self.deadLetter(payload, failure)
                return true
            case .failed(let failure):
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
        let through = self.state.withLockedValue { state -> LogPosition? in
            guard let index = state.handedOut.firstIndex(where: { $0.end == end }) else { return nil }
            state.handedOut[index].done = true
            var through: LogPosition?
            while let first = state.handedOut.first, first.done {
                through = first.end
                state.handedOut.removeFirst()
            }
            if let through { state.next = through }
            return through
        }
        guard let through else { return }
        let before = self.writer.withLog { $0.bytesOnDisk }
        do {
            try self.writer.withLog { try $0.confirm(through: through) }
        } catch {
            self.logger.warning("cannot save the confirmed position of the persistent queue; it is sent again after a restart", metadata: ["error": "\(error)"])
        }
        let after = self.writer.withLog { $0.bytesOnDisk }
        if after < before { self.writer.reclaimed(before - after) }
    }
}
