import OTLPDCore

/// A service's items over the last 10 minutes in 10-second slots: the
/// status page's rates (over the last minute) and sparkline. Kept by
/// absolute slot number, so slots a quiet service skipped read as zero.
package struct ActivityHistory: Sendable, Equatable {
    static let slots = 60
    package static let slotNanoseconds: Int64 = 10_000_000_000

    /// Per slot: spans, metric points, log records.
    private var counts: [SIMD3<Int64>] = []
    /// The absolute slot (time / slot length) of the latest write.
    private var latest: Int64 = 0
    /// When the first item came: a service seen for 5 s has its rate over those 5 s, not over a minute.
    private var firstSeen: Int64 = 0

    package init() {}

    package mutating func add(_ signal: Signal, _ items: Int, at now: Int64) {
        let slot = now / Self.slotNanoseconds
        if self.counts.isEmpty {
            self.counts = Array(repeating: .zero, count: Self.slots)
            self.latest = slot
            self.firstSeen = now
        }
        if slot > self.latest {
            // Slots skipped since the latest write are emptied (all of them after a long silence).
            for skipped in (self.latest + 1)...min(slot, self.latest + Int64(Self.slots)) {
                self.counts[Int(skipped % Int64(Self.slots))] = .zero
            }
            self.latest = slot
        }
        guard slot > self.latest - Int64(Self.slots) else { return }
        let index = Int(slot % Int64(Self.slots))
        switch signal {
        case .traces: self.counts[index].x += Int64(items)
        case .metrics: self.counts[index].y += Int64(items)
        case .logs: self.counts[index].z += Int64(items)
        }
    }

    /// Totals per slot, oldest first, ending with the slot of `now`.
    func series(at now: Int64) -> [SIMD3<Int64>] {
        let current = now / Self.slotNanoseconds
        return (0..<Int64(Self.slots)).map { back in
            let slot = current - Int64(Self.slots) + 1 + back
            guard !self.counts.isEmpty, slot <= self.latest, slot > self.latest - Int64(Self.slots) else { return .zero }
            return self.counts[Int(slot % Int64(Self.slots))]
        }
    }

    /// Items per second over the last minute: the last six slots (the
    /// current one partly gone by), over the time they cover since the first item.
    package func perSecond(at now: Int64) -> SIMD3<Double> {
        guard !self.counts.isEmpty else { return .zero }
        let total = self.series(at: now).suffix(6).reduce(SIMD3<Int64>.zero, &+)
        let windowStart = max((now / Self.slotNanoseconds - 5) * Self.slotNanoseconds, self.firstSeen)
        let seconds = max(1, Double(now - windowStart) / 1e9)
        return SIMD3(Double(total.x), Double(total.y), Double(total.z)) / seconds
    }
}
