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
/// nothing of it was acknowledged. `maxBytes` bounds the log on disk: a
/// record that would pass it is refused at once, retryably.
package final class DurableLogWriter: Sendable {
    /// The log, used only by the one drain that runs at a time (and by the reader, under the same lock).
    private let log: NIOLockedValueBox<SegmentLog>
    private let fsync: Bool
    private let maxBytes: Int
    private let threadPool: NIOThreadPool
    /// Called before each group's sync: where tests inject a file system error.
    private let beforeSync: (@Sendable () throws(SystemError) -> Void)?
    private let queue = NIOLockedValueBox(Queue())

    private struct Queue {
        var pending: [[ByteBuffer]] = []
        var waiters: [CheckedContinuation<Result<LogPosition, ConsumeError>, Never>] = []
        var draining = false
        /// Bytes on disk plus those waiting to be written.
        var bytes = 0
        var syncs = 0
    }

    package init(
        log: SegmentLog, fsync: Bool = true, maxBytes: Int = .max, threadPool: NIOThreadPool = .singleton,
        beforeSync: (@Sendable () throws(SystemError) -> Void)? = nil
    ) {
        self.queue.withLockedValue { $0.bytes = log.bytesOnDisk }
        self.log = NIOLockedValueBox(log)
        self.fsync = fsync
        self.maxBytes = maxBytes
        self.threadPool = threadPool
        self.beforeSync = beforeSync
    }

    /// How many groups were put on disk so far.
    package var syncCount: Int { self.queue.withLockedValue { $0.syncs } }

    /// Runs `body` with the log (for the reader and for confirming), between drains' groups.
    package func withLog<Result>(_ body: (inout SegmentLog) throws -> Result) rethrows -> Result {
        try self.log.withLockedValue { try body(&$0) }
    }

    /// Appends one record (`parts` one after another) and returns once it is durable.
    package func append(_ parts: [ByteBuffer]) async throws(ConsumeError) -> LogPosition {
        let size = parts.reduce(0) { $0 + $1.readableBytes } + 8
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<LogPosition, ConsumeError>, Never>) in
            let (admitted, startDrain) = self.queue.withLockedValue { queue -> (Bool, Bool) in
                guard queue.bytes + size <= self.maxBytes else { return (false, false) }
                queue.bytes += size
                queue.pending.append(parts)
                queue.waiters.append(continuation)
                if queue.draining { return (true, false) }
                queue.draining = true
                return (true, true)
            }
            if !admitted {
                continuation.resume(
                    returning: .failure(.retryable("the persistent queue is full (max_size \(self.maxBytes) bytes); retry later", after: .seconds(5))))
            } else if startDrain {
                self.threadPool.submit { _ in self.drain() }
            }
        }
        return try result.get()
    }

    /// The log's bytes shrank (segments confirmed and deleted).
    package func reclaimed(_ bytes: Int) {
        self.queue.withLockedValue { $0.bytes = max(0, $0.bytes - bytes) }
    }

    /// Writes and syncs group after group until nothing waits.
    private func drain() {
        while true {
            let (records, waiters) = self.queue.withLockedValue { queue -> ([[ByteBuffer]], [CheckedContinuation<Result<LogPosition, ConsumeError>, Never>]) in
                if queue.pending.isEmpty {
                    queue.draining = false
                    return ([], [])
                }
                defer {
                    queue.pending.removeAll(keepingCapacity: true)
                    queue.waiters.removeAll(keepingCapacity: true)
                }
                return (queue.pending, queue.waiters)
            }
            guard !records.isEmpty else { return }
            let outcome: Result<[LogPosition], SystemError> = self.log.withLockedValue { log in
                let start = log.end
                do throws(SystemError) {
                    var ends: [LogPosition] = []
                    for record in records { ends.append(try log.append(record)) }
                    try self.beforeSync?()
                    if self.fsync { try log.sync() }
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
                for (waiter, end) in zip(waiters, ends) { waiter.resume(returning: .success(end)) }
            case .failure(let error):
                let size = records.reduce(0) { $0 + $1.reduce(8) { $0 + $1.readableBytes } }
                self.queue.withLockedValue { $0.bytes = max(0, $0.bytes - size) }
                let refusal = ConsumeError.retryable(
                    "the persistent queue could not write the data (\(error)); nothing was kept, retry later", after: .seconds(5))
                for waiter in waiters { waiter.resume(returning: .failure(refusal)) }
            }
        }
    }
}
