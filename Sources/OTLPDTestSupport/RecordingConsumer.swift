import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore

/// A consumer that keeps every batch it is given, can be made to fail,
/// and can be held (to test that callers wait until it returns).
public final class RecordingConsumer: Consumer {
    private let state = NIOLockedValueBox(State())

    struct State {
        var batches: [TelemetryBatch] = []
        var failure: ConsumeError?
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    public init() {}

    public var batches: [TelemetryBatch] { self.state.withLockedValue { $0.batches } }

    public var itemCounts: [Int] { self.batches.map(\.itemCount) }

    /// Calls waiting in `consume` while held.
    public var waitingCount: Int { self.state.withLockedValue { $0.waiters.count } }

    /// Every later `consume` fails with `error`.
    public func fail(with error: ConsumeError?) {
        self.state.withLockedValue { $0.failure = error }
    }

    /// `consume` waits until `release()`.
    public func hold() {
        self.state.withLockedValue { $0.held = true }
    }

    public func release() {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.held = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        let batch = batch
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait = self.state.withLockedValue { state -> Bool in
                if state.held { state.waiters.append(continuation) }
                return state.held
            }
            if !wait { continuation.resume() }
        }
        let failure = self.state.withLockedValue { state -> ConsumeError? in
            if let failure = state.failure { return failure }
            state.batches.append(batch)
            return nil
        }
        if let failure { throw failure }
        return .all
    }
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline { return false }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return true
}
