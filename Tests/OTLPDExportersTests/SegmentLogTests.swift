import Foundation
import NIOCore
import OTLPDCompression
import OTLPDExporters
import OTLPDSystem
import OTLPDCore
import NIOConcurrencyHelpers
import Logging
import OTLPDTestSupport
import Testing

struct SegmentLogTests {
    func record(_ text: String) -> [ByteBuffer] { [ByteBuffer(string: text)] }

    func texts(_ log: SegmentLog, after position: LogPosition) throws -> [String] {
        try log.records(after: position, limit: 1000).map { String(buffer: $0.payload) }
    }

    @Test("CRC-32C matches the standard check value")
    func crc() {
        // "123456789" -> 0xE3069283 (RFC 3720, appendix B.4).
        #expect(CRC32C.checksum([ByteBuffer(string: "123456789")]) == 0xE306_9283)
        #expect(CRC32C.checksum([ByteBuffer(string: "1234"), ByteBuffer(string: "56789")]) == 0xE306_9283)
    }

    @Test("records come back in order across segments, from any position; a reopened log goes on where it ended")
    func appendAndRead() throws {
        let directory = try temporaryDirectory()
        var ends: [LogPosition] = []
        do {
            var log = try SegmentLog(directory: directory, segmentLimit: 64)
            for index in 0..<10 { ends.append(try log.append([ByteBuffer(string: "request-"), ByteBuffer(string: "\(index)")])) }
            try log.sync()
            #expect(log.segments.count > 2, "a 64-byte limit spreads 10 records over several segments")
            #expect(try self.texts(log, after: LogPosition(segment: 0, offset: 0)) == (0..<10).map { "request-\($0)" })
            #expect(try self.texts(log, after: ends[6]) == ["request-7", "request-8", "request-9"])
        }
        var reopened = try SegmentLog(directory: directory, segmentLimit: 64)
        #expect(reopened.end == ends[9] && reopened.recovery == SegmentLog.Recovery())
        try reopened.append(self.record("request-10"))
        #expect(try self.texts(reopened, after: ends[8]) == ["request-9", "request-10"])
    }

    @Test("confirming saves the position and deletes the segments wholly before it; a restart resumes after it")
    func confirmReclaims() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory, segmentLimit: 64)
        var ends: [LogPosition] = []
        for index in 0..<10 { ends.append(try log.append(self.record("request-\(index)"))) }
        try log.sync()
        let before = log.segments.count
        try log.confirm(through: ends[5])
        #expect(log.segments.count < before && log.segments.first == ends[5].segment)
        let reopened = try SegmentLog(directory: directory, segmentLimit: 64)
        #expect(reopened.confirmed == ends[5])
        #expect(try self.texts(reopened, after: reopened.confirmed) == (6..<10).map { "request-\($0)" })
    }

    @Test("a record cut short at the end (kill -9 mid-write) is cut off silently; appends go on after the last whole record")
    func truncatedTail() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory)
        try log.append(self.record("whole"))
        let whole = log.end
        try log.append(self.record("cut short by a crash"))
        try log.sync()
        let segment = "\(directory)/segment-00000000000000000000.log"
        try FileOperations.truncate(segment, to: FileOperations.size(segment)! - 5)
        var reopened = try SegmentLog(directory: directory)
        #expect(reopened.recovery.truncatedBytes == SegmentLog.headerBytes + 20 - 5 && reopened.recovery.quarantined.isEmpty)
        #expect(reopened.end == whole)
        try reopened.append(self.record("after"))
        #expect(try self.texts(reopened, after: LogPosition(segment: 0, offset: 0)) == ["whole", "after"])
    }

    @Test("a flipped byte in a record's middle quarantines that record, once; the others are delivered")
    func checksumFailure() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory)
        for text in ["first", "second", "third"] { try log.append(self.record(text)) }
        try log.sync()
        let segment = "\(directory)/segment-00000000000000000000.log"
        var bytes = try FileOperations.readAll(segment)
        let header = SegmentLog.headerBytes
        bytes[header + 5 + header + 2] ^= 0xFF  // inside "second"'s payload
        try FileOperations.writeAtomically(segment, bytes)
        let reopened = try SegmentLog(directory: directory)
        #expect(reopened.recovery.quarantined.count == 1)
        let quarantined = try FileOperations.readAll(reopened.recovery.quarantined[0])
        #expect(quarantined.count == header + 6, "the whole record is kept aside")
        #expect(try self.texts(reopened, after: LogPosition(segment: 0, offset: 0)) == ["first", "third"])
    }

    @Test("a corrupt length mid-segment quarantines the rest of that segment; later segments are delivered")
    func lostFraming() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory, segmentLimit: 56)
        for text in ["a-record", "b-record", "c-record", "d-record"] { try log.append(self.record(text)) }
        try log.sync()
        #expect(log.segments.count == 2)
        let first = "\(directory)/segment-00000000000000000000.log"
        var bytes = try FileOperations.readAll(first)
        bytes[SegmentLog.headerBytes + 8] = 0xFF  // the second record's length: far past any record
        try FileOperations.writeAtomically(first, bytes)
        let reopened = try SegmentLog(directory: directory, segmentLimit: 56)
        #expect(reopened.recovery.quarantined.count == 1 && reopened.recovery.quarantined[0].hasSuffix("-framing.bin"))
        #expect(try self.texts(reopened, after: LogPosition(segment: 0, offset: 0)) == ["a-record", "c-record", "d-record"])
    }

    @Test("without the confirmed file, everything still on disk is delivered again (at least once)")
    func deletedConfirmedFile() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory)
        var ends: [LogPosition] = []
        for index in 0..<3 { ends.append(try log.append(self.record("request-\(index)"))) }
        try log.sync()
        try log.confirm(through: ends[1])
        try FileOperations.remove("\(directory)/confirmed")
        let reopened = try SegmentLog(directory: directory)
        #expect(try self.texts(reopened, after: reopened.confirmed) == ["request-0", "request-1", "request-2"])
    }

    @Test("a second claim on a queue folder is refused while the first holds it")
    func directoryLock() throws {
        let directory = try temporaryDirectory()
        let first = try DirectoryLock(directory: directory)
        #expect(throws: SystemError.self) { _ = try DirectoryLock(directory: directory) }
        first.release()
        _ = try DirectoryLock(directory: directory)
    }
}

