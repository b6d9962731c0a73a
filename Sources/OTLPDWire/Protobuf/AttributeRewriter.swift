import NIOCore
import OTLPDCore

/// What edits attributes as `AttributeRewriter` walks a request: a
/// processor's actions and its include/exclude rules.
package protocol AttributeEditor {
    /// Called once per resource: may edit its attributes. Returns whether
    /// the resource's items (spans, log records, data points) are to be
    /// visited with `editItem`.
    func editResource(_ attributes: inout AttributeList, resource: ResourceContext) -> Bool
    /// Called for each item of a visited resource.
    func editItem(_ attributes: inout AttributeList, context: ItemContext)
    /// When every item gets the same edits by key, they are applied while
    /// the items are copied, and `editItem` is not called.
    var keyedEdits: KeyedAttributeEdits? { get }
}

extension AttributeEditor {
    package var keyedEdits: KeyedAttributeEdits? { nil }
}

/// A resource's attributes, for the rules that look at them. A class: every
/// item of the resource refers to it.
package final class ResourceContext {
    package let attributes: AttributeList
    /// `service.name` when it is a string.
    package let serviceName: WireBytes?

    init(attributes: AttributeList, serviceName: WireBytes?) {
        self.attributes = attributes
        self.serviceName = serviceName
    }
}

/// Where an item sits and what it is, read lazily from its bytes.
package struct ItemContext {
    package enum Kind: Sendable {
        case span, logRecord, numberDataPoint, histogramDataPoint, exponentialHistogramDataPoint, summaryDataPoint
    }

    package let kind: Kind
    package let resource: ResourceContext
    /// The `InstrumentationScope` content, when the scope is there.
    package let scope: WireBytes?
    /// The `Metric` content, for data points.
    package let metric: WireBytes?
    /// The item's own content.
    package let item: WireBytes

    package var scopeName: WireBytes? { self.scope.flatMap { Self.string(1, in: $0) } }
    package var scopeVersion: WireBytes? { self.scope.flatMap { Self.string(2, in: $0) } }
    package var metricName: WireBytes? { self.metric.flatMap { Self.string(1, in: $0) } }
    /// `Span.name`.
    package var spanName: WireBytes? { self.kind == .span ? Self.string(5, in: self.item) : nil }
    /// `Span.kind` (0 when unset).
    package var spanKind: Int64 { self.kind == .span ? Self.varint(6, in: self.item) ?? 0 : 0 }
    /// `LogRecord.body`.
    package var logBody: AnyValueView? {
        guard self.kind == .logRecord, let body = Self.lastField(5, wireType: 2, in: self.item) else { return nil }
        return AnyValueView.read(body)
    }
    package var severityText: WireBytes? { self.kind == .logRecord ? Self.string(3, in: self.item) : nil }
    /// `LogRecord.severity_number` (0, unspecified, when unset).
    package var severityNumber: Int64 { self.kind == .logRecord ? Self.varint(2, in: self.item) ?? 0 : 0 }

    static func string(_ field: UInt32, in message: WireBytes) -> WireBytes? {
        Self.lastField(field, wireType: 2, in: message)
    }

    /// The last occurrence of a length-delimited field (protobuf's rule for singular fields).
    static func lastField(_ field: UInt32, wireType: UInt8, in message: WireBytes) -> WireBytes? {
        var reader = message.reader
        var found: WireBytes?
        while !reader.isAtEnd {
            guard let (number, type) = try? reader.readTag() else { return found }
            if number == field && type == 2 {
                guard let value = try? reader.readLengthDelimited() else { return found }
                found = value.bytes
            } else if (try? reader.skip(wireType: type, number: number)) == nil {
                return found
            }
        }
        return found
    }

    static func varint(_ field: UInt32, in message: WireBytes) -> Int64? {
        var reader = message.reader
        var found: Int64?
        while !reader.isAtEnd {
            guard let (number, type) = try? reader.readTag() else { return found }
            if number == field && type == 0 {
                guard let value = try? reader.readVarint() else { return found }
                found = Int64(bitPattern: value)
            } else if (try? reader.skip(wireType: type, number: number)) == nil {
                return found
            }
        }
        return found
    }
}

