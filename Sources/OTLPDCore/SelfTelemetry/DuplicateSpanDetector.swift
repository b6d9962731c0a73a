import Synchronization

/// Tells whether a span (by a 64-bit fingerprint of its trace and span ids)
/// was seen recently, in bounded memory: two generations of open-addressing
/// tables. A fingerprint is looked up in both and recorded in the current
/// one; when the current table is half full or `window` has passed, it
/// becomes the previous one and a fresh table starts. So a repeat is caught
/// if it comes within one to two windows (shorter under heavy load), and
/// memory stays at 2 x capacity x 8 bytes.
public final class DuplicateSpanDetector: Sendable {
    struct Generations {
        var current: [UInt64]
        var previous: [UInt64]
        var count = 0
        var started: ContinuousClock.Instant
    }

    private let state: Mutex<Generations>
    private let mask: Int
    private let window: Duration

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = 1 << 17, window: Duration = .seconds(60)) {
        var size = 16
        while size < capacity { size <<= 1 }
        self.mask = size - 1
        self.window = window
        self.state = Mutex(Generations(current: Array(repeating: 0, count: size), previous: Array(repeating: 0, count: size), started: .now))
    }

    /// Runs `body` with a check (under one lock) that records a fingerprint
    /// and says whether it was seen before. Fingerprint 0 is never recorded.
    public func withCheck<Result>(_ body: (_ seenBefore: (UInt64) -> Bool) -> Result) -> Result {
        self.state.withLock { generations in
            if ContinuousClock.now - generations.started > self.window { self.rotate(&generations) }
            return body { fingerprint in
                guard fingerprint != 0 else { return false }
                if Self.contains(generations.previous, fingerprint, mask: self.mask) { return true }
                if Self.insert(&generations.current, fingerprint, mask: self.mask) { return true }
                generations.count += 1
                if generations.count > (self.mask + 1) / 2 { self.rotate(&generations) }
                return false
            }
        }
    }

    private func rotate(_ generations: inout Generations) {
        swap(&generations.current, &generations.previous)
        for index in generations.current.indices { generations.current[index] = 0 }
        generations.count = 0
        generations.started = .now
    }

    private static func contains(_ table: [UInt64], _ fingerprint: UInt64, mask: Int) -> Bool {
        var slot = Int(truncatingIfNeeded: fingerprint) & mask
        while true {
            let value = table[slot]
            if value == fingerprint { return true }
            if value == 0 { return false }
            slot = (slot + 1) & mask
        }
    }

    /// Records a fingerprint; true if it was already there.
    private static func insert(_ table: inout [UInt64], _ fingerprint: UInt64, mask: Int) -> Bool {
        var slot = Int(truncatingIfNeeded: fingerprint) & mask
        while true {
            let value = table[slot]
            if value == fingerprint { return true }
            if value == 0 {
                table[slot] = fingerprint
                return false
            }
            slot = (slot + 1) & mask
        }
    }
}
