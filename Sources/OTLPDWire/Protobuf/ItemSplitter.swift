import NIOCore
import OTLPDCore

/// Splits a request into requests of at most `maxItems` spans, data points
/// or log records, without decoding: each part repeats the fields of every
/// container it cuts through (resource, scope, metric and its aggregation)
/// around its share of the children. Parts are filled in order, so a
/// resource is cut only where a part is full.
package enum ItemSplitter {
    /// A request's content, or a container's, with how many items it holds.
    package struct Part {
        package var bytes: [UInt8]
        package var items: Int
    }

    /// The fields that lead from each level to the next, down to the items.
    static func path(for signal: Signal) -> [[UInt32]] {
        switch signal {
        // Request.resource_x, ResourceX.scope_x, ScopeX.spans / log_records.
        case .traces, .logs: [[1], [2], [2]]
        // ... ScopeMetrics.metrics, Metric.gauge|sum|histogram|exponential_histogram|summary, X.data_points.
        case .metrics: [[1], [2], [2], [5, 7, 9, 10, 11], [1]]
        }
    }

    /// Parts of at most `maxItems` items each (a single item is never cut).
    package static func split(_ payload: ByteBuffer, signal: Signal, maxItems: Int) -> [TelemetryBatch] {
        let path = Self.path(for: signal)
        let parts: [Part]? = WireReader.withReader(payload) { (request: inout WireReader) -> [Part]? in
            try? Self.split(request, depth: 0, path: path, first: maxItems, max: maxItems)
        }
        guard let parts else { return [TelemetryBatch(signal: signal, payload: payload, itemCount: 0)] }
        return parts.map { TelemetryBatch(signal: signal, payload: ByteBuffer(bytes: $0.bytes), itemCount: $0.items) }
    }

    /// Splits one container's content: its own fields go into every part,
    /// its children are shared out, the first part taking at most `first`
    /// items and the others at most `max`.
    static func split(_ content: WireReader, depth: Int, path: [[UInt32]], first: Int, max: Int) throws(WireError) -> [Part] {
        let childFields = path[depth]
        let childrenAreItems = depth + 1 == path.count
        var header: [UInt8] = []
        var children: [(field: UInt32, content: WireReader)] = []
        var scan = content
        while !scan.isAtEnd {
            let start = scan
            let (number, wireType) = try scan.readTag()
            if wireType == 2 && childFields.contains(number) {
                children.append((number, try scan.readLengthDelimited()))
            } else {
                try scan.skip(wireType: wireType, number: number)
                header += WireBytes(start: start.position, count: scan.position - start.position).byteArray
            }
        }

        var parts: [Part] = []
        var current = Part(bytes: header, items: 0)
        var currentHasChildren = false
        var capacity = first
        func close() {
            parts.append(current)
            current = Part(bytes: header, items: 0)
            currentHasChildren = false
            capacity = max
        }
        func append(_ field: UInt32, _ bytes: [UInt8], items: Int) {
            current.bytes += Self.varint(UInt64(field) << 3 | 2) + Self.varint(UInt64(bytes.count)) + bytes
            current.items += items
            currentHasChildren = true
        }

        for child in children {
            let count = childrenAreItems ? 1 : try Self.countItems(child.content, depth: depth + 1, path: path)
            if count == 0 || current.items + count <= capacity {
                append(child.field, child.content.bytes.byteArray, items: count)
                continue
            }
            if childrenAreItems {
                if current.items > 0 { close() }
                append(child.field, child.content.bytes.byteArray, items: count)
                continue
            }
            // The child does not fit whole: cut it too.
            if capacity - current.items <= 0 { close() }
            let pieces = try Self.split(child.content, depth: depth + 1, path: path, first: capacity - current.items, max: max)
            for (index, piece) in pieces.enumerated() {
                if index > 0 { close() }
                append(child.field, piece.bytes, items: piece.items)
            }
        }
        if currentHasChildren || parts.isEmpty { parts.append(current) }
        return parts
    }

    /// Items under a container at `depth`.
    static func countItems(_ content: WireReader, depth: Int, path: [[UInt32]]) throws(WireError) -> Int {
        guard depth < path.count else { return 1 }
        var count = 0
        var scan = content
        while !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            if wireType == 2 && path[depth].contains(number) {
                count += try Self.countItems(try scan.readLengthDelimited(), depth: depth + 1, path: path)
            } else {
                try scan.skip(wireType: wireType, number: number)
            }
        }
        return count
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }
}