/// Rewrites the attributes of a validated request in one pass, without
/// decoding it: everything an editor does not touch is copied as it is,
/// and each changed message gets its new length.
package struct AttributeRewriter {
    var items = AttributeList(arena: ScratchArena(chunkSize: 4096))
    var resourceAttributes = AttributeList(arena: ScratchArena(chunkSize: 4096))
    var changed = false
    /// The editor's edits by key, read once per request.
    var keyed: KeyedAttributeEdits.View?

    /// The batch with `editor`'s changes, part by part, or nil when it changed nothing.
    package static func rewrite(_ batch: TelemetryBatch, editor: some AttributeEditor) throws(WireError) -> TelemetryBatch? {
        var parts = batch.parts
        var changed = false
        for index in parts.indices {
            if let rewritten = try Self.rewrite(parts[index], signal: batch.signal, editor: editor) {
                parts[index] = rewritten
                changed = true
            }
        }
        return changed ? TelemetryBatch(signal: batch.signal, parts: parts, itemCount: batch.itemCount, deadline: batch.deadline) : nil
    }

    /// The request with `editor`'s changes, or nil when it changed nothing.
    package static func rewrite(_ payload: ByteBuffer, signal: Signal, editor: some AttributeEditor) throws(WireError) -> ByteBuffer? {
        var rewriter = AttributeRewriter()
        let keyedEdits = editor.keyedEdits
        rewriter.keyed = keyedEdits?.view
        var output = ByteBuffer()
        var failure: WireError?
        // Written straight into the buffer that is handed on; a request that
        // grows past the estimate is written again with twice the room.
        ByteSink.write(into: &output, estimate: payload.readableBytes + payload.readableBytes / 8 + 256) { sink in
            rewriter.changed = false
            do throws(WireError) {
                try rewriter.request(payload, signal: signal, editor: editor, to: &sink)
            } catch {
                failure = error
            }
        }
        // The view points into the edits' table: kept alive until the walk is done.
        withExtendedLifetime(keyedEdits) {}
        if let failure { throw failure }
        return rewriter.changed ? output : nil
    }

    mutating func request(_ payload: ByteBuffer, signal: Signal, editor: some AttributeEditor, to sink: inout ByteSink) throws(WireError) {
        try WireReader.withReader(payload) { (request: inout WireReader) throws(WireError) in
            while !request.isAtEnd {
                let start = request.mark
                let (number, wireType) = try request.readTag()
                if number == 1 && wireType == 2 {
                    let resourceX = try request.readLengthDelimited()
                    try self.resourceX(resourceX, signal: signal, editor: editor, to: &sink)
                } else {
                    try request.skip(wireType: wireType, number: number)
                    Self.copy(from: start, to: request, &sink)
                }
            }
        }
    }

    static func copy(from start: WireReader.Mark, to reader: WireReader, _ sink: inout ByteSink) {
        sink.append(start: start.position, count: reader.position - start.position)
    }

    /// Writes a length-delimited field whose content is copied unchanged.
    static func copyField(_ field: UInt32, _ content: WireReader, _ sink: inout ByteSink) {
        sink.appendVarint(UInt64(field) << 3 | 2)
        sink.appendVarint(UInt64(content.remaining))
        sink.append(content.bytes)
    }

    /// ResourceSpans / ResourceLogs / ResourceMetrics: resource = 1, scope containers = 2.
    mutating func resourceX(_ content: WireReader, signal: Signal, editor: some AttributeEditor, to sink: inout ByteSink) throws(WireError) {
        self.resourceAttributes.arena.reset()
        var resource: WireReader?
        var scan = content
        while !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            if number == 1 && wireType == 2 { resource = try scan.readLengthDelimited() } else { try scan.skip(wireType: wireType, number: number) }
        }
        if let resource {
            try self.resourceAttributes.load(field: 1, of: resource)
        } else {
            self.resourceAttributes.clear()
        }
        let serviceName: WireBytes? = self.resourceAttributes.value(for: Self.serviceNameKey.bytes).flatMap {
            if case .string(let name) = $0 { name } else { nil }
        }
        let before = ResourceContext(attributes: self.resourceAttributes, serviceName: serviceName)
        let visitItems = editor.editResource(&self.resourceAttributes, resource: before)
        let context = ResourceContext(
            attributes: self.resourceAttributes,
            serviceName: self.resourceAttributes.isChanged ? self.resourceAttributes.value(for: Self.serviceNameKey.bytes).flatMap {
                if case .string(let name) = $0 { name } else { nil }
            } : serviceName)

        sink.appendVarint(1 << 3 | 2)
        let pending = sink.beginLength(expected: content.remaining)
        var reader = content
        while !reader.isAtEnd {
            let start = reader.mark
            let (number, wireType) = try reader.readTag()
            if number == 1 && wireType == 2 {
                let message = try reader.readLengthDelimited()
                if self.resourceAttributes.isChanged {
                    self.changed = true
                    try Self.writeMessage(1, message, attributeField: 1, self.resourceAttributes, to: &sink)
                } else {
                    Self.copyField(1, message, &sink)
                }
            } else if number == 2 && wireType == 2 && visitItems {
                let scopeX = try reader.readLengthDelimited()
                try self.scopeX(scopeX, signal: signal, resource: context, editor: editor, to: &sink)
            } else {
                try reader.skip(wireType: wireType, number: number)
                Self.copy(from: start, to: reader, &sink)
            }
        }
        if resource == nil && self.resourceAttributes.isChanged {
            // A resource that was not there but now has attributes.
            self.changed = true
            sink.appendVarint(1 << 3 | 2)
            sink.appendVarint(UInt64(self.resourceAttributes.encodedCount(field: 1)))
            self.resourceAttributes.write(field: 1, to: &sink)
        }
        sink.endLength(pending)
    }

    static let serviceNameKey = WireText("service.name")

    /// ScopeSpans / ScopeLogs / ScopeMetrics: scope = 1, items or metrics = 2.
    mutating func scopeX(_ content: WireReader, signal: Signal, resource: ResourceContext, editor: some AttributeEditor, to sink: inout ByteSink) throws(WireError) {
        // The scope, for the rules that look at it; keyed edits need none, so the items are not passed over twice.
        var scope: WireBytes?
        var scan = content
        while self.keyed == nil && !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            if number == 1 && wireType == 2 { scope = try scan.readLengthDelimited().bytes } else { try scan.skip(wireType: wireType, number: number) }
        }
        sink.appendVarint(2 << 3 | 2)
        let pending = sink.beginLength(expected: content.remaining)
        var reader = content
        while !reader.isAtEnd {
            let start = reader.mark
            if let edits = self.keyed, signal != .metrics, let child = Self.readShortItem(&reader) {
                // Spans and log records of up to 16 KiB, read without the general decoding.
                if try Self.writeEditedItem(2, child, attributeField: signal == .traces ? 9 : 6, edits, to: &sink) { self.changed = true }
                continue
            }
            let (number, wireType) = try reader.readTag()
            guard number == 2 && wireType == 2 else {
                try reader.skip(wireType: wireType, number: number)
                Self.copy(from: start, to: reader, &sink)
                continue
            }
            let child = try reader.readLengthDelimited()
            switch signal {
            case .traces:
                try self.item(2, child, kind: .span, attributeField: 9, resource: resource, scope: scope, metric: nil, editor: editor, to: &sink)
            case .logs:
                try self.item(2, child, kind: .logRecord, attributeField: 6, resource: resource, scope: scope, metric: nil, editor: editor, to: &sink)
            case .metrics:
                try self.metric(child, resource: resource, scope: scope, editor: editor, to: &sink)
            }
        }
        sink.endLength(pending)
    }

    /// Field 2 (the items of a scope) with a length of one or two bytes:
    /// its content, or nil (and `reader` unmoved) for anything else.
    @inline(__always)
    static func readShortItem(_ reader: inout WireReader) -> WireReader? {
        let p = reader.position
        let available = reader.end - p
        guard available >= 3, p[0] == 2 << 3 | 2 else { return nil }
        let length: Int
        let header: Int
        if p[1] < 0x80 {
            (length, header) = (Int(p[1]), 2)
        } else if p[2] < 0x80 {
            (length, header) = (Int(p[1] & 0x7F) | Int(p[2]) << 7, 3)
        } else {
            return nil
        }
        guard length <= available - header else { return nil }
        reader.position = p + header + length
        return WireReader(position: p + header, end: reader.position, origin: reader.origin)
    }

    /// Metric: gauge = 5, sum = 7, histogram = 9, exponential_histogram = 10, summary = 11.
    mutating func metric(_ content: WireReader, resource: ResourceContext, scope: WireBytes?, editor: some AttributeEditor, to sink: inout ByteSink) throws(WireError) {
        sink.appendVarint(2 << 3 | 2)
        let pending = sink.beginLength(expected: content.remaining)
        let metric = content.bytes
        var reader = content
        while !reader.isAtEnd {
            let start = reader.mark
            let (number, wireType) = try reader.readTag()
            let point: (kind: ItemContext.Kind, attributeField: UInt32)? =
                switch number {
                case 5, 7: (.numberDataPoint, 7)
                case 9: (.histogramDataPoint, 9)
                case 10: (.exponentialHistogramDataPoint, 1)
                case 11: (.summaryDataPoint, 7)
                default: nil
                }
            guard let point, wireType == 2 else {
                try reader.skip(wireType: wireType, number: number)
                Self.copy(from: start, to: reader, &sink)
                continue
            }
            // Gauge / Sum / Histogram / ExponentialHistogram / Summary: data_points = 1.
            var data = try reader.readLengthDelimited()
            sink.appendVarint(UInt64(number) << 3 | 2)
            let dataPending = sink.beginLength(expected: data.remaining)
            while !data.isAtEnd {
                let fieldStart = data.mark
                let (field, type) = try data.readTag()
                if field == 1 && type == 2 {
                    let dataPoint = try data.readLengthDelimited()
                    try self.item(
                        1, dataPoint, kind: point.kind, attributeField: point.attributeField, resource: resource, scope: scope, metric: metric,
                        editor: editor, to: &sink)
                } else {
                    try data.skip(wireType: type, number: field)
                    Self.copy(from: fieldStart, to: data, &sink)
                }
            }
            sink.endLength(dataPending)
        }
        sink.endLength(pending)
    }

    /// A span, log record or data point, written as field `field`.
    @inline(__always)
    mutating func item(
        _ field: UInt32, _ content: WireReader, kind: ItemContext.Kind, attributeField: UInt32, resource: ResourceContext, scope: WireBytes?,
        metric: WireBytes?, editor: some AttributeEditor, to sink: inout ByteSink
    ) throws(WireError) {
        if let edits = self.keyed {
            if try Self.writeEditedItem(field, content, attributeField: attributeField, edits, to: &sink) { self.changed = true }
            return
        }
        try self.items.load(field: attributeField, of: content)
        editor.editItem(&self.items, context: ItemContext(kind: kind, resource: resource, scope: scope, metric: metric, item: content.bytes))
        if self.items.isChanged {
            self.changed = true
            try Self.writeMessage(field, content, attributeField: attributeField, self.items, to: &sink)
            self.items.arena.reset()
        } else {
            Self.copyField(field, content, &sink)
        }
    }

    /// Writes `message` as field `field` with `attributes` in place of its
    /// attribute fields: appended after its bytes when only additions were
    /// made, else where its first attribute was.
    static func writeMessage(_ field: UInt32, _ message: WireReader, attributeField: UInt32, _ attributes: AttributeList, to sink: inout ByteSink)
        throws(WireError)
    {
        sink.appendVarint(UInt64(field) << 3 | 2)
        if !attributes.rewritesOriginals {
            let firstAdded = attributes.count - attributes.appendedCount
            sink.appendVarint(UInt64(message.remaining + attributes.encodedCount(field: attributeField, from: firstAdded)))
            sink.append(message.bytes)
            attributes.write(field: attributeField, from: firstAdded, to: &sink)
            return
        }
        if let region = attributes.region, attributes.regionIsContiguous {
            // Before the attributes, the new attributes, after them.
            let bytes = message.bytes
            sink.appendVarint(UInt64(bytes.count - region.count + attributes.encodedCount(field: attributeField)))
            sink.append(bytes.slice(0..<region.lowerBound))
            attributes.write(field: attributeField, to: &sink)
            sink.append(bytes.slice(region.upperBound..<bytes.count))
            return
        }
        let pending = sink.beginLength(expected: message.remaining)
        var written = false
        var reader = message
        while !reader.isAtEnd {
            let start = reader.mark
            let (number, wireType) = try reader.readTag()
            if number == attributeField && wireType == 2 {
                _ = try reader.readLengthDelimited()
                if !written {
                    attributes.write(field: attributeField, to: &sink)
                    written = true
                }
            } else {
                try reader.skip(wireType: wireType, number: number)
                sink.append(start: start.position, count: reader.position - start.position)
            }
        }
        if !written { attributes.write(field: attributeField, to: &sink) }
        sink.endLength(pending)
    }
}
