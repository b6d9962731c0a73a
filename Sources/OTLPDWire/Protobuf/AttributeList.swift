/// One message's attributes (a span's, a log record's, a data point's or a
/// resource's), read from the wire and edited without decoding: entries
/// point into the request, into a `WireText` or into a `ScratchArena`.
/// Untouched entries are written back byte for byte.
package struct AttributeList {
    package struct Entry {
        package var key: WireBytes
        /// The `AnyValue` content; nil for a `KeyValue` without a value.
        package var value: WireBytes?
        /// The original field (tag, length and `KeyValue`) while the entry is
        /// unchanged: written back as it is, neighbours in one copy.
        var original: WireBytes?
    }

    package private(set) var entries: [Entry] = []
    /// Whether an entry that came from the wire was changed or removed (so
    /// the message must be rebuilt, not copied with additions).
    package private(set) var rewritesOriginals = false
    /// How many entries at the end were added.
    package private(set) var appendedCount = 0
    package let arena: ScratchArena

    package init(arena: ScratchArena = ScratchArena()) {
        self.arena = arena
        self.entries.reserveCapacity(32)
    }

    package var count: Int { self.entries.count }
    package var isChanged: Bool { self.rewritesOriginals || self.appendedCount > 0 }

    /// Where the attribute fields were in the message (byte offsets), when
    /// no other field came between them: a rewrite then replaces that range
    /// and copies what is before and after it, with no second walk.
    private(set) var region: Range<Int>?
    private(set) var regionIsContiguous = true

    /// Reads the `KeyValue`s in field `field` of `message`.
    package mutating func load(field: UInt32, of message: WireReader) throws(WireError) {
        self.entries.removeAll(keepingCapacity: true)
        self.rewritesOriginals = false
        self.appendedCount = 0
        self.region = nil
        self.regionIsContiguous = true
        let base = message.position
        var regionStart = -1
        var regionEnd = -1
        var otherSinceLast = false
        var reader = message
        while !reader.isAtEnd {
            let fieldStart = reader.position
            let (number, wireType) = try reader.readTag()
            guard number == field, wireType == 2 else {
                try reader.skip(wireType: wireType, number: number)
                otherSinceLast = regionStart >= 0
                continue
            }
            let keyValue = try reader.readLengthDelimited().bytes
            let fieldBytes = WireBytes(start: fieldStart, count: reader.position - fieldStart)
            if regionStart < 0 {
                regionStart = fieldStart - base
            } else if otherSinceLast {
                self.regionIsContiguous = false
            }
            regionEnd = reader.position - base
            otherSinceLast = false
            let (key, value) = Self.split(keyValue)
            self.entries.append(Entry(key: key, value: value, original: fieldBytes))
        }
        if regionStart >= 0 { self.region = regionStart..<regionEnd }
    }

    /// Starts an empty list (a message without attributes, or a test).
    package mutating func clear() {
        self.region = nil
        self.regionIsContiguous = true
        self.entries.removeAll(keepingCapacity: true)
        self.rewritesOriginals = false
        self.appendedCount = 0
    }

    /// A `KeyValue`'s key and `AnyValue` content.
    @inline(__always)
    static func split(_ keyValue: WireBytes) -> (key: WireBytes, value: WireBytes?) {
        let p = keyValue.start
        let count = keyValue.count
        // key (field 1) and value (field 2), each under 128 bytes, in that order.
        if count >= 2, p[0] == 0x0A, p[1] < 0x80 {
            let keyEnd = 2 + Int(p[1])
            if keyEnd == count { return (WireBytes(start: p + 2, count: keyEnd - 2), nil) }
            if keyEnd + 2 <= count, p[keyEnd] == 0x12, p[keyEnd + 1] < 0x80, keyEnd + 2 + Int(p[keyEnd + 1]) == count {
                return (WireBytes(start: p + 2, count: keyEnd - 2), WireBytes(start: p + keyEnd + 2, count: count - keyEnd - 2))
            }
        }
        var reader = keyValue.reader
        var key = WireBytes.empty
        var value: WireBytes?
        while !reader.isAtEnd {
            guard let (number, wireType) = try? reader.readTag() else { break }
            if number == 1 && wireType == 2, let bytes = try? reader.readLengthDelimited() {
                key = bytes.bytes
            } else if number == 2 && wireType == 2, let bytes = try? reader.readLengthDelimited() {
                value = bytes.bytes
            } else if (try? reader.skip(wireType: wireType, number: number)) == nil {
                break
            }
        }
        return (key, value)
    }

    // MARK: Reading

    @inline(__always)
    package func firstIndex(of key: WireBytes) -> Int? {
        self.entries.firstIndex { $0.key == key }
    }

    package func key(at index: Int) -> WireBytes { self.entries[index].key }

    package func value(at index: Int) -> AnyValueView? {
        guard let bytes = self.entries[index].value else { return .empty }
        return AnyValueView.read(bytes)
    }

    package func rawValue(at index: Int) -> WireBytes? { self.entries[index].value }

    package func value(for key: WireBytes) -> AnyValueView? {
        self.firstIndex(of: key).flatMap { self.value(at: $0) }
    }

    // MARK: Editing

    /// Replaces the value of entry `index` with `AnyValue` content `value`.
    package mutating func setValue(at index: Int, to value: WireBytes?) {
        if self.entries[index].original != nil {
            self.entries[index].original = nil
            if index < self.entries.count - self.appendedCount { self.rewritesOriginals = true }
        }
        self.entries[index].value = value
    }

    package mutating func append(key: WireBytes, value: WireBytes?) {
        self.entries.append(Entry(key: key, value: value, original: nil))
        self.appendedCount += 1
    }

    package mutating func remove(at index: Int) {
        if index >= self.entries.count - self.appendedCount {
            self.appendedCount -= 1
        } else {
            self.rewritesOriginals = true
        }
        self.entries.remove(at: index)
    }

    /// Sets `key` to `value`: in place when present, else added at the end.
    package mutating func put(key: WireBytes, value: WireBytes?) {
        if let index = self.firstIndex(of: key) {
            self.setValue(at: index, to: value)
        } else {
            self.append(key: key, value: value)
        }
    }

    // MARK: Writing

    /// The encoded size of every entry as field `field` (tag, length, `KeyValue`).
    func encodedCount(field: UInt32, from start: Int = 0) -> Int {
        let tagCount = AnyValueEncoding.varintCount(UInt64(field) << 3 | 2)
        var total = 0
        var index = start
        while index < self.entries.count {
            let entry = self.entries[index]
            index += 1
            if let original = entry.original {
                total += original.count
                continue
            }
            let content = Self.keyValueCount(entry)
            total += tagCount + AnyValueEncoding.varintCount(UInt64(content)) + content
        }
        return total
    }

    /// The size of a new or changed entry's `KeyValue`.
    @inline(__always)
    static func keyValueCount(_ entry: Entry) -> Int {
        var count = 1 + AnyValueEncoding.varintCount(UInt64(entry.key.count)) + entry.key.count
        if let value = entry.value { count += 1 + AnyValueEncoding.varintCount(UInt64(value.count)) + value.count }
        return count
    }

    /// Writes entries `start...` as field `field` of the message being written.
    func write(field: UInt32, from start: Int = 0, to sink: inout ByteSink) {
        let tag = UInt64(field) << 3 | 2
        var index = start
        while index < self.entries.count {
            let entry = self.entries[index]
            index += 1
            if let original = entry.original {
                // Untouched neighbours were next to each other in the request: one copy for the run.
                let runStart = original.start
                var runEnd = original.start + original.count
                while index < self.entries.count, let next = self.entries[index].original, next.start == runEnd {
                    runEnd += next.count
                    index += 1
                }
                sink.append(start: runStart, count: runEnd - runStart)
                continue
            }
            sink.appendVarint(tag)
            sink.appendVarint(UInt64(Self.keyValueCount(entry)))
            sink.append(0x0A)
            sink.appendVarint(UInt64(entry.key.count))
            sink.append(entry.key)
            if let value = entry.value {
                sink.append(0x12)
                sink.appendVarint(UInt64(value.count))
                sink.append(value)
            }
        }
    }
}
