import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCore
import OTLPDSystem

/// Appends to a `SegmentLog` from many requests at once, with one fsync for
/// every request that arrived while the previous fsync ran (group commit):
/// an answer waits for about one fsync, not one per request. Each caller
/// resumes once its record is on disk (with `fsync`; else once it is with
/// the kernel), and gets the position after it.
///
/// The log's calls run on one pool thread at a time, never on an event loop.
/// A write that fails (a full disk) fails its group with a retryable error:
/// nothing of it was acknowledged. A `DiskBudget` (the storage's
/// `max_size`, shared by its queues) bounds the logs on disk: a record that
/// would pass it is refused at once, retryably.
package final class DurableLogWriter: Sendable {
    /// The log, used only by the one drain that runs at a time (and by tests, under the same lock).
    private let log: NIOLockedValueBox<SegmentLog>
    /// The log as of the last sync: what readers read, never past what is durable.
    private let durable: NIOLockedValueBox<SegmentLog>
    private let fsync: Bool
    private let budget: DiskBudget
    private let threadPool: NIOThreadPool
    /// Called before each group's sync: where tests inject a file system error.
    private let beforeSync: (@Sendable () throws(SystemError) -> Void)?
    /// How often, at most, the confirmed position is saved (each save is an fsync'ed rename).
    private let confirmInterval: Duration
    private let logger: Logger?
    /// Counts the groups put on disk, for `/metrics`.
    private let syncCounter: TelemetryCounter?
    private let queue = NIOLockedValueBox(Queue())

    /// The latest durable records, kept as appended (bounded by `recentLimit`
    /// bytes): a delivery that keeps up sends them without reading them back.
    private let recent = NIOLockedValueBox(Recent())
    private let recentLimit: Int

    private struct Recent {
        /// In log order: the position before each record, and the record.
        var entries: [(after: LogPosition, record: LogRecord)] = []
        var first = 0
        var bytes = 0
    }

    private struct Queue {
        var pending: [(parts: [ByteBuffer], items: Int)] = []
        var waiters: [CheckedContinuation<Result<LogPosition, ConsumeError>, Never>] = []
        var draining = false
        var syncs = 0
        /// A confirmed position not saved yet, and when the last one was.
        var confirmTarget: LogPosition?
        var lastConfirmSave: ContinuousClock.Instant?
        var confirmWakeScheduled = false
        var closed = false
    }

    package init(
        log: SegmentLog, fsync: Bool = true, budget: DiskBudget = DiskBudget(limit: .max), threadPool: NIOThreadPool = .singleton,
        confirmInterval: Duration = .milliseconds(100), recentLimit: Int = 16 << 20, logger: Logger? = nil, syncCounter: TelemetryCounter? = nil,
        beforeSync: (@Sendable () throws(SystemError) -> Void)? = nil
    ) {
        self.syncCounter = syncCounter
        self.logger = logger
        self.recentLimit = recentLimit
        budget.claim(log.bytesOnDisk)
        self.log = NIOLockedValueBox(log)
        self.durable = NIOLockedValueBox(log)
        self.fsync = fsync
        self.budget = budget
        self.threadPool = threadPool
        self.confirmInterval = confirmInterval
        self.beforeSync = beforeSync
    }

    /// How many groups were put on disk so far.
    package var syncCount: Int { self.queue.withLockedValue { $0.syncs } }

    /// The log up to its last durable record, for reading.
    package var durableLog: SegmentLog { self.durable.withLockedValue { $0 } }

    /// Runs `body` with the log itself (tests).
    package func withLog<Result>(_ body: (inout SegmentLog) throws -> Result) rethrows -> Result {
        try self.log.withLockedValue { try body(&$0) }
    }

    /// Up to `limit` durable records (and about `maxBytes`) after `position`:
    /// from those kept since their append where the position is among them, else read from disk.
    package func records(after position: LogPosition, limit: Int, maxBytes: Int = .max) throws(SystemError) -> [LogRecord] {
        let kept = self.recent.withLockedValue { recent -> [LogRecord]? in
            let entries = recent.entries
            var (low, high) = (recent.first, entries.count)
            while low < high {
                let middle = (low + high) / 2
                if entries[middle].after < position { low = middle + 1 } else { high = middle }
            }
            guard low < entries.count, entries[low].after == position else { return nil }
            var found: [LogRecord] = []
            var bytes = 0
            for index in low..<entries.count where found.count < limit && bytes < maxBytes {
                found.append(entries[index].record)
                bytes += entries[index].record.byteCount
            }
            return found
        }
        if let kept { return kept }
        return try self.durableLog.records(after: position, limit: limit, maxBytes: maxBytes)
    }

    /// Appends one record (`parts` one after another, `items` in them) and returns once it is durable.
    package func append(_ parts: [ByteBuffer], items: Int = 0) async throws(ConsumeError) -> LogPosition {
        let size = parts.reduce(0) { $0 + $1.readableBytes } + SegmentLog.headerBytes
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<LogPosition, ConsumeError>, Never>) in
            guard self.budget.reserve(size) else {
                return continuation.resume(returning: .failure(self.budget.refusal()))
            }
            let startDrain = self.queue.withLockedValue { queue -> Bool in
                queue.pending.append((parts, items))
                queue.waiters.append(continuation)
                return Self.claimDrain(&queue)
            }
            if startDrain { self.threadPool.submit { _ in self.drain() } }
        }
        return try result.get()
    }

    /// Records up to `position` were confirmed: saved with the next group, at
    /// most every `confirmInterval` (a position lost to a crash only means
    /// records sent again), and the segments wholly before it deleted.
    package func confirm(through position: LogPosition) {
        self.forgetKept(through: position)
        let startDrain = self.queue.withLockedValue { queue -> Bool in
            guard !queue.closed else { return false }
            queue.confirmTarget = max(queue.confirmTarget ?? position, position)
            return Self.claimDrain(&queue)
        }
        if startDrain { self.threadPool.submit { _ in self.drain() } }
    }

    /// Saves the confirmed position now and stops taking confirmations; the
    /// log's bytes stay on disk, no longer this process's to count.
    package func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.threadPool.submit { _ in
                let target = self.queue.withLockedValue { queue -> LogPosition? in
                    queue.closed = true
                    defer { queue.confirmTarget = nil }
                    return queue.confirmTarget
                }
                if let target { self.saveConfirmed(target) }
                self.budget.release(self.log.withLockedValue { $0.bytesOnDisk })
                continuation.resume()
            }
        }
    }

    private static func claimDrain(_ queue: inout Queue) -> Bool {
        if queue.draining { return false }
        queue.draining = true
        return true
    }

    /// Writes and syncs group after group, and saves the confirmed position when due, until nothing waits.
    private func drain() {
        while true {
            let now = ContinuousClock.now
            let (records, waiters, confirm) = self.queue.withLockedValue {
                queue -> ([(parts: [ByteBuffer], items: Int)], [CheckedContinuation<Result<LogPosition, ConsumeError>, Never>], LogPosition?) in
                var confirm: LogPosition?
                if let target = queue.confirmTarget {
                    if queue.lastConfirmSave.map({ now - $0 >= self.confirmInterval }) ?? true {
                        confirm = target
                        queue.confirmTarget = nil
                        queue.lastConfirmSave = now
                    } else if !queue.confirmWakeScheduled {
                        queue.confirmWakeScheduled = true
                        let wake = queue.lastConfirmSave! + self.confirmInterval - now
                        Task {
                            try? await Task.sleep(for: wake)
                            self.confirmWake()
                        }
                    }
                }
                if queue.pending.isEmpty && confirm == nil {
                    queue.draining = false
                    return ([], [], nil)
                }
                defer {
                    queue.pending.removeAll(keepingCapacity: true)
                    queue.waiters.removeAll(keepingCapacity: true)
                }
                return (queue.pending, queue.waiters, confirm)
            }
            if records.isEmpty && confirm == nil { return }
            if !records.isEmpty { self.write(records, waiters) }
            if let confirm { self.saveConfirmed(confirm) }
        }
    }

    private func confirmWake() {
        let startDrain = self.queue.withLockedValue { queue -> Bool in
            queue.confirmWakeScheduled = false
            return queue.confirmTarget != nil && Self.claimDrain(&queue)
        }
        if startDrain { self.threadPool.submit { _ in self.drain() } }
    }

    /// One group: written, synced, published to readers, and its callers resumed.
    private func write(
        _ records: [(parts: [ByteBuffer], items: Int)], _ waiters: [CheckedContinuation<Result<LogPosition, ConsumeError>, Never>]
    ) {
        let now = Timestamp.nowNanoseconds()
        let outcome: Result<[(after: LogPosition, end: LogPosition)], SystemError> = self.log.withLockedValue { log in
            let start = log.end
            do throws(SystemError) {
                var ends: [(after: LogPosition, end: LogPosition)] = []
                for record in records {
                    let after = log.end
                    ends.append((after, try log.append(record.parts, at: now, items: record.items)))
                }
                try self.beforeSync?()
                if self.fsync { try log.sync() }
                self.durable.withLockedValue { $0 = log }
                return .success(ends)
            } catch {
                // Nothing of the group was acknowledged: take it out, so no half record stays behind.
                try? log.rollBack(to: start)
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let ends):
            self.queue.withLockedValue { $0.syncs += 1 }
            self.syncCounter?.add()
            self.keep(zip(records, ends).map { record, position in
                (position.after, LogRecord(end: position.end, parts: record.parts, appendedAt: now, items: record.items))
            })
            for (waiter, position) in zip(waiters, ends) { waiter.resume(returning: .success(position.end)) }
        case .failure(let error):
            self.budget.release(records.reduce(0) { $0 + $1.parts.reduce(SegmentLog.headerBytes) { $0 + $1.readableBytes } })
            let refusal = ConsumeError.retryable(
                "the persistent queue could not write the data (\(error)); nothing was kept, retry later", after: .seconds(5))
            for waiter in waiters { waiter.resume(returning: .failure(refusal)) }
        }
    }

    /// Drops the kept records the upstream has confirmed: the delivery never
    /// needs them again, and kept they would hold up to `recentLimit` per queue for nothing.
    private func forgetKept(through position: LogPosition) {
        self.recent.withLockedValue { recent in
            while recent.first < recent.entries.count && recent.entries[recent.first].record.end <= position {
                recent.bytes -= recent.entries[recent.first].record.byteCount
                recent.entries[recent.first].record.parts = []
                recent.first += 1
            }
            Self.compact(&recent)
        }
    }

    private static func compact(_ recent: inout Recent) {
        if recent.first == recent.entries.count {
            recent.entries.removeAll(keepingCapacity: recent.entries.capacity <= 4096)
            recent.first = 0
        } else if recent.first > 1024 && recent.first * 2 > recent.entries.count {
            recent.entries.removeFirst(recent.first)
            recent.first = 0
        }
    }

    /// Keeps a group's records for the delivery, dropping the oldest past `recentLimit` bytes.
    private func keep(_ records: [(after: LogPosition, record: LogRecord)]) {
        guard self.recentLimit > 0 else { return }
        self.recent.withLockedValue { recent in
            for entry in records {
                recent.entries.append(entry)
                recent.bytes += entry.record.byteCount
            }
            while recent.bytes > self.recentLimit && recent.first < recent.entries.count {
                recent.bytes -= recent.entries[recent.first].record.byteCount
                recent.entries[recent.first].record.parts = []
                recent.first += 1
            }
            Self.compact(&recent)
        }
    }

    private func saveConfirmed(_ position: LogPosition) {
        let (before, after, failure) = self.log.withLockedValue { log -> (Int, Int, SystemError?) in
            let before = log.bytesOnDisk
            do throws(SystemError) {
                try log.confirm(through: position)
            } catch {
                return (before, before, error)
            }
            let after = log.bytesOnDisk
            self.durable.withLockedValue { $0 = log }
            return (before, after, nil)
        }
        if after < before { self.budget.release(before - after) }
        if let failure {
            self.logger?.warning(
                "cannot save the persistent queue's confirmed position; what it confirmed is sent again after a restart",
                metadata: ["error": "\(failure)"])
        }
    }
}

