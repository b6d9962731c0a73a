/// `retry_on_failure`, with the OpenTelemetry Collector's defaults.
public struct RetryPolicy: Sendable, Equatable {
    public var enabled = true
    public var initialInterval: Duration = .seconds(5)
    public var multiplier = 1.5
    /// Each wait is drawn from interval × [1 − factor, 1 + factor].
    public var randomizationFactor = 0.5
    public var maxInterval: Duration = .seconds(30)
    /// Give up once this long has passed since the first attempt; zero: never.
    public var maxElapsedTime: Duration = .seconds(300)

    public init() {}
}

/// The waits between the attempts to deliver one request: exponential
/// backoff with jitter, as the Collector's retry sender does, that waits at
/// least as long as the upstream asked (gRPC `RetryInfo`, HTTP
/// `Retry-After`) and gives up rather than wait past `maxElapsedTime` or the
/// client's deadline. Time and chance are passed in, so it is tested
/// without waiting.
package struct RetrySchedule: Sendable {
    package let policy: RetryPolicy
    package let start: ContinuousClock.Instant
    /// The interval the next wait is drawn around.
    private(set) var interval: Duration

    package init(policy: RetryPolicy, start: ContinuousClock.Instant) {
        self.policy = policy
        self.start = start
        self.interval = policy.initialInterval
    }

    /// How long to wait before the next attempt, or nil to give up.
    /// - `random`: a number in 0..<1 that places the wait in its jitter range.
    /// - `retryAfter`: what the upstream asked for, if it did.
    /// - `deadline`: the client's, if it has one: no attempt starts after it.
    package mutating func nextDelay(
        now: ContinuousClock.Instant, random: Double, retryAfter: Duration? = nil, deadline: ContinuousClock.Instant? = nil
    ) -> Duration? {
        guard self.policy.enabled else { return nil }
        let spread = self.policy.randomizationFactor * (2 * random - 1)
        var delay = self.interval * (1 + spread)
        if let retryAfter { delay = max(delay, retryAfter) }
        self.interval = min(self.interval * self.policy.multiplier, self.policy.maxInterval)
        let resume = now + delay
        if self.policy.maxElapsedTime > .zero && resume - self.start > self.policy.maxElapsedTime { return nil }
        if let deadline, resume >= deadline { return nil }
        return delay
    }
}
