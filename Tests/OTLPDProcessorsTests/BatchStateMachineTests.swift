import OTLPDProcessors
import Testing

/// The batch's group commit, event by event, with the clock passed in: no test sleeps.
struct BatchStateMachineTests {
    /// Requests are names, waiters the same names: a dispatch says who sends and who is answered.
    typealias Machine = BatchStateMachine<String, String>

    let t0 = ContinuousClock.now

    func machine(size: Int = 8192, timeout: Duration = .milliseconds(200), concurrentSends: Int = 1) -> Machine {
        Machine(policy: .init(sendBatchSize: size, timeout: timeout, concurrentSends: concurrentSends))
    }

    /// Enters the request into the stretch before the batch, as the pipeline's feed does, and lets it arrive.
    func arrive(_ machine: inout Machine, _ name: String, items: Int = 10, at offset: Duration = .zero, enter: Bool = true)
        -> (dispatch: Machine.Dispatch?, armTimer: ContinuousClock.Instant?)
    {
        if enter { machine.requestEntered() }
        return machine.requestArrived(name, items: items, waiter: name, now: self.t0 + offset)
    }

    @Test("a request with no other on its way goes at once, sent by its own task")
    func loneRequestGoesAtOnce() throws {
        var machine = self.machine()
        let (dispatch, timer) = self.arrive(&machine, "a")
        let sent = try #require(dispatch)
        #expect(sent.sender == "a" && sent.waiters.isEmpty && sent.requests == ["a"] && sent.trigger == .idle)
        #expect(timer == nil)
        #expect(machine.sending == 1)
        #expect(machine.sendFinished(answered: sent.count) == nil)
        #expect(machine.requestLeft() == nil)
        #expect(machine.sending == 0 && machine.onTheirWay == 0)
    }

    @Test("two overlapping requests merge: the first waits for the second, which sends both")
    func overlappingRequestsMerge() throws {
        var machine = self.machine()
        machine.requestEntered()
        machine.requestEntered()
        let first = machine.requestArrived("a", items: 10, waiter: "a", now: self.t0)
        #expect(first.dispatch == nil)
        #expect(first.armTimer == self.t0 + .milliseconds(200))
        #expect(machine.onTheirWay == 1)
        let arrival = machine.requestArrived("b", items: 10, waiter: "b", now: self.t0 + .milliseconds(1))
        let second = try #require(arrival.dispatch)
        #expect(second.sender == "b" && second.waiters == ["a"] && second.requests == ["a", "b"] && second.trigger == .idle)
    }

    @Test("a request refused on its way (before the batch) lets the waiting batch go")
    func refusedOnTheWay() throws {
        var machine = self.machine()
        machine.requestEntered()
        #expect(self.arrive(&machine, "a").dispatch == nil)
        let left = machine.requestLeft()
        let dispatch = try #require(left)
        #expect(dispatch.sender == "a" && dispatch.requests == ["a"])
    }

    @Test("a full batch goes at its size, even with requests on their way and a send under way")
    func fullBatchGoesAtItsSize() throws {
        var machine = self.machine(size: 25)
        let first = try #require(self.arrive(&machine, "a").dispatch)  // under way from here on
        machine.requestEntered()  // one more on its way
        #expect(self.arrive(&machine, "b").dispatch == nil)
        #expect(self.arrive(&machine, "c").dispatch == nil)
        let full = try #require(self.arrive(&machine, "d", items: 5).dispatch)
        #expect(full.trigger == .size && full.requests == ["b", "c", "d"] && full.sender == "d")
        #expect(machine.sending == 2)
        _ = first
    }

    @Test("a slow writer makes the next batch grow, and it goes when the writer returns")
    func slowWriterGrowsTheNextBatch() throws {
        var machine = self.machine()
        let first = try #require(self.arrive(&machine, "a").dispatch)
        #expect(first.requests == ["a"])
        for (index, name) in ["b", "c", "d"].enumerated() {
            #expect(self.arrive(&machine, name, at: .milliseconds(index)).dispatch == nil, "\(name) waits while a's send is under way")
        }
        // a's send returns; a's request is answered but not yet out of the pipeline.
        let finished = machine.sendFinished(answered: first.count)
        let next = try #require(finished)
        #expect(next.requests == ["b", "c", "d"] && next.sender == "b" && next.waiters == ["c", "d"] && next.trigger == .idle)
    }

    @Test("the next batch waits, after a send, for a request still on its way; its arrival sends")
    func afterASendWaitForRequestsOnTheirWay() throws {
        var machine = self.machine()
        let first = try #require(self.arrive(&machine, "a").dispatch)
        #expect(self.arrive(&machine, "b").dispatch == nil)
        machine.requestEntered()  // c: received, in a processor before the batch
        #expect(machine.sendFinished(answered: first.count) == nil)
        // a's answer is leaving: it was the only other request counted.
        #expect(machine.requestLeft() == nil, "c is still on its way")
        let both = try #require(self.arrive(&machine, "c", enter: false).dispatch)
        #expect(both.requests == ["b", "c"] && both.sender == "c")
    }

