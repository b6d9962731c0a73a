import NIOConcurrencyHelpers
import OTLPDCore

/// `sending_queue` in memory. A batch is answered only once the upstream
/// confirmed it, so the queue holds batches with their callers still
/// waiting: `queue_size` bounds how many (one past it is refused at once,
/// with a retryable error, so the client's SDK backs off), and
/// `num_consumers` how many are on the wire at once; the rest wait their
/// turn, first come first served. With `storage`, `PersistentQueue` is
/// used instead: a batch is answered once it is on disk.
package final class MemorySendingQueue: Sendable {
    package let capacity: Int
    package let consumers: Int
    private let state: NIOLockedValueBox<State>

    private struct State {
        var held = 0
        var sending = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
        var nextWaiter = 0
        /// Each held batch's arrival and size, for the status page.
        var entries: [UInt64: (arrived: ContinuousClock.Instant, bytes: Int)] = [:]
        var nextEntry: UInt64 = 0
    }

    /// Batches held, their bytes, and the arrival of the oldest.
    package var depth: (requests: Int, bytes: Int, oldest: ContinuousClock.Instant?) {
        self.state.withLockedValue { state in
            (state.held, state.entries.values.reduce(0) { $0 + $1.bytes }, state.entries.values.map(\.arrived).min())
        }
    }

    /// Set to the number held at each change.
    private let sizeGauge: TelemetryGauge?

    package init(settings: SendingQueueSettings, gauges: SendingQueueGauges? = nil) {
        self.capacity = settings.enabled ? settings.queueSize : Int.max
        self.consumers = settings.enabled ? settings.numConsumers : Int.max
        self.state = NIOLockedValueBox(State())
        self.sizeGauge = gauges?.size
        gauges?.capacity.set(settings.enabled ? settings.queueSize : 0)
    }

    /// Batches held now: waiting for a consumer or being sent.
    package var size: Int { self.state.withLockedValue { $0.held } }

    /// Runs `send` once a consumer is free; nil without running it when the queue is full.
    package func withConsumer<Result>(bytes: Int = 0, _ send: () async -> Result) async -> Result? {
        let (admitted, mustWait, entry) = self.state.withLockedValue { state -> (Bool, Bool, UInt64) in
            guard state.held < self.capacity else { return (false, false, 0) }
            state.held += 1
            self.sizeGauge?.set(state.held)
            let entry = state.nextEntry
            state.nextEntry += 1
            state.entries[entry] = (.now, bytes)
            if state.sending < self.consumers {
                state.sending += 1
                return (true, false, entry)
            }
            return (true, true, entry)
        }
        guard admitted else { return nil }
        if mustWait {
            // The consumer that finishes hands its slot over (`sending` stays
            // counted); one may have finished since the check above.
            await withCheckedContinuation { continuation in
                let free = self.state.withLockedValue { state -> Bool in
                    if state.sending < self.consumers {
                        state.sending += 1
                        return true
                    }
                    state.waiting.append(continuation)
                    return false
                }
                if free { continuation.resume() }
            }
        }
        let result = await send()
        let next = self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.held -= 1
            state.entries.removeValue(forKey: entry)
            self.sizeGauge?.set(state.held)
            guard state.nextWaiter < state.waiting.count else {
                state.sending -= 1
                return nil
            }
            let next = state.waiting[state.nextWaiter]
            state.nextWaiter += 1
            if state.nextWaiter == state.waiting.count {
                state.waiting.removeAll(keepingCapacity: true)
                state.nextWaiter = 0
            }
            return next
        }
        next?.resume()
        return result
    }
}
