import OTLPDStringOps

extension RegexPattern {
    /// Whether the pattern matches anywhere in `text`.
    @inline(__always)
    package func matches(_ text: WireBytes, scratch: RegexScratch) -> Bool {
        self.matches(UnsafeRawBufferPointer(start: text.start, count: text.count), scratch: scratch)
    }

    /// The groups 1...n of the first match in `text`, as slices of it
    /// (empty for a group that took no part), or nil when nothing matches.
    package func captures(_ text: WireBytes, scratch: RegexScratch) -> [WireBytes]? {
        guard let ranges = self.captures(UnsafeRawBufferPointer(start: text.start, count: text.count), scratch: scratch) else { return nil }
        return ranges.map { $0.map { text.slice($0) } ?? .empty }
    }
}