    @Test("timeout bounds the wait when a request is in flight elsewhere")
    func timeoutBoundsTheWait() throws {
        var machine = self.machine(timeout: .milliseconds(200))
        machine.requestEntered()  // on its way, never arrives (a slow processor before the batch)
        let (dispatch, timer) = self.arrive(&machine, "a")
        #expect(dispatch == nil)
        let armed = try #require(timer)
        #expect(armed == self.t0 + .milliseconds(200))
        let early = machine.tick(now: self.t0 + .milliseconds(199))
        #expect(early.dispatch == nil && early.armTimer == armed)
        let tick = machine.tick(now: self.t0 + .milliseconds(200))
        let due = try #require(tick.dispatch)
        #expect(due.trigger == .timeout && due.requests == ["a"] && due.sender == "a")
    }

    @Test("one timer at a time: a timer armed for a batch that went early is armed again for the next")
    func oneTimerAtATime() throws {
        var machine = self.machine(timeout: .milliseconds(200))
        machine.requestEntered()
        let first = self.arrive(&machine, "a")
        #expect(first.armTimer == self.t0 + .milliseconds(200))
        _ = try #require(self.arrive(&machine, "b", at: .milliseconds(10), enter: false).dispatch)  // a and b went together
        machine.requestEntered()
        let later = self.arrive(&machine, "c", at: .milliseconds(100))
        #expect(later.dispatch == nil && later.armTimer == nil, "a timer is already armed")
        let fired = machine.tick(now: self.t0 + .milliseconds(200))
        #expect(fired.dispatch == nil && fired.armTimer == self.t0 + .milliseconds(300))
        let tick = machine.tick(now: self.t0 + .milliseconds(300))
        let due = try #require(tick.dispatch)
        #expect(due.requests == ["c"] && due.trigger == .timeout)
    }

    @Test("with concurrent sends allowed, a second batch goes while the first is under way")
    func concurrentSends() throws {
        var machine = self.machine(concurrentSends: 2)
        _ = try #require(self.arrive(&machine, "a").dispatch)
        let second = try #require(self.arrive(&machine, "b").dispatch)
        #expect(second.requests == ["b"])
        #expect(self.arrive(&machine, "c").dispatch == nil, "two sends under way")
    }

    @Test("early sends off: a lone request waits for the timeout, as the Collector's batch does")
    func earlySendsOff() throws {
        var machine = self.machine(concurrentSends: 0)
        let (dispatch, timer) = self.arrive(&machine, "a")
        #expect(dispatch == nil && timer != nil)
        #expect(machine.tick(now: self.t0 + .milliseconds(200)).dispatch?.trigger == .timeout)
    }

    @Test("stopping sends what is held, and every later request at once")
    func stopping() throws {
        var machine = self.machine()
        let first = try #require(self.arrive(&machine, "a").dispatch)
        #expect(self.arrive(&machine, "b").dispatch == nil)
        let stopped = machine.stopHolding()
        let held = try #require(stopped)
        #expect(held.trigger == .stopping && held.requests == ["b"])
        let later = try #require(self.arrive(&machine, "c").dispatch)
        #expect(later.trigger == .stopping && later.requests == ["c"])
        #expect(machine.sending == 3)
        _ = first
    }

    @Test("over the memory limit, a batch goes at once rather than hold memory")
    func memoryTight() throws {
        var machine = self.machine()
        _ = try #require(self.arrive(&machine, "a").dispatch)
        machine.requestEntered()
        let arrival = machine.requestArrived("b", items: 1, waiter: "b", now: self.t0, memoryTight: true)
        let tight = try #require(arrival.dispatch)
        #expect(tight.trigger == .memory && tight.requests == ["b"])
    }

    @Test("timeout zero sends every request at once")
    func zeroTimeout() throws {
        var machine = self.machine(timeout: .zero)
        machine.requestEntered()
        let dispatch = try #require(self.arrive(&machine, "a").dispatch)
        #expect(dispatch.trigger == .timeout)
    }

    @Test("a request that would go at once and alone needs no waiter; otherwise it takes the arrival path and nothing changed")
    func goesAlone() throws {
        var machine = self.machine()
        machine.requestEntered()
        #expect(machine.requestGoesAlone(items: 10) == .idle)
        #expect(machine.sending == 1)
        machine.requestEntered()
        #expect(machine.requestGoesAlone(items: 10) == nil, "a send is under way")
        #expect(self.arrive(&machine, "b", enter: false).dispatch == nil)
        #expect(machine.requestGoesAlone(items: 10) == nil, "b is waiting: a newcomer joins its batch")
        let finished = machine.sendFinished(answered: 1)
        let next = try #require(finished)
        #expect(next.requests == ["b"] && next.trigger == .idle)
        #expect(machine.requestLeft() == nil)
        #expect(machine.sendFinished(answered: next.count) == nil)
        #expect(machine.requestLeft() == nil)
        machine.requestEntered()
        machine.requestEntered()
        #expect(machine.requestGoesAlone(items: 10) == nil, "another request is on its way")
        #expect(machine.requestGoesAlone(items: 9000) == .size, "a request of send_batch_size goes alone anyway")
    }
}