struct DurableLogWriterTests {
    @Test("concurrent appends share fsyncs (group commit), each caller gets its own position, all records readable")
    func groupCommit() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory))
        let ends = try await withThrowingTaskGroup(of: LogPosition.self) { group in
            for index in 0..<200 {
                group.addTask { try await writer.append([ByteBuffer(string: "request-\(index)")]) }
            }
            var ends: [LogPosition] = []
            for try await end in group { ends.append(end) }
            return ends
        }
        #expect(Set(ends).count == 200)
        #expect(writer.syncCount < 200, "fewer fsyncs than requests: \(writer.syncCount)")
        let texts = try writer.withLog { try $0.records(after: LogPosition(segment: 0, offset: 0), limit: 1000) }.map { String(buffer: $0.payload) }
        #expect(Set(texts) == Set((0..<200).map { "request-\($0)" }))
    }

    @Test("a failed sync fails its group retryably and leaves no trace; the next append works")
    func injectedFailure() async throws {
        let directory = try temporaryDirectory()
        let failNext = NIOLockedValueBox(true)
        let writer = DurableLogWriter(
            log: try SegmentLog(directory: directory),
            beforeSync: { () throws(SystemError) in
                if failNext.withLockedValue({ value in defer { value = false }; return value }) {
                    throw SystemError("fsync", path: directory, code: 28)  // ENOSPC
                }
            })
        do {
            _ = try await writer.append([ByteBuffer(string: "lost")])
            Issue.record("expected the injected failure")
        } catch {
            #expect(error.isRetryable && error.message.contains("nothing was kept"))
        }
        _ = try await writer.append([ByteBuffer(string: "kept")])
        let texts = try writer.withLog { try $0.records(after: LogPosition(segment: 0, offset: 0), limit: 10) }.map { String(buffer: $0.payload) }
        #expect(texts == ["kept"])
    }

    @Test("past max_size a record is refused at once, retryably, and taken again once space is reclaimed")
    func full() async throws {
        let directory = try temporaryDirectory()
        let budget = DiskBudget(limit: 60)
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory), budget: budget)
        _ = try await writer.append([ByteBuffer(string: String(repeating: "x", count: 20))])
        await #expect(throws: ConsumeError.self) { _ = try await writer.append([ByteBuffer(string: String(repeating: "y", count: 20))]) }
        budget.release(SegmentLog.headerBytes + 20)
        _ = try await writer.append([ByteBuffer(string: String(repeating: "y", count: 20))])
    }

    @Test("once full, the budget refuses until a sixteenth of max_size is free again, so it does not flap")
    func fullWithHysteresis() {
        let budget = DiskBudget(limit: 1600)
        #expect(budget.reserve(1550))
        #expect(!budget.reserve(100), "past the limit")
        #expect(!budget.reserve(40), "would fit, but the queue is full until 100 bytes (a sixteenth) are free")
        budget.release(50)
        #expect(!budget.reserve(40), "1,500 + 40 is past 1,500, the level it takes requests again at")
        budget.release(60)
        #expect(budget.reserve(40) && budget.reserve(100), "free again: up to the limit")
    }
}

