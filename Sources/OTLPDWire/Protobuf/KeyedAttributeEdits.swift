/// Attribute edits that find their attribute by key alone and do the same
/// to every item: insert, update and upsert with a literal value, and
/// delete by key, each key named by one action only. Keys are then
/// independent of each other, so the actions can be applied while an item's
/// bytes are copied, in one pass and without an `AttributeList`; the result
/// is what running them in order gives (each acts on the first attribute
/// with its key; inserted attributes come after the item's own).
// Sendable: the entries are written once, before the value is shared, and read-only after.
package struct KeyedAttributeEdits: @unchecked Sendable {
    package enum Kind: UInt8, Sendable {
        /// Add the attribute when the key is missing.
        case insert
        /// Set the value when the key is there.
        case update
        /// Set the value, or add the attribute when the key is missing.
        case upsert
        case delete
    }

    /// One edit as the per-item loop reads it.
    struct Entry {
        let kind: Kind
        let key: WireBytes
        /// The whole `KeyValue` (key and value) a setting edit writes, encoded once.
        let keyValue: WireBytes
    }

    /// Owns the entries and the encoded `KeyValue`s they point into.
    private final class Table: @unchecked Sendable {
        // Written once in init, read-only afterwards, freed in deinit.
        let entries: UnsafeMutableBufferPointer<Entry>
        let encoded: WireText

        init(_ entries: [Entry], encoded: WireText) {
            self.entries = .allocate(capacity: max(entries.count, 1))
            _ = self.entries.initialize(from: entries)
            self.encoded = encoded
        }

        deinit {
            self.entries.deallocate()
        }
    }

    /// What the per-item loop reads: plain values, copied without reference
    /// counting, valid while the `KeyedAttributeEdits` they came from lives.
    struct View {
        let entries: UnsafeBufferPointer<Entry>
        /// How much an item can grow: every addition or new value at its largest.
        let growth: Int
        /// Bit n set when some key is n bytes long (bit 63: 63 or longer): most
        /// attributes are passed over on their key's length alone.
        let keyLengths: UInt64

        @inline(__always)
        func index(of key: WireBytes) -> Int? {
            guard self.keyLengths & 1 << UInt64(min(key.count, 63)) != 0 else { return nil }
            var index = 0
            while index < self.entries.count {
                if self.entries[index].key.equalsQuickly(key) { return index }
                index += 1
            }
            return nil
        }
    }

    private let table: Table
    let view: View

    /// Nil when the edits cannot be applied key by key: a key named twice, or
    /// more edits than one item's bookkeeping holds. `value` is `AnyValue`
    /// content, for every kind but delete.
    package init?(_ edits: [(key: WireBytes, kind: Kind, value: WireBytes?)]) {
        guard edits.count <= 64 else { return nil }
        for (index, edit) in edits.enumerated() where edits[..<index].contains(where: { $0.key == edit.key }) {
            return nil
        }
        var encoded: [UInt8] = []
        var ranges: [Range<Int>] = []
        for (key, kind, value) in edits {
            let start = encoded.count
            if kind != .delete, let value {
                encoded.append(0x0A)
                AnyValueLiteral.appendVarint(UInt64(key.count), to: &encoded)
                encoded += key.byteArray
                encoded.append(0x12)
                AnyValueLiteral.appendVarint(UInt64(value.count), to: &encoded)
                encoded += value.byteArray
            }
            ranges.append(start..<encoded.count)
        }
        let text = WireText(encoded)
        let entries = zip(edits, ranges).map { Entry(kind: $0.kind, key: $0.key, keyValue: text.bytes.slice($1)) }
        let table = Table(entries, encoded: text)
        self.table = table
        self.view = View(
            entries: UnsafeBufferPointer(start: table.entries.baseAddress, count: entries.count),
            growth: entries.reduce(0) { $0 + ($1.kind == .delete ? 0 : $1.keyValue.count + 4) },
            keyLengths: edits.reduce(0) { $0 | 1 << UInt64(min($1.key.count, 63)) })
    }
}

