/// Copies UTF-8 bytes into a JSON string body: escapes `"`, `\` and control
/// characters, replaces invalid UTF-8 with U+FFFD, and copies runs of plain
/// ASCII eight bytes at a time.
package enum JSONStringEscaper {
    @inline(__always)
    package static func append(_ bytes: WireBytes, to sink: inout ByteSink) {
        // Most strings need no escaping: copy them whole.
        if Self.isPlain(bytes.start, bytes.count) {
            sink.append(start: bytes.start, count: bytes.count)
        } else {
            Self.appendSlow(bytes.start, bytes.count, to: &sink)
        }
    }

    /// True when the bytes are ASCII with nothing to escape: checked a word
    /// at a time, the last word overlapping.
    @inline(__always)
    package static func isPlain(_ start: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        if count >= 8 {
            var i = 0
            while i + 8 <= count {
                if Self.needsAttention(Self.word(start + i)) { return false }
                i += 8
            }
            return i == count || !Self.needsAttention(Self.word(start + count - 8))
        }
        for i in 0..<count where start[i] < 0x20 || start[i] == 0x22 || start[i] == 0x5C || start[i] >= 0x80 {
            return false
        }
        return true
    }

    @inline(__always)
    private static func word(_ p: UnsafePointer<UInt8>) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
    }

    /// Byte by byte, for strings with something to escape or non-ASCII text.
    private static func appendSlow(_ start: UnsafePointer<UInt8>, _ count: Int, to sink: inout ByteSink) {
        sink.reserve(count)
        var i = 0
        var runStart = 0
        while i < count {
            if count - i >= 8 && !Self.needsAttention(Self.word(start + i)) {
                i += 8
                continue
            }
            let byte = start[i]
            if byte >= 0x20 && byte != 0x22 && byte != 0x5C && byte < 0x80 {
                i += 1
                continue
            }
            if byte >= 0x80 {
                let length = Self.validSequenceLength(start + i, count - i)
                // U+2028 and U+2029 (E2 80 A8/A9) are valid in JSON but end a line for JavaScript and
                // for Python's splitlines: written escaped, as Go's encoder does, so a line stays a line.
                if length == 3 && byte == 0xE2 && start[i + 1] == 0x80 && (start[i + 2] == 0xA8 || start[i + 2] == 0xA9) {
                    sink.append(start: start + runStart, count: i - runStart)
                    sink.append(start: start[i + 2] == 0xA8 ? lineSeparatorEscape : paragraphSeparatorEscape, count: 6)
                    i += 3
                    runStart = i
                    continue
                }
                if length > 0 {
                    i += length
                    continue
                }
                sink.append(start: start + runStart, count: i - runStart)
                sink.append(start: replacementCharacter, count: 3)
                i += 1
                runStart = i
                continue
            }
            sink.append(start: start + runStart, count: i - runStart)
            Self.appendEscape(byte, to: &sink)
            i += 1
            runStart = i
        }
        sink.append(start: start + runStart, count: count - runStart)
    }

    /// True when the eight bytes hold a byte < 0x20, `"`, `\` or >= 0x80.
    @inline(__always)
    private static func needsAttention(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let control = (word &- ones &* 0x20) & ~word & highs
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let hasQuote = (quote &- ones) & ~quote & highs
        let hasBackslash = (backslash &- ones) & ~backslash & highs
        return (word & highs) | control | hasQuote | hasBackslash != 0
    }

    private static func appendEscape(_ byte: UInt8, to sink: inout ByteSink) {
        switch byte {
        case 0x22: sink.append("\\\"")
        case 0x5C: sink.append("\\\\")
        case 0x0A: sink.append("\\n")
        case 0x0D: sink.append("\\r")
        case 0x09: sink.append("\\t")
        case 0x08: sink.append("\\b")
        case 0x0C: sink.append("\\f")
        default:
            sink.append("\\u00")
            sink.append(hexDigits[Int(byte >> 4)])
            sink.append(hexDigits[Int(byte & 0x0F)])
        }
    }

    /// The length of the valid UTF-8 sequence at `p` (which starts with a
    /// byte >= 0x80), or 0 when it is not valid.
    @inline(__always)
    private static func validSequenceLength(_ p: UnsafePointer<UInt8>, _ available: Int) -> Int {
        let b0 = p[0]
        @inline(__always) func continuation(_ i: Int) -> Bool { i < available && p[i] & 0xC0 == 0x80 }
        switch b0 {
        case 0xC2...0xDF:
            return continuation(1) ? 2 : 0
        case 0xE0:
            return available > 2 && (0xA0...0xBF).contains(p[1]) && continuation(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return continuation(1) && continuation(2) ? 3 : 0
        case 0xED:
            return available > 2 && (0x80...0x9F).contains(p[1]) && continuation(2) ? 3 : 0
        case 0xF0:
            return available > 3 && (0x90...0xBF).contains(p[1]) && continuation(2) && continuation(3) ? 4 : 0
        case 0xF1...0xF3:
            return continuation(1) && continuation(2) && continuation(3) ? 4 : 0
        case 0xF4:
            return available > 3 && (0x80...0x8F).contains(p[1]) && continuation(2) && continuation(3) ? 4 : 0
        default:
            return 0
        }
    }
}

private var replacementCharacter: UnsafePointer<UInt8> { ("\u{FFFD}" as StaticString).utf8Start }

extension ByteSink {
    /// `text` escaped for the inside of a JSON string.
    package mutating func appendJSONEscaped(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            JSONStringEscaper.append(WireBytes(start: utf8.baseAddress ?? WireReader.emptyBytes, count: utf8.count), to: &self)
        }
    }
}
private var lineSeparatorEscape: UnsafePointer<UInt8> { ("\\u2028" as StaticString).utf8Start }
private var paragraphSeparatorEscape: UnsafePointer<UInt8> { ("\\u2029" as StaticString).utf8Start }
