import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Why bytes are not a valid protobuf message of the expected type.
package struct WireError: Error, Sendable, CustomStringConvertible {
    package enum Reason: Sendable {
        case truncated
        case malformedVarint
        case invalidWireType(UInt8)
        case invalidFieldNumber
        case unmatchedGroup
        case tooDeep
        case invalidPacked
        case json(String)
    }

    package var reason: Reason
    /// The message type being read, when known.
    package var message: String?
    /// Byte offset in the request where it went wrong, when known.
    package var offset: Int?

    package init(_ reason: Reason, message: String? = nil, offset: Int? = nil) {
        self.reason = reason
        self.message = message
        self.offset = offset
    }

    package var description: String {
        var text: String
        switch self.reason {
        case .truncated: text = "a field runs past the end of its message"
        case .malformedVarint: text = "malformed varint"
        case .invalidWireType(let type): text = "invalid wire type \(type)"
        case .invalidFieldNumber: text = "invalid field number 0"
        case .unmatchedGroup: text = "unmatched group"
        case .tooDeep: text = "messages nested more than \(WireReader.maxDepth) deep"
        case .invalidPacked: text = "malformed packed repeated field"
        case .json(let detail): return detail
        }
        if let message { text += " in \(message)" }
        if let offset { text += " at byte \(offset)" }
        return text
    }
}

