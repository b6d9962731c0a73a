import OTLPDCore
import Testing

/// The byte count the memory_limiter admits requests by.
struct MemoryGuardTests {
    final class Owner {}

    @Test("without limits everything is admitted")
    func noLimits() {
        let memory = MemoryGuard()
        #expect(memory.hold(1 << 40))
        #expect(!memory.isRefusing)
        #expect(memory.limits == nil)
        memory.release(1 << 40)
        #expect(memory.heldBytes == 0)
    }

    @Test("bodies are held up to the soft limit; new requests are refused from it; charges count but never fail")
    func softAndHard() {
        let memory = MemoryGuard()
        let owner = Owner()
        memory.register(owner, MemoryGuard.Limits(hard: 100, soft: 80, retryAfter: .seconds(2)))
        #expect(memory.hold(60))
        #expect(!memory.isRefusing)
        #expect(!memory.hold(30))  // 90 would pass the soft limit
        #expect(memory.heldBytes == 60)
        #expect(memory.hold(20))
        #expect(memory.isRefusing)
        memory.charge(50)  // a merged batch: counted even past the hard limit
        #expect(memory.heldBytes == 130)
        memory.release(50)
        memory.release(20)
        #expect(!memory.isRefusing)
        #expect(memory.retryAfter == .seconds(2))
        memory.unregister(owner)
        #expect(memory.hold(1000))
    }

    @Test("with several limiters the lowest limits count, and the longest retry delay")
    func severalLimiters() {
        let memory = MemoryGuard()
        let a = Owner()
        let b = Owner()
        memory.register(a, MemoryGuard.Limits(hard: 100, soft: 80, retryAfter: .seconds(1)))
        memory.register(b, MemoryGuard.Limits(hard: 50, soft: 40, retryAfter: .milliseconds(2500)))
        #expect(memory.limits == MemoryGuard.Limits(hard: 50, soft: 40, retryAfter: .seconds(3)))
        memory.unregister(b)
        #expect(memory.limits?.soft == 80)
    }

    @Test("the resident-size check refuses until it clears, and only while a limiter is registered")
    func residentOver() {
        let memory = MemoryGuard()
        let owner = Owner()
        memory.register(owner, MemoryGuard.Limits(hard: 100, soft: 80, retryAfter: .seconds(1)))
        memory.setResidentOver(true)
        #expect(memory.isRefusing && memory.isResidentOver)
        memory.setResidentOver(false)
        #expect(!memory.isRefusing)
        memory.setResidentOver(true)
        memory.unregister(owner)
        #expect(!memory.isRefusing)
    }
}