struct PersistentDeliveryTests {
    /// A sender that records payload texts and answers from a script (then confirms).
    final class Upstream: Sendable {
        let state = NIOLockedValueBox<(script: [AttemptOutcome], seen: [String])>(([], []))

        init(_ script: [AttemptOutcome] = []) {
            self.state.withLockedValue { $0.script = script }
        }

        var seen: [String] { self.state.withLockedValue { $0.seen } }

        func send(_ batch: TelemetryBatch) async -> AttemptOutcome {
            self.state.withLockedValue { state in
                state.seen.append(String(buffer: batch.parts[0]))
                return state.script.isEmpty ? .confirmed(nil) : state.script.removeFirst()
            }
        }
    }

    func delivery(_ writer: DurableLogWriter, _ upstream: Upstream, consumers: Int = 1, deadLetters: NIOLockedValueBox<[String]> = NIOLockedValueBox([]))
        -> PersistentDelivery
    {
        var retry = RetryPolicy()
        retry.initialInterval = .milliseconds(5)
        retry.randomizationFactor = 0
        return PersistentDelivery(
            writer: writer, signal: .traces, consumers: consumers, retry: retry,
            send: { await upstream.send($0) },
            deadLetter: { batch, _ in
                deadLetters.withLockedValue { $0.append(String(buffer: batch.parts[0])) }
                return true
            })
    }

    @Test("records go out in order, are confirmed, and a restart sends nothing again")
    func inOrder() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory))
        for index in 0..<5 { _ = try await writer.append([ByteBuffer(string: "r\(index)")]) }
        let upstream = Upstream()
        let first = self.delivery(writer, upstream)
        first.start()
        #expect(await eventually { upstream.seen.count == 5 })
        _ = try await writer.append([ByteBuffer(string: "r5")])
        first.notify()
        #expect(await eventually { upstream.seen.count == 6 && writer.withLog { $0.confirmed } == writer.withLog { $0.end } })
        await first.stop()
        await writer.close()
        #expect(upstream.seen == (0..<6).map { "r\($0)" })
        let again = Upstream()
        let second = self.delivery(DurableLogWriter(log: try SegmentLog(directory: directory)), again)
        second.start()
        try await Task.sleep(for: .milliseconds(50))
        await second.stop()
        #expect(again.seen.isEmpty, "everything was confirmed")
    }

    @Test("retryable failures are retried with no time limit; a permanent refusal is dead-lettered, not re-sent")
    func retryAndDeadLetter() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory))
        _ = try await writer.append([ByteBuffer(string: "flaky")])
        _ = try await writer.append([ByteBuffer(string: "refused")])
        let busy = AttemptOutcome.failed(AttemptFailure(retryable: true, status: "UNAVAILABLE", message: "busy"))
        let bad = AttemptOutcome.failed(AttemptFailure(retryable: false, status: "INVALID_ARGUMENT", message: "bad"))
        let upstream = Upstream([busy, busy, busy, .confirmed(nil), bad])
        let deadLetters = NIOLockedValueBox<[String]>([])
        let delivery = self.delivery(writer, upstream, deadLetters: deadLetters)
        delivery.start()
        #expect(await eventually { deadLetters.withLockedValue { $0 } == ["refused"] })
        await delivery.stop()
        #expect(upstream.seen == ["flaky", "flaky", "flaky", "flaky", "refused"])
        #expect(await eventually { writer.withLog { $0.confirmed } == writer.withLog { $0.end } })
    }

    @Test("stopped while retrying: the record stays unconfirmed and the next start sends it")
    func stopKeepsUnconfirmed() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory))
        _ = try await writer.append([ByteBuffer(string: "pending")])
        let down = AttemptOutcome.failed(AttemptFailure(retryable: true, status: "connect failed", message: "refused"))
        let upstream = Upstream(Array(repeating: down, count: 1000))
        let delivery = self.delivery(writer, upstream)
        delivery.start()
        #expect(await eventually { upstream.seen.count >= 2 })
        await delivery.stop()
        await writer.close()
        let restarted = Upstream()
        let next = self.delivery(DurableLogWriter(log: try SegmentLog(directory: directory)), restarted)
        next.start()
        #expect(await eventually { restarted.seen == ["pending"] })
        await next.stop()
    }
}

