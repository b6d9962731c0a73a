import NIOCore
import OTLPDCompression
import OTLPDExporters

/// The persistent queue's log recovering at start from whatever bytes are on
/// disk: the input is written as a segment file, the `SegmentLog` is opened
/// on the folder (recovery: a cut tail cut off, bad records quarantined),
/// its records are read as the delivery reads them, one record is appended
/// and read back, everything is confirmed, and the log is opened again.
/// Then once more with the input as an older segment, followed by a
/// segment holding one good record.
///
/// Invariants: opening never fails ("recovery never stops the start"); the
/// records read are the ones recovery counted as pending; a record appended
/// after recovery reads back as written; once all is confirmed, a reopened
/// log has nothing pending; framing lost in an older segment ends that
/// segment only (the next segment's record is read, nothing is truncated).
enum SegmentsHarness {
    static let scratch = ScratchDirectory("segments")
    static let segment7 = "segment-00000000000000000007.log"
    static let segment8 = "segment-00000000000000000008.log"
    static let goodPayload = Array("a record after the fuzzed segment".utf8)

    /// One record as `SegmentLog.append` writes it.
    static let goodRecord: [UInt8] = {
        var stamp = ByteBuffer()
        stamp.writeInteger(Int64(1_765_000_000_000_000_000))
        stamp.writeInteger(UInt32(7))
        let payload = ByteBuffer(bytes: SegmentsHarness.goodPayload)
        var record = ByteBuffer()
        record.writeInteger(UInt32(payload.readableBytes))
        record.writeInteger(CRC32C.checksum([stamp, payload]))
        record.writeImmutableBuffer(stamp)
        record.writeImmutableBuffer(payload)
        return Array(record.readableBytesView)
    }()

    static func run(_ input: [UInt8]) {
        do {
            try Self.asLastSegment(input)
            try Self.asOlderSegment(input)
        } catch {
            fatalError("invariant broken: the segment log failed on a file it recovered: \(error)")
        }
    }

    static func asLastSegment(_ input: [UInt8]) throws {
        let directory = Self.scratch.path
        Self.scratch.clear()
        _ = Self.scratch.write(Self.segment7, input)
        var log = try SegmentLog(directory: directory, segmentLimit: 1 << 20)
        let found = try log.records(after: log.confirmed, limit: .max)
        let pending = log.pendingAtOpen
        invariant(found.count == pending.records, "read \(found.count) records, recovery counted \(pending.records)")
        let bytes = found.reduce(0) { $0 + SegmentLog.headerBytes + $1.byteCount }
        invariant(bytes == pending.bytes, "read \(bytes) bytes of records, recovery counted \(pending.bytes)")

        let before = log.end
        let end = try log.append([ByteBuffer(string: "after recovery")], at: 42, items: 3)
        try log.sync()
        let appended = try log.records(after: before, limit: .max)
        invariant(appended.count == 1, "\(appended.count) records after the one appended at \(before)")
        if let record = appended.first {
            invariant(record.payload == ByteBuffer(string: "after recovery"), "the appended record reads back as \(record.payload)")
            invariant(record.appendedAt == 42 && record.items == 3 && record.end == end, "the appended record's header reads back wrong")
        }
        try log.confirm(through: end)
        let reopened = try SegmentLog(directory: directory, segmentLimit: 1 << 20)
        invariant(reopened.pendingAtOpen.records == 0, "\(reopened.pendingAtOpen.records) records pending after everything was confirmed")
        invariant(try reopened.records(after: reopened.confirmed, limit: .max).isEmpty, "records read after everything was confirmed")
    }

    static func asOlderSegment(_ input: [UInt8]) throws {
        let directory = Self.scratch.path
        Self.scratch.clear()
        _ = Self.scratch.write(Self.segment7, input)
        _ = Self.scratch.write(Self.segment8, Self.goodRecord)
        let log = try SegmentLog(directory: directory, segmentLimit: 1 << 20)
        invariant(log.recovery.truncatedBytes == 0, "\(log.recovery.truncatedBytes) bytes truncated though the last segment was whole")
        let found = try log.records(after: log.confirmed, limit: .max)
        invariant(found.count == log.pendingAtOpen.records, "read \(found.count) records, recovery counted \(log.pendingAtOpen.records)")
        let last = found.last
        invariant(
            last?.end.segment == 8 && last?.payload == ByteBuffer(bytes: Self.goodPayload) && last?.items == 7,
            "the next segment's record was not read last")
    }
}
