internal import CPCRE2

/// Why a regular expression does not compile.
public struct RegexError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Byte offset in the pattern where PCRE2 gave up.
    public var offset: Int

    public var description: String { "\(self.message) at offset \(self.offset)" }
}

/// A regular expression compiled once (with PCRE2's JIT where the CPU has
/// one) and matched from any thread. The syntax is Go's RE2 as the
/// Collector's configs use it: `(?P<name>...)` groups, unanchored search,
/// `$` only at the very end, ASCII `\d \w \s`.
public final class RegexPattern: @unchecked Sendable {
    // The compiled code is immutable after compilation, so sharing it between
    // threads is safe; each match brings its own `RegexScratch`.
    private let code: OpaquePointer
    public let pattern: String
    /// Capture groups 1...n, with the name of each named one.
    public let groupNames: [String?]

    public init(_ pattern: String) throws(RegexError) {
        var errorCode: Int32 = 0
        var errorOffset: Int = 0
        let options = UInt32(PCRE2_UTF) | UInt32(PCRE2_MATCH_INVALID_UTF) | UInt32(PCRE2_DOLLAR_ENDONLY)
        let compiled = Array(pattern.utf8).withUnsafeBufferPointer { bytes in
            pcre2_compile_8(bytes.baseAddress, bytes.count, options, &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw RegexError(message: Self.errorMessage(errorCode), offset: errorOffset)
        }
        // Without a JIT (or out of executable memory) the interpreter runs the same pattern.
        _ = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE))
        self.code = compiled
        self.pattern = pattern
        self.groupNames = Self.groupNames(compiled)
    }

    deinit {
        pcre2_code_free_8(self.code)
    }

    /// Whether the pattern matches anywhere in `text` (UTF-8 bytes).
    public func matches(_ text: UnsafeRawBufferPointer, scratch: RegexScratch) -> Bool {
        self.run(text, scratch) >= 0
    }

    public func matches(_ text: String, scratch: RegexScratch) -> Bool {
        var copy = text
        return copy.withUTF8 { self.matches(UnsafeRawBufferPointer($0), scratch: scratch) }
    }

    /// The byte ranges of the groups 1...n of the first match (nil for a
    /// group that took no part in it), or nil when nothing matches.
    public func captures(_ text: UnsafeRawBufferPointer, scratch: RegexScratch) -> [Range<Int>?]? {
        guard self.run(text, scratch) >= 0 else { return nil }
        let vector = pcre2_get_ovector_pointer_8(scratch.matchData)!
        let count = Int(pcre2_get_ovector_count_8(scratch.matchData))
        precondition(count > self.groupNames.count, "a RegexScratch with room for \(self.groupNames.count) groups is needed")
        let unset = otlpd_pcre2_unset()
        return (1..<count).prefix(self.groupNames.count).map { group in
            vector[2 * group] == unset ? nil : vector[2 * group]..<vector[2 * group + 1]
        }
    }

    private func run(_ text: UnsafeRawBufferPointer, _ scratch: RegexScratch) -> Int32 {
        // An empty buffer may have no address; PCRE2 needs one even for length 0.
        let subject = text.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? Self.empty
        return pcre2_match_8(self.code, subject, text.count, 0, 0, scratch.matchData, nil)
    }

    private static var empty: UnsafePointer<UInt8> { ("" as StaticString).utf8Start }

    private static func errorMessage(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return length > 0 ? String(decoding: buffer.prefix(Int(length)), as: UTF8.self) : "error \(code)"
    }

    private static func groupNames(_ code: OpaquePointer) -> [String?] {
        var captureCount: UInt32 = 0
        var nameCount: UInt32 = 0
        var entrySize: UInt32 = 0
        var table: UnsafePointer<UInt8>?
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_CAPTURECOUNT), &captureCount)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMECOUNT), &nameCount)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMEENTRYSIZE), &entrySize)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMETABLE), &table)
        var names = [String?](repeating: nil, count: Int(captureCount))
        guard let table else { return names }
        // Each entry: the group number (two bytes, big-endian), then the name and a NUL.
        for index in 0..<Int(nameCount) {
            let entry = table + index * Int(entrySize)
            let group = Int(entry[0]) << 8 | Int(entry[1])
            if group >= 1 && group <= names.count {
                names[group - 1] = String(cString: entry + 2)
            }
        }
        return names
    }
}

/// The per-match working memory PCRE2 needs. Not shared between threads:
/// make one per call site that matches (a processor makes one per request).
public final class RegexScratch {
    fileprivate let matchData: OpaquePointer

    /// Room for `groups` capture groups.
    public init(groups: Int = 16) {
        self.matchData = pcre2_match_data_create_8(UInt32(groups + 1), nil)!
    }

    deinit {
        pcre2_match_data_free_8(self.matchData)
    }
}
