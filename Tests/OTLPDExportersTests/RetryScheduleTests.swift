import OTLPDExporters
import Testing

/// The waits between delivery attempts, with time and chance passed in.
struct RetryScheduleTests {
    let t0 = ContinuousClock.now

    /// Seconds, to compare waits without rounding noise.
    func seconds(_ duration: Duration?) -> Double? {
        duration.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
    }

    @Test("the Collector's defaults grow by 1.5 from 5 s up to 30 s; the middle of the jitter range is the interval")
    func growsToTheMaximum() {
        var schedule = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        var waits: [Double] = []
        for _ in 0..<7 {
            waits.append(self.seconds(schedule.nextDelay(now: self.t0, random: 0.5)) ?? -1)
        }
        #expect(waits.map { ($0 * 1000).rounded() / 1000 } == [5, 7.5, 11.25, 16.875, 25.313, 30, 30])
    }

    @Test("a wait lies within interval × [0.5, 1.5] with the default randomization factor")
    func jitterRange() {
        var low = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        var high = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        #expect(self.seconds(low.nextDelay(now: self.t0, random: 0)) == 2.5)
        #expect(abs((self.seconds(high.nextDelay(now: self.t0, random: 0.999_999)) ?? 0) - 7.5) < 0.001)
    }

    @Test("the upstream's RetryInfo or Retry-After is waited at least")
    func honoursRetryAfter() {
        var schedule = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        #expect(self.seconds(schedule.nextDelay(now: self.t0, random: 0.5, retryAfter: .seconds(12))) == 12)
        #expect(self.seconds(schedule.nextDelay(now: self.t0, random: 0.5, retryAfter: .seconds(1))) == 7.5, "a shorter ask does not shorten the backoff")
    }

    @Test("it gives up rather than resume after max_elapsed_time; zero never gives up")
    func maxElapsedTime() {
        var schedule = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        #expect(schedule.nextDelay(now: self.t0 + .seconds(290), random: 0.5) != nil, "290 + 5 s is within 300 s")
        #expect(schedule.nextDelay(now: self.t0 + .seconds(295), random: 0.5) == nil, "295 + 7.5 s is past it")
        var policy = RetryPolicy()
        policy.maxElapsedTime = .zero
        var unlimited = RetrySchedule(policy: policy, start: self.t0)
        #expect(unlimited.nextDelay(now: self.t0 + .seconds(86_400), random: 0.5) != nil)
    }

    @Test("no attempt starts after the client's deadline")
    func clientDeadline() {
        var schedule = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        #expect(schedule.nextDelay(now: self.t0, random: 0.5, deadline: self.t0 + .seconds(4)) == nil)
        var roomy = RetrySchedule(policy: RetryPolicy(), start: self.t0)
        #expect(self.seconds(roomy.nextDelay(now: self.t0, random: 0.5, deadline: self.t0 + .seconds(10))) == 5)
    }

    @Test("retry_on_failure disabled: no retry at all")
    func disabled() {
        var policy = RetryPolicy()
        policy.enabled = false
        var schedule = RetrySchedule(policy: policy, start: self.t0)
        #expect(schedule.nextDelay(now: self.t0, random: 0.5) == nil)
    }
}
