import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDSystem

/// One exporter's persistent queue for one signal: its folder claimed by a
/// lock file, its log with group commit, and its delivery. Open once in the
/// process: a reload's new exporter attaches to the queue its predecessor
/// has open (a second open of the folder would meet the lock), takes over
/// the sending, and the queue closes when its last exporter detaches.
package final class PersistentQueue: Sendable {
    package let directory: String
    let signal: Signal
    let writer: DurableLogWriter
    let delivery: PersistentDelivery
    private let lock: DirectoryLock
    /// The exporters attached, the newest last: it sends.
    private let routes: NIOLockedValueBox<[(owner: ObjectIdentifier, route: Route)]>
    /// Requests and bytes not yet confirmed, and how many requests may wait (`queue_size`).
    private let depth: NIOLockedValueBox<(records: Int, bytes: Int, capacity: Int)>
    /// What recovery found when the folder was opened.
    package let recovery: SegmentLog.Recovery

    /// How an exporter sends a record and keeps a refused one.
    package struct Route: Sendable {
        package var send: PersistentDelivery.Send
        package var deadLetter: PersistentDelivery.DeadLetter

        package init(send: @escaping PersistentDelivery.Send, deadLetter: @escaping PersistentDelivery.DeadLetter) {
            self.send = send
            self.deadLetter = deadLetter
        }
    }

    /// The queues open in this process, by folder.
    private static let open = NIOLockedValueBox<[String: PersistentQueue]>([:])

    /// What `attach` needs to open a folder that is not open yet.
    package struct Settings: Sendable {
        package var directory: String
        package var signal: Signal
        package var fsync: Bool
        package var budget: DiskBudget
        package var consumers: Int
        package var capacity: Int
        package var retry: RetryPolicy
        /// Counts its group commits (`otlpd_exporter_queue_syncs_total`).
        package var syncCounter: TelemetryCounter?

        package init(
            directory: String, signal: Signal, fsync: Bool, budget: DiskBudget, consumers: Int, capacity: Int, retry: RetryPolicy,
            syncCounter: TelemetryCounter? = nil
        ) {
            self.syncCounter = syncCounter
            self.directory = directory
            self.signal = signal
            self.fsync = fsync
            self.budget = budget
            self.consumers = consumers
            self.capacity = capacity
            self.retry = retry
        }
    }

    private init(_ settings: Settings) throws(PersistentQueueError) {
        let directory = settings.directory
        do {
            try FileOperations.makeDirectories(forFile: directory + "/.lock")
        } catch {
            throw PersistentQueueError("cannot create the queue folder \(directory): \(error)")
        }
        do {
            self.lock = try DirectoryLock(directory: directory)
        } catch {
            let holder = (try? FileOperations.readAll(directory + "/.lock")).map { String(decoding: $0, as: UTF8.self).filter(\.isNumber) } ?? ""
            throw PersistentQueueError(
                "the queue folder \(directory) is in use by another otlpd\(holder.isEmpty ? "" : " (pid \(holder))"); "
                    + "give each otlpd its own file_storage directory (\(error))")
        }
        let log: SegmentLog
        do {
            // Space comes back a segment at a time: small enough segments that a full queue frees some soon.
            log = try SegmentLog(directory: directory, segmentLimit: min(64 << 20, max(256 << 10, settings.budget.limit / 16)))
        } catch {
            throw PersistentQueueError("cannot open the queue in \(directory): \(error)")
        }
        self.directory = directory
        self.signal = settings.signal
        self.recovery = log.recovery
        self.depth = NIOLockedValueBox((log.pendingAtOpen.records, log.pendingAtOpen.bytes, settings.capacity))
        self.writer = DurableLogWriter(log: log, fsync: settings.fsync, budget: settings.budget, syncCounter: settings.syncCounter)
        let routes = NIOLockedValueBox<[(owner: ObjectIdentifier, route: Route)]>([])
        self.routes = routes
        let depth = self.depth
        // The closures hold the route list and the counts, not the queue: no cycle.
        self.delivery = PersistentDelivery(
            writer: self.writer, signal: settings.signal, consumers: settings.consumers, retry: settings.retry,
            send: { batch in
                guard let route = routes.withLockedValue({ $0.last?.route }) else { return .failed(AttemptFailure(retryable: true, status: "closing", message: "no exporter attached")) }
                return await route.send(batch)
            },
            deadLetter: { batch, failure in
                guard let route = routes.withLockedValue({ $0.last?.route }) else { return false }
                return await route.deadLetter(batch, failure)
            },
            onConfirmed: { records, bytes in
                depth.withLockedValue { depth in
                    depth.records = max(0, depth.records - records)
                    depth.bytes = max(0, depth.bytes - bytes)
                }
            })
    }

    /// The queue of `settings.directory`, opened (and its delivery started)
    /// if no exporter of this process has it open; `owner` sends its records from now on.
    package static func attach(_ settings: Settings, owner: AnyObject, route: Route) throws(PersistentQueueError) -> (
        queue: PersistentQueue, opened: Bool
    ) {
        let key = settings.directory
        let result: Result<(PersistentQueue, Bool), PersistentQueueError> = Self.open.withLockedValue { open in
            if let queue = open[key] {
                queue.depth.withLockedValue { $0.capacity = settings.capacity }
                return .success((queue, false))
            }
            do throws(PersistentQueueError) {
                let queue = try PersistentQueue(settings)
                open[key] = queue
                return .success((queue, true))
            } catch {
                return .failure(error)
            }
        }
        let (queue, opened) = try result.get()
        queue.routes.withLockedValue { $0.append((ObjectIdentifier(owner), route)) }
        if opened { queue.delivery.start() }
        return (queue, opened)
    }

    /// `owner` leaves. The last one closes the queue: the delivery goes on
    /// until the log is empty, an attempt fails, or `deadline`; what is not
    /// confirmed stays on disk for the next start.
    package func detach(owner: AnyObject, deadline: ContinuousClock.Instant) async {
        let token = ObjectIdentifier(owner)
        let last = Self.open.withLockedValue { open -> Bool in
            let last = self.routes.withLockedValue { routes -> Bool in
                guard routes.contains(where: { $0.owner != token }) else { return true }
                routes.removeAll { $0.owner == token }
                return false
            }
            if last { open[self.directory] = nil }
            return last
        }
        guard last else { return }
        // The leaving exporter's route serves until the drain ends.
        await self.delivery.stop(drainUntil: deadline)
        self.routes.withLockedValue { $0.removeAll() }
        await self.writer.close()
        self.lock.release()
    }

    /// Puts a batch in the log; returns once it is durable (the client may be answered).
    package func append(_ batch: TelemetryBatch) async throws(ConsumeError) {
        let bytes = batch.byteCount + SegmentLog.headerBytes
        let (admitted, capacity) = self.depth.withLockedValue { depth -> (Bool, Int) in
            guard depth.records < depth.capacity else { return (false, depth.capacity) }
            depth.records += 1
            depth.bytes += bytes
            return (true, depth.capacity)
        }
        guard admitted else {
            throw .retryable(
                "the persistent queue holds as many requests as its queue_size allows (\(capacity)); retry later",
                after: .seconds(5), code: ConsumeError.resourceExhausted)
        }
        do {
            _ = try await self.writer.append(batch.parts, items: batch.itemCount)
        } catch {
            self.depth.withLockedValue { depth in
                depth.records -= 1
                depth.bytes -= bytes
            }
            throw error
        }
        self.delivery.notify()
    }

    /// Requests not yet confirmed, their bytes, and when the oldest was appended (Unix nanoseconds).
    package var pending: (records: Int, bytes: Int, oldest: Int64?) {
        let (records, bytes) = self.depth.withLockedValue { ($0.records, $0.bytes) }
        return (records, bytes, records > 0 ? self.delivery.oldestPending : nil)
    }

    package var syncCount: Int { self.writer.syncCount }
}

package struct PersistentQueueError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
