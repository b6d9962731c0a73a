#if canImport(Glibc)
import Glibc
#endif

/// Bytes made once (a config key, an encoded config value) that the wire
/// walkers compare and copy as `WireBytes`, with no array bridging per use.
package final class WireText: @unchecked Sendable {
    // Written once in init, read-only afterwards, freed in deinit.
    private let storage: UnsafeMutablePointer<UInt8>
    package let bytes: WireBytes

    package init(_ content: [UInt8]) {
        self.storage = .allocate(capacity: max(content.count, 1))
        self.storage.initialize(from: content, count: content.count)
        self.bytes = WireBytes(start: UnsafePointer(self.storage), count: content.count)
    }

    package convenience init(_ text: String) {
        self.init(Array(text.utf8))
    }

    deinit {
        self.storage.deallocate()
    }

    package var string: String { self.bytes.string }
}

extension WireBytes {
    package static func == (lhs: WireBytes, rhs: WireBytes) -> Bool {
        lhs.count == rhs.count && (lhs.count == 0 || memcmp(lhs.start, rhs.start, lhs.count) == 0)
    }

    package func hasPrefix(_ prefix: WireBytes) -> Bool {
        prefix.count <= self.count && (prefix.count == 0 || memcmp(self.start, prefix.start, prefix.count) == 0)
    }

    /// The bytes `range` of these.
    package func slice(_ range: Range<Int>) -> WireBytes {
        precondition(range.lowerBound >= 0 && range.upperBound <= self.count)
        return WireBytes(start: self.start + range.lowerBound, count: range.count)
    }

    package static var empty: WireBytes { WireBytes(start: WireReader.emptyBytes, count: 0) }

    /// A reader over these bytes (a sub-message held as bytes).
    package var reader: WireReader {
        WireReader(position: self.start, end: self.start + self.count, origin: self.start)
    }
}

extension WireBytes {
    /// The very same bytes (not equal ones): whether two views are of one field.
    package func isSameRange(as other: WireBytes) -> Bool {
        self.start == other.start && self.count == other.count
    }
}

// A read-only view: what it points into (a received request, a `WireText`)
// is never written, so sharing the view is safe while that is alive.
extension WireBytes: @unchecked Sendable {}