struct DeadLetterFileTests {
    @Test("one JSON line per refused request, with exporter, time, status, message and the request in OTLP/JSON; bounded by rotation")
    func lines() throws {
        let directory = try temporaryDirectory()
        let file = DeadLetterFile(path: "\(directory)/dead-letter.jsonl", exporter: "otlp_grpc/gateway", maxBytes: 4096)
        try file.write(TestRequests.traces(spans: 2), signal: .traces, status: "INVALID_ARGUMENT", message: "span \"2\" has no name")
        let text = try String(contentsOfFile: "\(directory)/dead-letter.jsonl", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["exporter"] as? String == "otlp_grpc/gateway" && object["status"] as? String == "INVALID_ARGUMENT")
        #expect(object["message"] as? String == "span \"2\" has no name")
        #expect(((object["request"] as? [String: Any])?["resourceSpans"] as? [Any])?.isEmpty == false)
        #expect((object["time"] as? String)?.hasSuffix("Z") == true)
        for _ in 0..<20 {
            try file.write(TestRequests.traces(spans: 2), signal: .traces, status: "INVALID_ARGUMENT", message: "again")
        }
        let sizes = [FileOperations.size("\(directory)/dead-letter.jsonl") ?? 0, FileOperations.size("\(directory)/dead-letter.jsonl.1") ?? 0]
        #expect(sizes[1] > 0 && sizes[0] + sizes[1] <= 4096, "rotated, at most maxBytes in all: \(sizes)")
        #expect(file.records == 21)
    }
}