/// A cursor over protobuf wire bytes. It never reads outside its range and
/// never allocates; sub-messages are sub-ranges of the same bytes.
package struct WireReader {
    package static let maxDepth = 64

    @usableFromInline var position: UnsafePointer<UInt8>
    @usableFromInline let end: UnsafePointer<UInt8>
    /// The start of the whole buffer, for error offsets.
    @usableFromInline let origin: UnsafePointer<UInt8>

    @inlinable
    init(position: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>, origin: UnsafePointer<UInt8>) {
        self.position = position
        self.end = end
        self.origin = origin
    }

    /// Runs `body` with a reader over the readable bytes of `buffer`.
    @inlinable
    package static func withReader<Result, Failure: Error>(
        _ buffer: ByteBuffer,
        _ body: (inout WireReader) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let outcome: Swift.Result<Result, Failure> = buffer.withUnsafeReadableBytes { raw in
            // An empty buffer may have no base address; any valid pointer works for an empty range.
            let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? WireReader.emptyBytes
            var reader = WireReader(position: base, end: base + raw.count, origin: base)
            do throws(Failure) {
                return .success(try body(&reader))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    @usableFromInline static var emptyBytes: UnsafePointer<UInt8> { ("" as StaticString).utf8Start }

    /// A position to come back to (cheaper than copying the reader).
    package struct Mark {
        @usableFromInline let position: UnsafePointer<UInt8>
    }

    @inlinable package var mark: Mark { Mark(position: self.position) }

    @inlinable package mutating func rewind(to mark: Mark) {
        self.position = mark.position
    }

    @inlinable package var isAtEnd: Bool { self.position >= self.end }
    @inlinable package var remaining: Int { self.end - self.position }
    @inlinable package var offset: Int { self.position - self.origin }

    @inlinable
    package mutating func readVarint() throws(WireError) -> UInt64 {
        // One-byte varints (tags, small lengths) are most of them.
        if self.position < self.end, self.position.pointee < 0x80 {
            let value = UInt64(self.position.pointee)
            self.position += 1
            return value
        }
        return try self.readVarintSlow()
    }

    @usableFromInline
    mutating func readVarintSlow() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard self.position < self.end else { throw WireError(.truncated, offset: self.offset) }
            let byte = self.position.pointee
            self.position += 1
            if shift == 63 && byte > 1 { throw WireError(.malformedVarint, offset: self.offset) }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw WireError(.malformedVarint, offset: self.offset) }
        }
    }

    /// The next field's number and wire type.
    @inlinable
    package mutating func readTag() throws(WireError) -> (number: UInt32, wireType: UInt8) {
        let tag = try self.readVarint()
        let number = tag >> 3
        guard number > 0, number <= 536_870_911 else { throw WireError(.invalidFieldNumber, offset: self.offset) }
        return (UInt32(truncatingIfNeeded: number), UInt8(truncatingIfNeeded: tag & 7))
    }

    @inlinable
    package mutating func readFixed32() throws(WireError) -> UInt32 {
        guard self.end - self.position >= 4 else { throw WireError(.truncated, offset: self.offset) }
        let value = UnsafeRawPointer(self.position).loadUnaligned(as: UInt32.self)
        self.position += 4
        return UInt32(littleEndian: value)
    }

    @inlinable
    package mutating func readFixed64() throws(WireError) -> UInt64 {
        guard self.end - self.position >= 8 else { throw WireError(.truncated, offset: self.offset) }
        let value = UnsafeRawPointer(self.position).loadUnaligned(as: UInt64.self)
        self.position += 8
        return UInt64(littleEndian: value)
    }

    /// A reader over the next length-delimited value, which it skips in `self`.
    @inlinable
    package mutating func readLengthDelimited() throws(WireError) -> WireReader {
        let length = try self.readVarint()
        guard length <= UInt64(self.end - self.position) else { throw WireError(.truncated, offset: self.offset) }
        let start = self.position
        self.position += Int(length)
        return WireReader(position: start, end: self.position, origin: self.origin)
    }

    /// Skips one value of the given wire type (the tag already read).
    @inlinable
    package mutating func skip(wireType: UInt8, number: UInt32, depth: Int = 0) throws(WireError) {
        switch wireType {
        case 0: _ = try self.readVarint()
        case 1:
            guard self.end - self.position >= 8 else { throw WireError(.truncated, offset: self.offset) }
            self.position += 8
        case 2: _ = try self.readLengthDelimited()
        case 5:
            guard self.end - self.position >= 4 else { throw WireError(.truncated, offset: self.offset) }
            self.position += 4
        case 3:
            // A group: skip fields up to its matching end tag.
            guard depth < WireReader.maxDepth else { throw WireError(.tooDeep, offset: self.offset) }
            while true {
                guard !self.isAtEnd else { throw WireError(.unmatchedGroup, offset: self.offset) }
                let (innerNumber, innerType) = try self.readTag()
                if innerType == 4 {
                    guard innerNumber == number else { throw WireError(.unmatchedGroup, offset: self.offset) }
                    return
                }
                try self.skip(wireType: innerType, number: innerNumber, depth: depth + 1)
            }
        default:
            throw WireError(.invalidWireType(wireType), offset: self.offset)
        }
    }

    /// The bytes of this reader's whole range, for copying out.
    @inlinable
    package var bytes: WireBytes {
        WireBytes(start: self.position, count: self.end - self.position)
    }
}

/// A range of bytes inside the buffer a `WireReader` reads: a string's or
/// a sub-message's bytes, valid while that buffer is.
package struct WireBytes {
    @usableFromInline let start: UnsafePointer<UInt8>
    package let count: Int

    @inlinable
    init(start: UnsafePointer<UInt8>, count: Int) {
        self.start = start
        self.count = count
    }

    @inlinable
    package subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < self.count)
        return self.start[index]
    }

    package func equals(_ other: StaticString) -> Bool {
        guard other.utf8CodeUnitCount == self.count else { return false }
        return memcmp(self.start, other.utf8Start, self.count) == 0
    }

    package func equals(_ other: [UInt8]) -> Bool {
        guard other.count == self.count else { return false }
        return other.withUnsafeBufferPointer { memcmp(self.start, $0.baseAddress!, self.count) == 0 }
    }

    package var string: String {
        String(decoding: UnsafeBufferPointer(start: self.start, count: self.count), as: UTF8.self)
    }

    package var byteArray: [UInt8] {
        Array(UnsafeBufferPointer(start: self.start, count: self.count))
    }
}
