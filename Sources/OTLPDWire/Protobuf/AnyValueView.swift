import OTLPDStringOps

/// An `AnyValue` as it sits on the wire: read without copying, and written
/// back as the bytes of an `AnyValue` message.
package enum AnyValueView {
    case empty
    case string(WireBytes)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    /// The content of an `ArrayValue`.
    case array(WireBytes)
    /// The content of a `KeyValueList`.
    case keyValueList(WireBytes)
    case bytes(WireBytes)

    /// Reads the content of an `AnyValue` message; the last value field
    /// wins, as protobuf's oneof rules say. Nil when the bytes are malformed.
    package static func read(_ content: WireBytes) -> AnyValueView? {
        // The commonest shape: a string of under 128 bytes and nothing else.
        if content.count >= 2, content[0] == 0x0A, content[1] < 0x80, Int(content[1]) + 2 == content.count {
            return .string(content.slice(2..<content.count))
        }
        var reader = content.reader
        var value = AnyValueView.empty
        do throws(WireError) {
            while !reader.isAtEnd {
                let (number, wireType) = try reader.readTag()
                switch (number, wireType) {
                case (1, 2): value = .string(try reader.readLengthDelimited().bytes)
                case (2, 0): value = .bool(try reader.readVarint() != 0)
                case (3, 0): value = .int(Int64(bitPattern: try reader.readVarint()))
                case (4, 1): value = .double(Double(bitPattern: try reader.readFixed64()))
                case (5, 2): value = .array(try reader.readLengthDelimited().bytes)
                case (6, 2): value = .keyValueList(try reader.readLengthDelimited().bytes)
                case (7, 2): value = .bytes(try reader.readLengthDelimited().bytes)
                default: try reader.skip(wireType: wireType, number: number)
                }
            }
        } catch {
            return nil
        }
        return value
    }

    /// The values of an `ArrayValue`'s content.
    package static func elements(of array: WireBytes) -> [WireBytes] {
        Self.repeatedField(1, in: array)
    }

    /// The `(key, value)` pairs of a `KeyValueList`'s content (value nil when absent).
    package static func entries(of list: WireBytes) -> [(key: WireBytes, value: WireBytes?)] {
        Self.repeatedField(1, in: list).map { AttributeList.split($0) }
    }

    static func repeatedField(_ field: UInt32, in content: WireBytes) -> [WireBytes] {
        var result: [WireBytes] = []
        var reader = content.reader
        while !reader.isAtEnd {
            guard let (number, wireType) = try? reader.readTag() else { break }
            if number == field && wireType == 2 {
                guard let element = try? reader.readLengthDelimited() else { break }
                result.append(element.bytes)
            } else if (try? reader.skip(wireType: wireType, number: number)) == nil {
                break
            }
        }
        return result
    }
}

/// Writes `AnyValue` contents into a `ScratchArena`.
package enum AnyValueEncoding {
    package static func string(_ text: WireBytes, in arena: ScratchArena) -> WireBytes {
        arena.write(upTo: text.count + 11) { out in
            out[0] = 0x0A
            var offset = 1 + Self.putVarint(UInt64(text.count), out + 1)
            if text.count > 0 { (out + offset).update(from: text.start, count: text.count) }
            offset += text.count
            return offset
        }
    }

    package static func string(_ text: String, in arena: ScratchArena) -> WireBytes {
        var copy = text
        return copy.withUTF8 { utf8 in
            Self.string(WireBytes(start: utf8.baseAddress ?? WireReader.emptyBytes, count: utf8.count), in: arena)
        }
    }

    package static func int(_ value: Int64, in arena: ScratchArena) -> WireBytes {
        arena.write(upTo: 11) { out in
            out[0] = 0x18
            return 1 + Self.putVarint(UInt64(bitPattern: value), out + 1)
        }
    }

    package static func double(_ value: Double, in arena: ScratchArena) -> WireBytes {
        arena.write(upTo: 9) { out in
            out[0] = 0x21
            UnsafeMutableRawPointer(out + 1).storeBytes(of: value.bitPattern.littleEndian, as: UInt64.self)
            return 9
        }
    }

    package static func bool(_ value: Bool, in arena: ScratchArena) -> WireBytes {
        arena.write(upTo: 2) { out in
            out[0] = 0x10
            out[1] = value ? 1 : 0
            return 2
        }
    }

    /// The lowercase hex SHA-256 of `data`, as a string `AnyValue`.
    package static func sha256Hex(of data: WireBytes, in arena: ScratchArena) -> WireBytes {
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digest) { output in
            SHA256.digest(UnsafeRawBufferPointer(start: data.start, count: data.count), into: output)
        }
        return withUnsafeBytes(of: &digest) { raw in
            arena.write(upTo: 66) { out in
                out[0] = 0x0A
                out[1] = 64
                for index in 0..<32 {
                    out[2 + 2 * index] = hexDigits[Int(raw[index] >> 4)]
                    out[3 + 2 * index] = hexDigits[Int(raw[index] & 0xF)]
                }
                return 66
            }
        }
    }

    /// A copy of `bytes` in the arena (for bytes made on the stack).
    package static func copy(_ bytes: [UInt8], in arena: ScratchArena) -> WireBytes {
        bytes.withUnsafeBufferPointer { buffer in
            arena.concatenate(WireBytes(start: buffer.baseAddress ?? WireReader.emptyBytes, count: buffer.count))
        }
    }

    @inline(__always)
    static func putVarint(_ value: UInt64, _ out: UnsafeMutablePointer<UInt8>) -> Int {
        var v = value
        var n = 0
        while v >= 0x80 {
            out[n] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            n += 1
        }
        out[n] = UInt8(truncatingIfNeeded: v)
        return n + 1
    }

    @inline(__always)
    static func varintCount(_ value: UInt64) -> Int {
        // Seven bits a byte: the bits in use, rounded up to sevens (at least one byte).
        (64 - (value | 1).leadingZeroBitCount + 6) / 7
    }
}
