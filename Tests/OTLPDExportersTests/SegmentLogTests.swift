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
        #expect(reopened.recovery.truncatedBytes == 8 + 20 - 5 && reopened.recovery.quarantined.isEmpty)
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
        bytes[8 + 5 + 8 + 2] ^= 0xFF  // inside "second"'s payload
        try FileOperations.writeAtomically(segment, bytes)
        let reopened = try SegmentLog(directory: directory)
        #expect(reopened.recovery.quarantined.count == 1)
        let quarantined = try FileOperations.readAll(reopened.recovery.quarantined[0])
        #expect(quarantined.count == 8 + 6, "the whole record is kept aside")
        #expect(try self.texts(reopened, after: LogPosition(segment: 0, offset: 0)) == ["first", "third"])
    }

    @Test("a corrupt length mid-segment quarantines the rest of that segment; later segments are delivered")
    func lostFraming() throws {
        let directory = try temporaryDirectory()
        var log = try SegmentLog(directory: directory, segmentLimit: 40)
        for text in ["a-record", "b-record", "c-record", "d-record"] { try log.append(self.record(text)) }
        try log.sync()
        #expect(log.segments.count == 2)
        let first = "\(directory)/segment-00000000000000000000.log"
        var bytes = try FileOperations.readAll(first)
        bytes[16] = 0xFF  // the second record's length: far past any record
        try FileOperations.writeAtomically(first, bytes)
        let reopened = try SegmentLog(directory: directory, segmentLimit: 40)
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
        let writer = DurableLogWriter(log: try SegmentLog(directory: directory), maxBytes: 40)
        _ = try await writer.append([ByteBuffer(string: String(repeating: "x", count: 20))])
        await #expect(throws: ConsumeError.self) { _ = try await writer.append([ByteBuffer(string: String(repeating: "y", count: 20))]) }
        writer.reclaimed(28)
        _ = try await writer.append([ByteBuffer(string: String(repeating: "y", count: 20))])
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
            writer: writer, signal: .traces, consumers: consumers, retry: retry, logger: Logger(label: "test"),
            send: { await upstream.send($0) }, deadLetter: { payload, _ in deadLetters.withLockedValue { $0.append(String(buffer: payload)) } })
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
        #expect(writer.withLog { $0.confirmed } == writer.withLog { $0.end })
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