struct SegmentLogAccountingTests {
    @Test("each record keeps the time it was appended; recovery counts the records and bytes after the confirmed position")
    func timesAndPending() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory)
        var ends: [LogPosition] = []
        for index in 0..<4 { ends.append(try log.append([ByteBuffer(string: "r\(index)")], at: 1_000 + Int64(index))) }
        try log.sync()
        try log.confirm(through: ends[0])
        #expect(try log.records(after: ends[0], limit: 10).map(\.appendedAt) == [1_001, 1_002, 1_003])
        let reopened = try SegmentLog(directory: directory)
        #expect(reopened.pendingAtOpen.records == 3 && reopened.pendingAtOpen.bytes == 3 * (SegmentLog.headerBytes + 2))
    }

    @Test("a reader sees a record only once its group is durable")
    func readersStopAtTheDurableEnd() async throws {
        let directory = try temporaryDirectory()
        let gate = NIOLockedValueBox(false)
        let writer = DurableLogWriter(
            log: try SegmentLog(directory: directory),
            beforeSync: { () throws(SystemError) in
                while !gate.withLockedValue({ $0 }) { usleep(1000) }
            })
        let append = Task { try await writer.append([ByteBuffer(string: "held")]) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(try writer.durableLog.records(after: LogPosition(segment: 0, offset: 0), limit: 10).isEmpty, "written but not yet synced")
        gate.withLockedValue { $0 = true }
        _ = try await append.value
        #expect(try writer.durableLog.records(after: LogPosition(segment: 0, offset: 0), limit: 10).map { String(buffer: $0.payload) } == ["held"])
    }

    @Test("recent durable records come back as appended (parts, items), older ones from disk, the same either way")
    func recentRecordsAreKept() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory), recentLimit: 20)
        var ends: [LogPosition] = [LogPosition(segment: 0, offset: 0)]
        for index in 0..<4 { ends.append(try await writer.append([ByteBuffer(string: "part-"), ByteBuffer(string: "\(index)")], items: index + 1)) }
        let newest = try writer.records(after: ends[3], limit: 10)
        #expect(newest.count == 1 && newest[0].parts.count == 2 && newest[0].items == 4, "kept as appended")
        let all = try writer.records(after: ends[0], limit: 10)
        #expect(all.map { String(buffer: $0.payload) } == (0..<4).map { "part-\($0)" })
        #expect(all.map(\.items) == [1, 2, 3, 4] && all.map(\.end) == Array(ends.dropFirst()))
        #expect(all.allSatisfy { $0.parts.count == 1 }, "the first fell out of the 20 bytes kept: read from disk")
        #expect(try writer.records(after: ends[1], limit: 10).allSatisfy { $0.parts.count == 2 }, "the three kept")
    }

    @Test("a full budget is refused as RESOURCE_EXHAUSTED, retryably, naming max_size")
    func fullIsResourceExhausted() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory), budget: DiskBudget(limit: 10))
        do {
            _ = try await writer.append([ByteBuffer(string: "too big for ten bytes")])
            Issue.record("expected a refusal")
        } catch {
            #expect(error.isRetryable && error.code == ConsumeError.resourceExhausted && error.message.contains("max_size"))
        }
    }

    @Test("confirmations are saved at most once per interval, and the last one at close")
    func confirmationsAreBatched() async throws {
        let directory = try temporaryDirectory()
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory), confirmInterval: .seconds(60))
        var ends: [LogPosition] = []
        for index in 0..<3 { ends.append(try await writer.append([ByteBuffer(string: "r\(index)")])) }
        writer.confirm(through: ends[0])
        #expect(await eventually { writer.withLog { $0.confirmed } == ends[0] })
        writer.confirm(through: ends[1])
        try await Task.sleep(for: .milliseconds(50))
        #expect(writer.withLog { $0.confirmed } == ends[0], "the next save waits for the interval")
        await writer.close()
        #expect(try SegmentLog(directory: directory).confirmed == ends[1])
    }
}

struct PersistentQueueTests {
    final class Owner: Sendable {}

    func settings(_ directory: String, capacity: Int = 100) -> PersistentQueue.Settings {
        var retry = RetryPolicy()
        retry.initialInterval = .milliseconds(5)
        retry.maxInterval = .milliseconds(20)
        return PersistentQueue.Settings(
            directory: directory, signal: .traces, fsync: true, budget: DiskBudget(limit: 1 << 20), consumers: 2, capacity: capacity, retry: retry)
    }

    func route(_ seen: NIOLockedValueBox<[String]>, _ name: String, confirm: Bool = true) -> PersistentQueue.Route {
        PersistentQueue.Route(
            send: { batch in
                seen.withLockedValue { $0.append("\(name):\(batch.itemCount)") }
                return confirm ? .confirmed(nil) : .failed(AttemptFailure(retryable: true, status: "UNAVAILABLE", message: "down"))
            },
            deadLetter: { _, _ in true })
    }

    @Test("a second open of an open folder attaches to it; the newest exporter sends; the last to leave closes it")
    func handover() async throws {
        let directory = try temporaryDirectory() + "/queue"
        let seen = NIOLockedValueBox<[String]>([])
        let (old, new) = (Owner(), Owner())
        let (first, opened) = try PersistentQueue.attach(self.settings(directory), owner: old, route: self.route(seen, "old"))
        #expect(opened)
        try await first.append(TelemetryBatch(signal: .traces, payload: TestRequests.traces(spans: 2), itemCount: 2))
        #expect(await eventually { seen.withLockedValue { $0 } == ["old:2"] })
        let (second, openedAgain) = try PersistentQueue.attach(self.settings(directory), owner: new, route: self.route(seen, "new"))
        #expect(first === second && !openedAgain)
        await first.detach(owner: old, deadline: .now)
        try await second.append(TelemetryBatch(signal: .traces, payload: TestRequests.traces(spans: 3), itemCount: 3))
        #expect(await eventually { seen.withLockedValue { $0 } == ["old:2", "new:3"] })
        await second.detach(owner: new, deadline: .now)
        let reopened = try PersistentQueue.attach(self.settings(directory), owner: old, route: self.route(seen, "again")).queue
        #expect(reopened !== first && reopened.pending.records == 0, "closed, then opened afresh with everything confirmed")
        await reopened.detach(owner: old, deadline: .now)
    }

