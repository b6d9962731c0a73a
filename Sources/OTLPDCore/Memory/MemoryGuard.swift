import Synchronization

/// The bytes of telemetry otlpd holds (request bodies being received,
/// decompressed requests in the pipeline, batches waiting) counted as they
/// come and go, against the limits of the `memory_limiter`. Admission is
/// decided from this count at once, with no collector to wait for: over
/// the soft limit new requests are refused, over the hard limit a body
/// still arriving is refused too.
public final class MemoryGuard: Sendable {
    /// One `memory_limiter`'s limits, in bytes.
    public struct Limits: Sendable, Equatable {
        public var hard: Int
        public var soft: Int
        /// How long a refused client is told to wait.
        public var retryAfter: Duration

        public init(hard: Int, soft: Int, retryAfter: Duration) {
            self.hard = hard
            self.soft = soft
            self.retryAfter = retryAfter
        }
    }

    private let held = Atomic<Int>(0)
    private let hardLimit = Atomic<Int>(Int.max)
    private let softLimit = Atomic<Int>(Int.max)
    /// Set by a memory_limiter whose process-size check is over its limit.
    private let residentOver = Atomic<Bool>(false)
    private let retryAfterSeconds = Atomic<Int>(1)
    private let registered = Mutex<[ObjectIdentifier: Limits]>([:])

    public init() {}

    public var heldBytes: Int { self.held.load(ordering: .relaxed) }
    public var limits: Limits? {
        let hard = self.hardLimit.load(ordering: .relaxed)
        guard hard != Int.max else { return nil }
        return Limits(hard: hard, soft: self.softLimit.load(ordering: .relaxed), retryAfter: self.retryAfter)
    }

    /// Whether a new request is refused now.
    public var isRefusing: Bool {
        self.residentOver.load(ordering: .relaxed) || self.held.load(ordering: .relaxed) >= self.softLimit.load(ordering: .relaxed)
    }

    /// Whether a limiter's process-size check found the process over its limit.
    public var isResidentOver: Bool { self.residentOver.load(ordering: .relaxed) }

    public var retryAfter: Duration { .seconds(self.retryAfterSeconds.load(ordering: .relaxed)) }

    /// Counts `bytes` more of request bodies as held, unless that passes the
    /// soft limit: the room between soft and hard (the spike) is left for
    /// the copies the pipeline makes of what was admitted (merged batches,
    /// rendered output), which are charged as they are made.
    @inline(__always)
    public func hold(_ bytes: Int) -> Bool {
        let total = self.held.add(bytes, ordering: .relaxed).newValue
        if total > self.softLimit.load(ordering: .relaxed) && bytes > 0 {
            self.held.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Whether `bytes` more could be held now (a body announced, not yet
    /// arrived: it is counted as it comes, so a client that announces much
    /// and sends little holds nothing).
    public func hasRoom(for bytes: Int) -> Bool {
        self.held.load(ordering: .relaxed) + bytes <= self.softLimit.load(ordering: .relaxed)
    }

    /// Counts bytes a stage has made and cannot refuse (a merged batch, a
    /// rendered file record), so that admission sees them.
    @inline(__always)
    public func charge(_ bytes: Int) {
        self.held.add(bytes, ordering: .relaxed)
    }

    @inline(__always)
    public func release(_ bytes: Int) {
        self.held.subtract(bytes, ordering: .relaxed)
    }

    /// A memory_limiter's limits take effect; with several, the lowest count.
    public func register(_ owner: AnyObject, _ limits: Limits) {
        self.registered.withLock { $0[ObjectIdentifier(owner)] = limits }
        self.apply()
    }

    public func unregister(_ owner: AnyObject) {
        self.registered.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(owner)) }
        self.apply()
    }

    /// A limiter's process-size check: over its limit, refuse new requests.
    public func setResidentOver(_ over: Bool) {
        self.residentOver.store(over, ordering: .relaxed)
    }

    private func apply() {
        let all = self.registered.withLock { Array($0.values) }
        self.hardLimit.store(all.map(\.hard).min() ?? Int.max, ordering: .relaxed)
        self.softLimit.store(all.map(\.soft).min() ?? Int.max, ordering: .relaxed)
        let seconds = all.map { Int(($0.retryAfter + .milliseconds(999)).components.seconds) }.max() ?? 1
        self.retryAfterSeconds.store(max(1, seconds), ordering: .relaxed)
        if all.isEmpty { self.residentOver.store(false, ordering: .relaxed) }
    }
}