/// The bytes the persistent queues of one storage may hold on disk
/// (`file_storage`'s `max_size`), shared by them all.
package final class DiskBudget: Sendable {
    private let state: NIOLockedValueBox<(used: Int, limit: Int, full: Bool)>

    package init(limit: Int) {
        self.state = NIOLockedValueBox((0, limit, false))
    }

    private static let byDirectory = NIOLockedValueBox<[String: DiskBudget]>([:])

    /// The one budget of a storage folder in this process, with its latest `max_size`.
    package static func shared(for directory: String, limit: Int) -> DiskBudget {
        let budget = Self.byDirectory.withLockedValue { budgets in
            if let budget = budgets[directory] { return budget }
            let budget = DiskBudget(limit: limit)
            budgets[directory] = budget
            return budget
        }
        budget.limit = limit
        return budget
    }

    package var used: Int { self.state.withLockedValue { $0.used } }
    package var limit: Int {
        get { self.state.withLockedValue { $0.limit } }
        set { self.state.withLockedValue { $0.limit = newValue } }
    }

    /// Takes `bytes` if they fit under the limit. Once full, it refuses until
    /// a sixteenth of the limit (a segment) is free again: otherwise small
    /// requests would still fit now and then, and the queue would flap
    /// between full and not, a log line each time.
    package func reserve(_ bytes: Int) -> Bool {
        self.state.withLockedValue { state in
            let room = state.full ? state.limit - state.limit / 16 : state.limit
            guard state.used + bytes <= room else {
                state.full = true
                return false
            }
            state.full = false
            state.used += bytes
            return true
        }
    }

    /// Counts bytes already on disk (a log opened), over the limit or not.
    package func claim(_ bytes: Int) {
        self.state.withLockedValue { $0.used += bytes }
    }

    package func release(_ bytes: Int) {
        self.state.withLockedValue { $0.used = max(0, $0.used - bytes) }
    }

    /// What a client hears when the queue is full: retry later, the same way a full memory queue says it.
    package func refusal() -> ConsumeError {
        let (used, limit) = self.state.withLockedValue { ($0.used, $0.limit) }
        return .retryable(
            "the persistent queue is full (\(ConfigUnits.formatBytes(used)) on disk of max_size \(ConfigUnits.formatBytes(limit))); retry later",
            after: .seconds(5), code: ConsumeError.resourceExhausted)
    }
}