extension AttributeRewriter {
    /// Writes item `content` as field `field` with `edits` applied to its
    /// attributes (field `attributeField`): what no edit touches is copied in
    /// runs, additions go at the end. Returns whether anything changed.
    static func writeEditedItem(
        _ field: UInt32, _ content: WireReader, attributeField: UInt32, _ edits: KeyedAttributeEdits.View, to sink: inout ByteSink
    ) throws(WireError) -> Bool {
        Self.appendSmallVarint(UInt64(field) << 3 | 2, to: &sink)
        let pending = sink.beginLength(expected: content.remaining + edits.growth)
        // (0 never matches: a field number above 15 takes a longer tag.)
        let attributeTag: UInt8 = attributeField < 16 ? UInt8(attributeField << 3 | 2) : 0
        let keyLengths = edits.keyLengths
        let end = content.end
        var p = content.position
        var runStart = p
        var seen: UInt64 = 0
        var changed = false
        // The quick paths read a field's first two bytes: up to the last one.
        let last = end - 1
        while p < end {
            // Passes over fields to the next attribute whose key length some
            // edit has. Fields with a one-byte tag and a one-byte length or a
            // fixed size (nearly all of a span's) take a few instructions each.
            let fieldStart = p
            var candidate: WireBytes?
            if p < last {
                let tag = p[0]
                let second = p[1]
                if tag & 0x87 == 0x02 {
                    // Length-delimited: ids, names, strings, attributes.
                    if second < 0x80 {
                        p += 2 + Int(second)
                        guard p <= end else { throw WireError(.truncated, offset: fieldStart - content.origin) }
                        guard tag == attributeTag else { continue }
                        // A key written first with a one-byte length (as every encoder
                        // writes it) that no edit's key matches in length: passed over.
                        if second >= 2 && fieldStart[2] == 0x0A && fieldStart[3] < 0x80
                            && keyLengths & 1 << UInt64(min(fieldStart[3], 63)) == 0
                        {
                            continue
                        }
                        candidate = WireBytes(start: fieldStart + 2, count: Int(second))
                    }
                } else if tag & 0x87 == 0x01 {
                    // Fixed 64-bit: the times.
                    if end - p >= 9 {
                        p += 9
                        continue
                    }
                } else if tag & 0x87 == 0x00 && second < 0x80 {
                    // A one-byte varint: kind, flags, counts.
                    p += 2
                    continue
                }
            }
            if candidate == nil {
                let field = try Self.readField(at: p, content: content, attributeField: attributeField)
                p = field.next
                guard let attribute = field.attribute else { continue }
                candidate = attribute
            }
            guard let keyValue = candidate else { continue }
            guard let index = edits.index(of: Self.key(of: keyValue)), seen & (1 << index) == 0 else { continue }
            seen |= 1 << index
            let entry = edits.entries[index]
            switch entry.kind {
            case .insert:
                continue
            case .delete:
                sink.append(start: runStart, count: fieldStart - runStart)
            case .update, .upsert:
                sink.append(start: runStart, count: fieldStart - runStart)
                Self.appendField(attributeField, entry.keyValue, to: &sink)
            }
            runStart = p
            changed = true
        }
        sink.append(start: runStart, count: p - runStart)
        var index = 0
        while index < edits.entries.count {
            let entry = edits.entries[index]
            if seen & (1 << index) == 0 && (entry.kind == .insert || entry.kind == .upsert) {
                Self.appendField(attributeField, entry.keyValue, to: &sink)
                changed = true
            }
            index += 1
        }
        sink.endLength(pending)
        return changed
    }

    /// One field read the general way, for what the quick paths above do
    /// not take: where the next field starts, and the field's content when
    /// it is an attribute. (Returned, not written through a pointer, so the
    /// walk's position stays in a register.)
    @inline(never)
    static func readField(
        at position: UnsafePointer<UInt8>, content: WireReader, attributeField: UInt32
    ) throws(WireError) -> (next: UnsafePointer<UInt8>, attribute: WireBytes?) {
        var reader = content
        reader.position = position
        let (number, wireType) = try reader.readTag()
        if number == attributeField && wireType == 2 {
            let attribute = try reader.readLengthDelimited().bytes
            return (reader.position, attribute)
        }
        try reader.skip(wireType: wireType, number: number)
        return (reader.position, nil)
    }

    /// A `KeyValue`'s key: at its start, with a one-byte length, as every encoder writes it.
    @inline(__always)
    static func key(of keyValue: WireBytes) -> WireBytes {
        let p = keyValue.start
        if keyValue.count >= 2, p[0] == 0x0A, p[1] < 0x80, 2 + Int(p[1]) <= keyValue.count {
            return WireBytes(start: p + 2, count: Int(p[1]))
        }
        return Self.keyInAnyLayout(keyValue)
    }

    @inline(never)
    static func keyInAnyLayout(_ keyValue: WireBytes) -> WireBytes {
        AttributeList.split(keyValue).key
    }

    /// A length-delimited field: tag, length, content.
    @inline(__always)
    static func appendField(_ field: UInt32, _ content: WireBytes, to sink: inout ByteSink) {
        Self.appendSmallVarint(UInt64(field) << 3 | 2, to: &sink)
        Self.appendSmallVarint(UInt64(content.count), to: &sink)
        sink.append(content)
    }

    /// Most tags and lengths here take one byte.
    @inline(__always)
    static func appendSmallVarint(_ value: UInt64, to sink: inout ByteSink) {
        if value < 0x80 {
            sink.append(UInt8(truncatingIfNeeded: value))
        } else {
            sink.appendVarint(value)
        }
    }
}

extension WireBytes {
    /// `==` without a call for the short strings keys are: eight bytes at a time.
    @inline(__always)
    func equalsQuickly(_ other: WireBytes) -> Bool {
        guard self.count == other.count else { return false }
        var offset = 0
        while offset + 8 <= self.count {
            let a = UnsafeRawPointer(self.start + offset).loadUnaligned(as: UInt64.self)
            let b = UnsafeRawPointer(other.start + offset).loadUnaligned(as: UInt64.self)
            if a != b { return false }
            offset += 8
        }
        while offset < self.count {
            if self.start[offset] != other.start[offset] { return false }
            offset += 1
        }
        return true
    }
}
