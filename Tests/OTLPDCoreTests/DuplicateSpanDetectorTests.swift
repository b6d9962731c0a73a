import OTLPDCore
import Testing

struct DuplicateSpanDetectorTests {
    func check(_ detector: DuplicateSpanDetector, _ fingerprints: [UInt64]) -> [Bool] {
        detector.withCheck { seenBefore in fingerprints.map(seenBefore) }
    }

    @Test("a fingerprint seen again is reported, a new one is not, and 0 never is")
    func repeats() {
        let detector = DuplicateSpanDetector(capacity: 64)
        #expect(self.check(detector, [1, 2, 3]) == [false, false, false])
        #expect(self.check(detector, [2, 4, 0, 0]) == [true, false, false, false])
    }

    @Test("memory is bounded: after two generations an old fingerprint is forgotten")
    func bounded() {
        let detector = DuplicateSpanDetector(capacity: 16)
        #expect(self.check(detector, [7]) == [false])
        // 8 new ones fill half the table: a new generation starts, 7 is in the previous one.
        _ = self.check(detector, Array(100..<108))
        #expect(self.check(detector, [7]) == [true])
        // Two more generations: 7 is gone.
        _ = self.check(detector, Array(200..<209))
        _ = self.check(detector, Array(300..<309))
        #expect(self.check(detector, [7]) == [false])
    }

    @Test("the window ends a generation even without load")
    func window() async throws {
        let detector = DuplicateSpanDetector(capacity: 64, window: .milliseconds(20))
        _ = self.check(detector, [42])
        try await Task.sleep(for: .milliseconds(30))
        #expect(self.check(detector, [43]) == [false])  // rotation: 42 moves to the previous generation
        try await Task.sleep(for: .milliseconds(30))
        #expect(self.check(detector, [44]) == [false])  // and out
        #expect(self.check(detector, [42]) == [false])
    }
}

struct KeptTests {
    @Test("fan-out takes the larger rejection, a split adds them up, a merged request's share is capped at its items")
    func combinations() {
        let two = Kept(rejected: 2, message: "old")
        let five = Kept(rejected: 5, message: "late")
        #expect(Kept.all.alongside(.all) == .all)
        #expect(Kept.all.alongside(two) == two)
        #expect(two.alongside(five) == Kept(rejected: 5, message: "old; late"))
        #expect(two.plus(five) == Kept(rejected: 7, message: "old; late"))
        #expect(five.share(of: 3) == Kept(rejected: 3, message: "late"))
        #expect(two.share(of: 3) == two)
    }
}
