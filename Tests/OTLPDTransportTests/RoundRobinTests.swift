import OTLPDTransport
import Testing

struct RoundRobinTests {
    @Test("values in turn; an update keeps those that stay, adds the new and returns those that left")
    func rotation() {
        var made: [String] = []
        var rotation = RoundRobin<String>()
        #expect(rotation.next() == nil)
        _ = rotation.update(["a", "b", "c"]) { made.append($0); return "client-\($0)" }
        #expect((0..<6).map { _ in rotation.next()! } == ["client-a", "client-b", "client-c", "client-a", "client-b", "client-c"])
        let removed = rotation.update(["c", "d"]) { made.append($0); return "client-\($0)" }
        #expect(Set(removed) == ["client-a", "client-b"])
        #expect(made == ["a", "b", "c", "d"], "c's client is kept, not made again")
        #expect(Set((0..<4).map { _ in rotation.next()! }) == ["client-c", "client-d"])
        #expect(Set(rotation.removeAll()) == ["client-c", "client-d"] && rotation.isEmpty)
    }

    @Test("the next eligible value in turn: ineligible keys are skipped, and the turn moves past the one given")
    func eligible() {
        var rotation = RoundRobin<String>()
        _ = rotation.update(["a", "b", "c"]) { "client-\($0)" }
        #expect(rotation.next { $0 != "a" }?.0 == "b")
        #expect(rotation.next { $0 != "a" }?.0 == "c")
        #expect(rotation.next { $0 != "a" }?.0 == "b", "a is skipped every time")
        #expect(rotation.next { _ in false } == nil)
        #expect(rotation.next()! == "client-c", "a skip-less turn goes on after the last one given")
    }
}