    @Test("another process's claim on the folder is refused with its pid")
    func lockedByAnother() throws {
        let directory = try temporaryDirectory() + "/queue"
        try FileOperations.makeDirectories(forFile: directory + "/x")
        // A lock taken through another open file description conflicts the same way another process's does.
        let other = try DirectoryLock(directory: directory)
        defer { other.release() }
        do {
            _ = try PersistentQueue.attach(self.settings(directory), owner: Owner(), route: self.route(NIOLockedValueBox([]), "x"))
            Issue.record("expected the lock to refuse")
        } catch {
            #expect(error.description.contains("in use by another otlpd") && error.description.contains("pid \(getpid())"))
        }
    }

    @Test("queue_size bounds the requests not yet confirmed, with RESOURCE_EXHAUSTED; pending counts come back after a restart")
    func capacityAndRestart() async throws {
        let directory = try temporaryDirectory() + "/queue"
        let seen = NIOLockedValueBox<[String]>([])
        let owner = Owner()
        let queue = try PersistentQueue.attach(self.settings(directory, capacity: 2), owner: owner, route: self.route(seen, "down", confirm: false)).queue
        for _ in 0..<2 { try await queue.append(TelemetryBatch(signal: .traces, payload: TestRequests.traces(spans: 1), itemCount: 1)) }
        do {
            try await queue.append(TelemetryBatch(signal: .traces, payload: TestRequests.traces(spans: 1), itemCount: 1))
            Issue.record("expected the queue to be full")
        } catch {
            #expect(error.code == ConsumeError.resourceExhausted && error.message.contains("queue_size"))
        }
        #expect(queue.pending.records == 2 && queue.pending.oldest != nil)
        await queue.detach(owner: owner, deadline: .now + .milliseconds(200))
        let restarted = try PersistentQueue.attach(self.settings(directory), owner: owner, route: self.route(seen, "up")).queue
        #expect(await eventually { seen.withLockedValue { $0.filter { $0.hasPrefix("up") } }.count == 2 })
        #expect(await eventually { restarted.pending.records == 0 })
        await restarted.detach(owner: owner, deadline: .now)
    }

    @Test("at the last detach the delivery drains what the upstream confirms before the deadline")
    func drainsAtClose() async throws {
        let directory = try temporaryDirectory() + "/queue"
        let seen = NIOLockedValueBox<[String]>([])
        let release = NIOLockedValueBox(false)
        let owner = Owner()
        let route = PersistentQueue.Route(
            send: { batch in
                while !release.withLockedValue({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
                seen.withLockedValue { $0.append("\(batch.itemCount)") }
                return .confirmed(nil)
            },
            deadLetter: { _, _ in true })
        let queue = try PersistentQueue.attach(self.settings(directory), owner: owner, route: route).queue
        for spans in 1...5 { try await queue.append(TelemetryBatch(signal: .traces, payload: TestRequests.traces(spans: spans), itemCount: spans)) }
        release.withLockedValue { $0 = true }
        await queue.detach(owner: owner, deadline: .now + .seconds(5))
        #expect(seen.withLockedValue { $0.count } == 5)
        #expect(try SegmentLog(directory: directory).pendingAtOpen.records == 0)
    }
}

struct SegmentLogEmptyingTests {
    @Test("confirming everything deletes the last segment too; the next record starts a new one, and a restart sends only it")
    func confirmAll() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory)
        var end = LogPosition(segment: 0, offset: 0)
        for index in 0..<3 { end = try log.append([ByteBuffer(string: "r\(index)")]) }
        try log.sync()
        try log.confirm(through: end)
        #expect(log.segments.isEmpty && log.bytesOnDisk == 0)
        try log.append([ByteBuffer(string: "after")])
        try log.sync()
        let reopened = try SegmentLog(directory: directory)
        #expect(try reopened.records(after: reopened.confirmed, limit: 10).map { String(buffer: $0.payload) } == ["after"])
    }
}
