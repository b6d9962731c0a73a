import NIOCore
import OTLPDCompression
import OTLPDSystem

/// A place in the log: a segment and a byte offset in it.
package struct LogPosition: Comparable, Hashable, Sendable, CustomStringConvertible {
    package var segment: UInt64
    package var offset: Int

    package init(segment: UInt64, offset: Int) {
        self.segment = segment
        self.offset = offset
    }

    package static func < (lhs: LogPosition, rhs: LogPosition) -> Bool {
        (lhs.segment, lhs.offset) < (rhs.segment, rhs.offset)
    }

    package var description: String { "\(self.segment):\(self.offset)" }
}

/// One record as read back: the position after it, its payload, when it was appended (Unix nanoseconds), and its items.
package struct LogRecord: Sendable {
    package var end: LogPosition
    /// The payload: one buffer when read from disk, the request's own parts when kept from its append.
    package var parts: [ByteBuffer]
    package var appendedAt: Int64
    /// Spans, metric data points or log records in it.
    package var items: Int

    package init(end: LogPosition, parts: [ByteBuffer], appendedAt: Int64, items: Int) {
        self.end = end
        self.parts = parts
        self.appendedAt = appendedAt
        self.items = items
    }

    package var byteCount: Int { self.parts.reduce(0) { $0 + $1.readableBytes } }

    /// The payload in one buffer.
    package var payload: ByteBuffer {
        guard self.parts.count != 1 else { return self.parts[0] }
        var whole = ByteBufferAllocator().buffer(capacity: self.byteCount)
        for part in self.parts { whole.writeImmutableBuffer(part) }
        return whole
    }
}

