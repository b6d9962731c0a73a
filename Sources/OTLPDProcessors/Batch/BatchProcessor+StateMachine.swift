/// When the batch processor sends (group commit), kept apart from locks,
/// tasks and timers so that the rules can be tested with an injected clock.
///
/// Clients' answers wait for their batch, so a batch that waits for
/// requests that cannot come only slows its senders (an OTel SDK exports
/// one request at a time and drops spans while it waits). A partial batch
/// therefore goes as soon as waiting longer cannot make it bigger: when no
/// other request is on its way to this stage (every request that entered
/// the stretch of pipeline before it is here, or already answered) and
/// fewer than `concurrentSends` of its sends are under way. Requests that
/// arrive while a send is under way form the next batch, which goes when
/// that send returns: under light load an answer waits about one write,
/// under heavy load batches grow by themselves. A batch also goes at
/// `sendBatchSize` items, and `timeout` after its first request, whatever
/// else is under way.
package struct BatchStateMachine<Request, Waiter> {
    package struct Policy {
        /// Send once this many items are held; 0: no size trigger.
        package var sendBatchSize: Int
        /// The longest a partial batch waits; zero: every request goes at once.
        package var timeout: Duration
        /// Sends that may be under way when a partial batch goes early; 0: never early.
        package var concurrentSends: Int

        package init(sendBatchSize: Int, timeout: Duration, concurrentSends: Int) {
            self.sendBatchSize = sendBatchSize
            self.timeout = timeout
            self.concurrentSends = concurrentSends
        }
    }

    /// What made a batch go.
    package enum Trigger: Equatable {
        /// It reached `sendBatchSize`.
        case size
        /// Its first request waited `timeout`.
        case timeout
        /// No other request was on its way, and a send could start.
        case idle
        /// Shutdown or reload: nothing is held any more.
        case stopping
        /// otlpd is over its memory limit: holding data only holds memory.
        case memory
    }

    /// A batch that goes now: `sender` (one of its requests' tasks) sends it
    /// and answers `waiters`, then reports `sendFinished(answered: count)`.
    package struct Dispatch {
        package var sender: Waiter
        package var waiters: [Waiter]
        package var requests: [Request]
        package var trigger: Trigger
        package var count: Int { self.waiters.count + 1 }
    }

    package let policy: Policy
    /// The open batch: requests and their waiting tasks, in arrival order.
    private var requests: [Request] = []
    private var waiters: [Waiter] = []
    private var items = 0
    /// When the open batch must go at the latest.
    private var deadline: ContinuousClock.Instant?
    /// The one timer armed (one at a time: a timer that finds a later
    /// deadline is armed again, so an early send cancels nothing).
    private var timerAt: ContinuousClock.Instant?
    /// Requests in the stretch of pipeline that ends here, counted by its feed.
    private var entered = 0
    /// Requests that arrived here and are not answered yet (open batch and sends under way).
    private var held = 0
    /// Requests answered here that have not left the stretch yet (their
    /// tasks are on their way back out). A request refused before it got
    /// here may be taken for one of them when it leaves: that delays a send
    /// until the answered one leaves too, and never sends early.
    private var passed = 0
    package private(set) var sending = 0
    private var stopping = false

    package init(policy: Policy) {
        self.policy = policy
    }

    /// Requests that entered the stretch before this stage and are not here.
    /// Without a feed (a stage built alone) nothing is known to be on its way.
    package var onTheirWay: Int { max(0, self.entered - self.held - self.passed) }

    package mutating func requestEntered() {
        self.entered += 1
    }

    /// A request that entered left the stretch: answered, or refused before it got here.
    package mutating func requestLeft() -> Dispatch? {
        self.entered -= 1
        if self.passed > 0 { self.passed -= 1 }
        return self.dispatchIfIdle(senderIsNewest: false)
    }

    /// A request arrived and nothing is waiting here: if it would go at once
    /// and alone, it is counted as sent (its caller sends it, then reports
    /// `sendFinished(answered: 1)`) and the trigger is returned; no waiter
    /// is needed. Otherwise nothing changes, and it goes through `requestArrived`.
    package mutating func requestGoesAlone(items: Int, memoryTight: Bool = false) -> Trigger? {
        guard self.requests.isEmpty else { return nil }
        let trigger: Trigger
        if self.stopping {
            trigger = .stopping
        } else if self.policy.sendBatchSize > 0 && items >= self.policy.sendBatchSize {
            trigger = .size
        } else if self.policy.timeout <= .zero {
            trigger = .timeout
        } else if memoryTight {
            trigger = .memory
        } else if self.sending < self.policy.concurrentSends && self.entered - (self.held + 1) - self.passed <= 0 {
            trigger = .idle
        } else {
            return nil
        }
        self.held += 1
        self.sending += 1
        return trigger
    }

    /// A request arrived. If its batch goes now, the dispatch names this
    /// request's own waiter as the sender (no other task is woken to send).
    /// Otherwise it waits, and `armTimer` asks for a `tick` at that instant.
    package mutating func requestArrived(
        _ request: Request, items: Int, waiter: Waiter, now: ContinuousClock.Instant, memoryTight: Bool = false
    ) -> (dispatch: Dispatch?, armTimer: ContinuousClock.Instant?) {
        self.held += 1
        self.requests.append(request)
        self.waiters.append(waiter)
        self.items += items
        if self.deadline == nil { self.deadline = now + self.policy.timeout }
        if self.stopping { return (self.take(.stopping, senderIsNewest: true), nil) }
        if self.policy.sendBatchSize > 0 && self.items >= self.policy.sendBatchSize { return (self.take(.size, senderIsNewest: true), nil) }
        if self.policy.timeout <= .zero { return (self.take(.timeout, senderIsNewest: true), nil) }
        if memoryTight { return (self.take(.memory, senderIsNewest: true), nil) }
        if let dispatch = self.dispatchIfIdle(senderIsNewest: true) { return (dispatch, nil) }
        guard self.timerAt == nil, let deadline = self.deadline else { return (nil, nil) }
        self.timerAt = deadline
        return (nil, deadline)
    }

    /// A send finished and its requests were answered.
    package mutating func sendFinished(answered count: Int) -> Dispatch? {
        self.sending -= 1
        self.held -= count
        self.passed = min(self.passed + count, max(0, self.entered - self.held))
        return self.dispatchIfIdle(senderIsNewest: false)
    }

    /// The armed timer fired: the open batch goes if its deadline passed;
    /// otherwise (a later batch than the timer was armed for) the timer is armed again.
    package mutating func tick(now: ContinuousClock.Instant) -> (dispatch: Dispatch?, armTimer: ContinuousClock.Instant?) {
        self.timerAt = nil
        guard let deadline = self.deadline else { return (nil, nil) }
        if now >= deadline { return (self.take(.timeout, senderIsNewest: false), nil) }
        self.timerAt = deadline
        return (nil, deadline)
    }

    /// Shutdown or reload: what is held goes now, and later requests at once.
    package mutating func stopHolding() -> Dispatch? {
        self.stopping = true
        return self.requests.isEmpty ? nil : self.take(.stopping, senderIsNewest: false)
    }

    private mutating func dispatchIfIdle(senderIsNewest: Bool) -> Dispatch? {
        guard !self.requests.isEmpty, self.sending < self.policy.concurrentSends, self.onTheirWay == 0 else { return nil }
        return self.take(.idle, senderIsNewest: senderIsNewest)
    }

    private mutating func take(_ trigger: Trigger, senderIsNewest: Bool) -> Dispatch {
        var waiters = self.waiters
        self.waiters = []
        let requests = self.requests
        self.requests = []
        let sender = senderIsNewest ? waiters.removeLast() : waiters.removeFirst()
        let dispatch = Dispatch(sender: sender, waiters: waiters, requests: requests, trigger: trigger)
        self.items = 0
        self.deadline = nil
        self.sending += 1
        return dispatch
    }
}

extension BatchStateMachine: Sendable where Request: Sendable, Waiter: Sendable {}
extension BatchStateMachine.Dispatch: Sendable where Request: Sendable, Waiter: Sendable {}
