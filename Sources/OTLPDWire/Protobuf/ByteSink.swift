import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A growable output buffer for the encoders: appends without bounds
/// checks beyond one capacity test, and hands its bytes over as a
/// `ByteBuffer` once at the end.
package struct ByteSink: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var count: Int
    @usableFromInline var capacity: Int
    /// False for a sink over borrowed memory: it cannot grow, it sets `overflowed`.
    @usableFromInline var ownsMemory: Bool
    /// A borrowed sink ran out of room; what it holds is incomplete.
    package private(set) var overflowed = false

    package init(capacity: Int = 4096) {
        self.capacity = max(capacity, 64)
        self.base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
        self.count = 0
        self.ownsMemory = true
    }

    /// A sink that writes into `memory` (a ByteBuffer's writable bytes) and
    /// reports `overflowed` instead of growing.
    init(borrowing memory: UnsafeMutableRawBufferPointer) {
        self.base = memory.baseAddress!.assumingMemoryBound(to: UInt8.self)
        self.capacity = memory.count
        self.count = 0
        self.ownsMemory = false
    }

    deinit {
        if self.ownsMemory { self.base.deallocate() }
    }

    /// Encodes into `buffer`'s own storage (no copy afterwards): `body` runs
    /// on a borrowed sink of at least `estimate` bytes and is run again with
    /// twice the room if it overflows.
    package static func write(
        into buffer: inout ByteBuffer,
        estimate: Int,
        _ body: (inout ByteSink) -> Void
    ) {
        var room = max(estimate, 64)
        while true {
            var overflowed = false
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { memory in
                var sink = ByteSink(borrowing: memory)
                body(&sink)
                overflowed = sink.overflowed
                return overflowed ? 0 : sink.count
            }
            if !overflowed { return }
            room *= 2
        }
    }

    package var byteCount: Int { self.count }

    @inlinable
    package mutating func reserve(_ extra: Int) {
        if self.count + extra > self.capacity { self.grow(extra) }
    }

    @usableFromInline
    mutating func grow(_ extra: Int) {
        guard self.ownsMemory else {
            // Borrowed memory cannot grow: report it, and let the rest of the
            // encoding run into scratch memory that is thrown away.
            self.overflowed = true
            self.capacity = max(extra * 2, 4096)
            self.base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
            self.count = 0
            self.ownsMemory = true
            return
        }
        var newCapacity = self.capacity * 2
        while newCapacity < self.count + extra { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: self.base, count: self.count)
        self.base.deallocate()
        self.base = newBase
        self.capacity = newCapacity
    }

    @inlinable
    package mutating func append(_ byte: UInt8) {
        if self.count == self.capacity { self.grow(1) }
        self.base[self.count] = byte
        self.count += 1
    }

    /// Appends without a capacity test: call `reserve` first.
    @inlinable
    package mutating func appendReserved(_ byte: UInt8) {
        self.base[self.count] = byte
        self.count += 1
    }

    @inline(__always)
    package mutating func append(_ text: StaticString) {
        self.append(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    @inline(__always)
    package mutating func append(start: UnsafePointer<UInt8>, count: Int) {
        self.reserve(count)
        let destination = UnsafeMutableRawPointer(self.base + self.count)
        let source = UnsafeRawPointer(start)
        // Short copies (keys, ids, attribute strings, JSON punctuation) are most
        // of them: overlapping word copies instead of a memmove call.
        if count >= 8 && count <= 32 {
            let head = source.loadUnaligned(as: UInt64.self)
            let tail = source.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            if count > 16 {
                let second = source.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                let third = source.loadUnaligned(fromByteOffset: count - 16, as: UInt64.self)
                destination.storeBytes(of: second, toByteOffset: 8, as: UInt64.self)
                destination.storeBytes(of: third, toByteOffset: count - 16, as: UInt64.self)
            }
            destination.storeBytes(of: head, as: UInt64.self)
            destination.storeBytes(of: tail, toByteOffset: count - 8, as: UInt64.self)
        } else if count < 8 {
            for i in 0..<count { (self.base + self.count)[i] = start[i] }
        } else {
            (self.base + self.count).update(from: start, count: count)
        }
        self.count += count
    }

    package mutating func append(_ bytes: WireBytes) {
        self.append(start: bytes.start, count: bytes.count)
    }

    package mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { self.append(start: base, count: buffer.count) }
        }
    }

    package mutating func append(contentsOf text: String) {
        var text = text
        text.withUTF8 { buffer in
            if let base = buffer.baseAddress { self.append(start: base, count: buffer.count) }
        }
    }

    package mutating func append(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { raw in
            if let base = raw.baseAddress {
                self.append(start: base.assumingMemoryBound(to: UInt8.self), count: raw.count)
            }
        }
    }

    package mutating func removeLast(_ n: Int = 1) {
        self.count = max(0, self.count - n)
    }

    package mutating func removeAll() {
        self.count = 0
    }

    package subscript(index: Int) -> UInt8 {
        get { self.base[index] }
        set { self.base[index] = newValue }
    }

    /// Inserts `bytes` at `offset`, moving what follows (the length prefix of
    /// a message whose size was not known when it started).
    package mutating func insert(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        let n = bytes.count
        self.reserve(n)
        (self.base + offset + n).update(from: self.base + offset, count: self.count - offset)
        if let source = bytes.baseAddress {
            (self.base + offset).update(from: source.assumingMemoryBound(to: UInt8.self), count: n)
        }
        self.count += n
    }

    /// Inserts a varint at `offset` (a length prefix written after its content).
    package mutating func insertVarint(_ value: UInt64, at offset: Int) {
        var bytes: (UInt64, UInt16) = (0, 0)
        let length = withUnsafeMutableBytes(of: &bytes) { raw -> Int in
            var v = value
            var n = 0
            while v >= 0x80 {
                raw[n] = UInt8(truncatingIfNeeded: v) | 0x80
                v >>= 7
                n += 1
            }
            raw[n] = UInt8(truncatingIfNeeded: v)
            return n + 1
        }
        withUnsafeBytes(of: &bytes) { raw in
            self.insert(UnsafeRawBufferPointer(rebasing: raw[0..<length]), at: offset)
        }
    }

    /// Unsigned decimal, two digits per division.
    @inlinable
    package mutating func appendDecimal(_ value: UInt64) {
        self.reserve(20)
        if value < 10 {
            self.appendReserved(UInt8(truncatingIfNeeded: value) &+ 0x30)
            return
        }
        let length = decimalDigitCount(value)
        let pairs = decimalPairs
        var position = self.base + self.count + length
        var v = value
        while v >= 100 {
            let pair = Int(v % 100) &* 2
            v /= 100
            position -= 2
            position[0] = pairs[pair]
            position[1] = pairs[pair + 1]
        }
        if v >= 10 {
            let pair = Int(v) &* 2
            position -= 2
            position[0] = pairs[pair]
            position[1] = pairs[pair + 1]
        } else {
            position -= 1
            position[0] = UInt8(truncatingIfNeeded: v) &+ 0x30
        }
        self.count += length
    }

    @inlinable
    package mutating func appendDecimal(_ value: Int64) {
        if value < 0 {
            self.append(UInt8(ascii: "-"))
            self.appendDecimal(UInt64(bitPattern: 0 &- value))
        } else {
            self.appendDecimal(UInt64(value))
        }
    }

    /// Lowercase hex of each byte.
    package mutating func appendHex(_ bytes: WireBytes) {
        self.reserve(bytes.count * 2)
        let pairs = hexPairs
        let destination = self.base + self.count
        for i in 0..<bytes.count {
            let pair = Int(bytes.start[i]) &* 2
            destination[2 &* i] = pairs[pair]
            destination[2 &* i &+ 1] = pairs[pair + 1]
        }
        self.count += bytes.count * 2
    }

    /// Standard base64 with padding.
    package mutating func appendBase64(_ bytes: WireBytes) {
        self.reserve((bytes.count + 2) / 3 * 4)
        var i = 0
        let n = bytes.count
        let s = bytes.start
        while i + 3 <= n {
            let v = UInt32(s[i]) << 16 | UInt32(s[i + 1]) << 8 | UInt32(s[i + 2])
            self.appendReserved(base64Alphabet[Int(v >> 18 & 63)])
            self.appendReserved(base64Alphabet[Int(v >> 12 & 63)])
            self.appendReserved(base64Alphabet[Int(v >> 6 & 63)])
            self.appendReserved(base64Alphabet[Int(v & 63)])
            i += 3
        }
        if n - i == 1 {
            let v = UInt32(s[i]) << 16
            self.appendReserved(base64Alphabet[Int(v >> 18 & 63)])
            self.appendReserved(base64Alphabet[Int(v >> 12 & 63)])
            self.appendReserved(UInt8(ascii: "="))
            self.appendReserved(UInt8(ascii: "="))
        } else if n - i == 2 {
            let v = UInt32(s[i]) << 16 | UInt32(s[i + 1]) << 8
            self.appendReserved(base64Alphabet[Int(v >> 18 & 63)])
            self.appendReserved(base64Alphabet[Int(v >> 12 & 63)])
            self.appendReserved(base64Alphabet[Int(v >> 6 & 63)])
            self.appendReserved(UInt8(ascii: "="))
        }
    }

    /// Protobuf varint.
    @inlinable
    package mutating func appendVarint(_ value: UInt64) {
        self.reserve(10)
        var v = value
        while v >= 0x80 {
            self.appendReserved(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.appendReserved(UInt8(truncatingIfNeeded: v))
    }

    package mutating func appendLittleEndian32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            self.append(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 4)
        }
    }

    package mutating func appendLittleEndian64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            self.append(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: 8)
        }
    }

    /// A copy of the bytes written so far.
    package func byteBuffer(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: self.count)
        buffer.writeBytes(UnsafeRawBufferPointer(start: self.base, count: self.count))
        return buffer
    }

    package func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try body(UnsafeRawBufferPointer(start: self.base, count: self.count))
    }

    package var string: String {
        String(decoding: UnsafeBufferPointer(start: self.base, count: self.count), as: UTF8.self)
    }
}