/// The persistent queue's log, in one folder: segment files of records and
/// a small file saying how far the upstream has confirmed.
///
/// - A record is a big-endian `UInt32` length of the payload, the CRC-32C
///   (big-endian `UInt32`) of what follows it, the time it was appended
///   (big-endian `Int64`, Unix nanoseconds: the queue's oldest age survives
///   a restart), its item count (big-endian `UInt32`: counted once, at the
///   receiver), then the payload: a request as received.
/// - Segments are `segment-NNNNNNNNNNNNNNNNNNNN.log` (the number in
///   decimal, 20 digits), appended to until they pass `segmentLimit`, then
///   closed for good; the next number starts.
/// - `confirmed` holds `SEGMENT OFFSET\n`: every record before that
///   position was confirmed. It is replaced atomically. Segments wholly
///   before it are deleted: space comes back segment by segment.
///
/// Recovery never stops the start: a record cut short at the end of the
/// last segment (a write `kill -9` interrupted) is cut off; a record whose
/// checksum fails is copied to a `quarantine-…` file and skipped; where the
/// framing is lost (a length that cannot be right), the rest of that
/// segment is quarantined. A value with one open file: its owner serialises calls.
package struct SegmentLog: Sendable {
    package let directory: String
    package let segmentLimit: Int
    /// The largest record accepted: a length beyond it means lost framing.
    package static let maxRecordBytes = 512 << 20
    package static let headerBytes = 20

    /// Every record before this was confirmed by the upstream.
    package private(set) var confirmed: LogPosition
    /// Where the next record goes.
    package private(set) var end: LogPosition
    /// Segment numbers on disk, ascending.
    package private(set) var segments: [UInt64]
    /// What recovery found at open.
    package private(set) var recovery = Recovery()
    /// Records after `confirmed` and their bytes (headers included), as recovery counted them.
    package private(set) var pendingAtOpen = (records: 0, bytes: 0)
    private var writer: AppendOnlyFile?

    package struct Recovery: Sendable, Equatable {
        /// Bytes cut from the end of the last segment (a write cut short).
        package var truncatedBytes = 0
        /// Side files written for records that failed their checksum or lost their framing.
        package var quarantined: [String] = []

        package init() {}
    }

    package init(directory: String, segmentLimit: Int = 64 << 20) throws(SystemError) {
        self.directory = directory
        self.segmentLimit = segmentLimit
        try FileOperations.makeDirectories(forFile: directory + "/x")
        let names = try FileOperations.list(directory)
        self.segments = names.compactMap(Self.segmentNumber).sorted()
        self.confirmed = Self.readConfirmed(directory) ?? LogPosition(segment: self.segments.first ?? 0, offset: 0)
        self.end = LogPosition(segment: self.segments.last ?? self.confirmed.segment, offset: 0)
        try self.recover()
    }

    // MARK: Writing

    /// Appends one record whose payload is `parts` one after another; it is
    /// on disk only after `sync`. Returns the position after it.
    @discardableResult
    package mutating func append(_ parts: [ByteBuffer], at time: Int64 = 0, items: Int = 0) throws(SystemError) -> LogPosition {
        let length = parts.reduce(0) { $0 + $1.readableBytes }
        if self.end.offset > 0 && self.end.offset + Self.headerBytes + length > self.segmentLimit {
            // The segment is full: the next one starts (this one is never written again).
            try self.writer?.sync()
            self.writer?.close()
            self.writer = nil
            self.end = LogPosition(segment: self.end.segment + 1, offset: 0)
        }
        let writer = try self.openWriter()
        var stamp = ByteBuffer()
        stamp.writeInteger(time)
        stamp.writeInteger(UInt32(clamping: items))
        var header = ByteBuffer()
        header.writeInteger(UInt32(length))
        header.writeInteger(CRC32C.checksum([stamp] + parts))
        header.writeBuffer(&stamp)
        try writer.write(header)
        for part in parts { try writer.write(part) }
        self.end.offset += Self.headerBytes + length
        return self.end
    }

    /// Puts everything appended so far on disk.
    package func sync() throws(SystemError) {
        try self.writer?.sync()
    }

    /// Undoes the appends after `position` (a group whose write or sync
    /// failed, so that no record is left half written in the middle).
    package mutating func rollBack(to position: LogPosition) throws(SystemError) {
        self.writer?.close()
        self.writer = nil
        for segment in self.segments where segment > position.segment { try FileOperations.remove(self.path(of: segment)) }
        self.segments.removeAll { $0 > position.segment }
        if self.segments.contains(position.segment) { try FileOperations.truncate(self.path(of: position.segment), to: position.offset) }
        self.end = position
    }

    private mutating func openWriter() throws(SystemError) -> AppendOnlyFile {
        if let writer = self.writer { return writer }
        let isNew = !self.segments.contains(self.end.segment)
        let writer = try AppendOnlyFile(path: self.path(of: self.end.segment))
        if isNew {
            self.segments.append(self.end.segment)
            // The new file's name must survive a crash too.
            try FileOperations.syncDirectory(self.directory)
        }
        self.writer = writer
        return writer
    }

    // MARK: Reading

    /// Up to `limit` records (and about `maxBytes`: at least one) after `position` and before `end`, each with
    /// the position after it, read where they are (two reads a record, not
    /// whole segments). Records that fail their checksum are skipped; lost
    /// framing ends a segment (recovery quarantined both).
    package func records(after position: LogPosition, limit: Int, maxBytes: Int = .max) throws(SystemError) -> [LogRecord] {
        var found: [LogRecord] = []
        var bytes = 0
        for segment in self.segments where segment >= position.segment && segment <= self.end.segment && found.count < limit && bytes < maxBytes {
            let file = try ReadOnlyFile(path: self.path(of: segment))
            var offset = segment == position.segment ? position.offset : 0
            while found.count < limit && bytes < maxBytes && (segment < self.end.segment || offset < self.end.offset) {
                let header = try file.read(at: offset, count: Self.headerBytes)
                guard header.count == Self.headerBytes else { break }
                let length = Int(Self.uint32(header, 0))
                guard length <= Self.maxRecordBytes else { break }
                let payload = try file.readBuffer(at: offset + Self.headerBytes, count: length)
                guard payload.readableBytes == length else { break }
                offset += Self.headerBytes + length
                bytes += length
                if CRC32C.checksum([ByteBuffer(bytes: header[8..<Self.headerBytes]), payload]) == Self.uint32(header, 4) {
                    found.append(
                        LogRecord(
                            end: LogPosition(segment: segment, offset: offset), parts: [payload], appendedAt: Self.int64(header, 8),
                            items: Int(Self.uint32(header, 16))))
                }
            }
        }
        return found
    }

    // MARK: Confirming

    /// Records up to `position` were confirmed: saved atomically, and the
    /// segments wholly before it deleted.
    package mutating func confirm(through position: LogPosition) throws(SystemError) {
        guard position > self.confirmed else { return }
        var position = position
        if position == self.end && self.end.offset > 0 {
            // Everything is confirmed: the next record starts a new segment, so this one goes too.
            try self.writer?.sync()
            self.writer?.close()
            self.writer = nil
            self.end = LogPosition(segment: self.end.segment + 1, offset: 0)
            position = self.end
        }
        try FileOperations.writeAtomically(self.directory + "/confirmed", Array("\(position.segment) \(position.offset)\n".utf8))
        self.confirmed = position
        let done = self.segments.filter { $0 < position.segment }
        for segment in done { try FileOperations.remove(self.path(of: segment)) }
        self.segments.removeAll { $0 < position.segment }
        if !done.isEmpty { try FileOperations.syncDirectory(self.directory) }
    }

    /// Bytes of the segments on disk.
    package var bytesOnDisk: Int {
        self.segments.reduce(0) { $0 + (FileOperations.size(self.path(of: $1)) ?? 0) }
    }

    // MARK: Recovery

    private mutating func recover() throws(SystemError) {
        guard let last = self.segments.last else { return }
        for segment in self.segments {
            let path = self.path(of: segment)
            let bytes = try FileOperations.readAll(path)
            var goodEnd = 0
            Self.walk(bytes, from: 0) { offset, length, valid in
                if !valid {
                    let record = Array(bytes[offset..<(offset + Self.headerBytes + length)])
                    self.quarantine(record, segment: segment, offset: offset, reason: "checksum")
                } else if LogPosition(segment: segment, offset: offset) >= self.confirmed {
                    self.pendingAtOpen.records += 1
                    self.pendingAtOpen.bytes += Self.headerBytes + length
                }
                goodEnd = offset + Self.headerBytes + length
                return true
            } lost: { offset in
                if segment == last && Self.isCutShort(bytes, at: offset) {
                    // The last write, interrupted: not acknowledged, cut off.
                    self.recovery.truncatedBytes += bytes.count - offset
                } else {
                    self.quarantine(Array(bytes[offset...]), segment: segment, offset: offset, reason: "framing")
                }
                goodEnd = offset
            }
            if segment == last {
                if goodEnd < bytes.count { try FileOperations.truncate(path, to: goodEnd) }
                self.end = LogPosition(segment: segment, offset: goodEnd)
            }
        }
    }

    /// A record at `offset` that runs past the end with a length that could be right.
    private static func isCutShort(_ bytes: [UInt8], at offset: Int) -> Bool {
        guard bytes.count - offset >= 4 else { return true }
        return Int(Self.uint32(bytes, offset)) <= Self.maxRecordBytes
    }

    private mutating func quarantine(_ record: [UInt8], segment: UInt64, offset: Int, reason: String) {
        let path = "\(self.directory)/quarantine-\(Self.padded(segment))-\(offset)-\(reason).bin"
        // Written once: a later start finds it there and does not write it again.
        if !FileOperations.exists(path) { try? FileOperations.writeAtomically(path, record) }
        self.recovery.quarantined.append(path)
    }

    /// Walks the records of a segment from `start`: `record(offset, length,
    /// checksumValid)` for each (return false to stop), `lost(offset)` where
    /// the framing ends before the bytes do (a cut or a corrupt length).
    private static func walk(
        _ bytes: [UInt8], from start: Int, record: (Int, Int, Bool) -> Bool, lost: (Int) -> Void
    ) {
        var offset = start
        while offset < bytes.count {
            guard bytes.count - offset >= Self.headerBytes else { return lost(offset) }
            let length = Int(Self.uint32(bytes, offset))
            guard length <= Self.maxRecordBytes, offset + Self.headerBytes + length <= bytes.count else { return lost(offset) }
            let checked = ByteBuffer(bytes: bytes[(offset + 8)..<(offset + Self.headerBytes + length)])
            let valid = CRC32C.checksum([checked]) == Self.uint32(bytes, offset + 4)
            guard record(offset, length, valid) else { return }
            offset += Self.headerBytes + length
        }
    }

    private static func uint32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    private static func int64(_ bytes: [UInt8], _ offset: Int) -> Int64 {
        Int64(bitPattern: UInt64(Self.uint32(bytes, offset)) << 32 | UInt64(Self.uint32(bytes, offset + 4)))
    }

    // MARK: Names

    private func path(of segment: UInt64) -> String {
        "\(self.directory)/segment-\(Self.padded(segment)).log"
    }

    private static func padded(_ number: UInt64) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    private static func segmentNumber(_ name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".log") else { return nil }
        return UInt64(name.dropFirst("segment-".count).dropLast(".log".count))
    }

    private static func readConfirmed(_ directory: String) -> LogPosition? {
        guard let bytes = try? FileOperations.readAll(directory + "/confirmed") else { return nil }
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let segment = UInt64(fields[0]), let offset = Int(fields[1]) else { return nil }
        return LogPosition(segment: segment, offset: offset)
    }
}
