import Foundation
import NIOCore
import OTLPDCompression
import OTLPDExporters
import OTLPDSystem
import OTLPDCore
import NIOConcurrencyHelpers
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