// StaticStrings: read through a pointer, with no reference counting in the loops.
@usableFromInline var hexDigits: UnsafePointer<UInt8> { ("0123456789abcdef" as StaticString).utf8Start }
/// The number of decimal digits, by comparisons (no table to initialise).
@inline(__always) @usableFromInline
func decimalDigitCount(_ v: UInt64) -> Int {
    let e5: UInt64 = 100_000
    let e10: UInt64 = 10_000_000_000
    let e15: UInt64 = 1_000_000_000_000_000
    if v < e5 {
        return v < 10 ? 1 : v < 100 ? 2 : v < 1_000 ? 3 : v < 10_000 ? 4 : 5
    }
    if v < e10 {
        return v < e5 * 10 ? 6 : v < e5 * 100 ? 7 : v < e5 * 1_000 ? 8 : v < e5 * 10_000 ? 9 : 10
    }
    if v < e15 {
        return v < e10 * 10 ? 11 : v < e10 * 100 ? 12 : v < e10 * 1_000 ? 13 : v < e10 * 10_000 ? 14 : 15
    }
    return v < e15 * 10 ? 16 : v < e15 * 100 ? 17 : v < e15 * 1_000 ? 18 : v < e15 * 10_000 ? 19 : 20
}

/// "00" "01" ... "99": two digits per lookup.
@usableFromInline var decimalPairs: UnsafePointer<UInt8> {
    ("00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899" as StaticString).utf8Start
}
/// "00" "01" ... "ff": two hex digits per lookup.
@usableFromInline var hexPairs: UnsafePointer<UInt8> {
    ("""
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
    404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\
    808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
    c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff
    """ as StaticString).utf8Start
}
@usableFromInline var base64Alphabet: UnsafePointer<UInt8> {
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" as StaticString).utf8Start
}

extension ByteSink {
    /// A length prefix written before its content is known.
    package struct PendingLength {
        let offset: Int
        let width: Int
    }

    /// Leaves room for the length of a message about `expected` bytes long.
    @inline(__always)
    package mutating func beginLength(expected: Int) -> PendingLength {
        let width = AnyValueEncoding.varintCount(UInt64(expected))
        self.reserve(width)
        let pending = PendingLength(offset: self.count, width: width)
        self.count += width
        return pending
    }

    /// Writes the length of what followed `beginLength`, moving it when
    /// the length needs more or fewer bytes than were left.
    @inline(__always)
    package mutating func endLength(_ pending: PendingLength) {
        let contentStart = pending.offset + pending.width
        let length = self.count - contentStart
        let width = AnyValueEncoding.varintCount(UInt64(length))
        if width != pending.width {
            self.reserve(width)
            (self.base + pending.offset + width).update(from: self.base + contentStart, count: length)
            self.count = pending.offset + width + length
        }
        _ = AnyValueEncoding.putVarint(UInt64(length), self.base + pending.offset)
    }
}
