import NIOCore
import OTLPDCore
import OTLPDWire

/// The protobuf wire walkers on the input as a request of each signal:
/// `WireValidator` first, and for what it accepts, everything a pipeline
/// does with a valid request: OTLP/JSON lines (the file exporter), debug
/// lines at every verbosity, `ItemSplitter` (batch's `send_batch_max_size`),
/// `ResourceSplitter` (the file exporter's `group_by`), and
/// `AttributeRewriter` with keyed edits and with an editor that edits
/// attribute lists one by one.
///
/// Invariants, for an accepted request: each JSON line decodes back to a
/// valid request, and the lines hold the request's resources and items; the
/// splits' parts are valid and hold every item; rewritten requests are
/// valid with the same items and resources; no walker refuses what the
/// validator accepted.
enum WireHarness {
    static func run(_ input: [UInt8]) {
        let payload = ByteBuffer(bytes: input)
        for signal in Signal.allCases {
            guard let summary = try? WireValidator.validate(payload, signal: signal) else { continue }
            Self.checkJSON(payload, signal: signal, summary: summary)
            Self.debugLines(payload, signal: signal)
            Self.split(payload, signal: signal, summary: summary)
            Self.rewrite(payload, signal: signal, summary: summary, editor: KeyedEditor.shared)
            Self.rewrite(payload, signal: signal, summary: summary, editor: ListEditor())
        }
    }

    /// OTLP/JSON out, one line per resource; each line decodes back to a valid request.
    static func checkJSON(_ payload: ByteBuffer, signal: Signal, summary: RequestSummary) {
        let json = OTLPJSONEncoder.encodeLines(payload, signal: signal)
        let lines = json.readableBytesView.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        invariant(json.readableBytes == 0 || json.readableBytesView.last == UInt8(ascii: "\n"), "\(signal): JSON output does not end a line")
        invariant(lines.count == summary.resourceCount, "\(signal): \(lines.count) JSON lines for \(summary.resourceCount) resources")
        var items = 0
        for line in lines {
            let wire: ByteBuffer
            do {
                wire = try OTLPJSONDecoder.decode(ByteBuffer(bytes: line), signal: signal)
            } catch {
                fatalError("invariant broken: \(signal): a JSON line otlpd wrote does not decode: \(error): \(String(decoding: line, as: UTF8.self))")
            }
            do {
                let back = try WireValidator.validate(wire, signal: signal)
                invariant(back.resourceCount == 1, "\(signal): a JSON line holds \(back.resourceCount) resources")
                items += back.itemCount
            } catch {
                fatalError("invariant broken: \(signal): a JSON line otlpd wrote decodes to an invalid request: \(error)")
            }
        }
        invariant(items == summary.itemCount, "\(signal): \(items) items in the JSON lines, \(summary.itemCount) in the request")
    }

    static func debugLines(_ payload: ByteBuffer, signal: Signal) {
        for verbosity in DebugVerbosity.allCases {
            var sink = ByteSink(capacity: 4096)
            var printed = 0
            DebugFormatter.appendLines(payload, signal: signal, verbosity: verbosity, time: "2026-11-21T10:00:00.123Z", to: &sink) { keep in
                // Every other record, as a sampling processor would.
                printed += 1
                keep = printed % 2 == 1
            }
            _ = sink.byteCount
        }
    }

    static func split(_ payload: ByteBuffer, signal: Signal, summary: RequestSummary) {
        for maxItems in [1, 3] {
            let parts = ItemSplitter.split(payload, signal: signal, maxItems: maxItems)
            var items = 0
            for part in parts {
                guard let partSummary = try? WireValidator.validate(part.payload, signal: signal) else {
                    fatalError("invariant broken: \(signal): a part of ItemSplitter.split(maxItems: \(maxItems)) is not a valid request")
                }
                invariant(partSummary.itemCount == part.itemCount, "\(signal): a part says \(part.itemCount) items and holds \(partSummary.itemCount)")
                items += part.itemCount
            }
            invariant(items == summary.itemCount, "\(signal): split(maxItems: \(maxItems)) parts hold \(items) items of \(summary.itemCount)")
        }
        let resources = ResourceSplitter.split(payload, attribute: "service.name")
        invariant(resources.count == summary.resourceCount, "\(signal): \(resources.count) resource parts for \(summary.resourceCount) resources")
        var items = 0
        for part in resources {
            guard let partSummary = try? WireValidator.validate(part.request, signal: signal) else {
                fatalError("invariant broken: \(signal): a part of ResourceSplitter.split is not a valid request")
            }
            invariant(partSummary.resourceCount == 1, "\(signal): a resource part holds \(partSummary.resourceCount) resources")
            items += partSummary.itemCount
        }
        invariant(items == summary.itemCount, "\(signal): resource parts hold \(items) items of \(summary.itemCount)")
    }

    static func rewrite(_ payload: ByteBuffer, signal: Signal, summary: RequestSummary, editor: some AttributeEditor) {
        let rewritten: ByteBuffer?
        do {
            rewritten = try AttributeRewriter.rewrite(payload, signal: signal, editor: editor)
        } catch {
            fatalError("invariant broken: \(signal): AttributeRewriter (\(type(of: editor))) refused a valid request: \(error)")
        }
        guard let rewritten else { return }
        guard let after = try? WireValidator.validate(rewritten, signal: signal) else {
            fatalError("invariant broken: \(signal): AttributeRewriter (\(type(of: editor))) wrote an invalid request")
        }
        invariant(after == summary, "\(signal): \(type(of: editor)) changed \(summary) into \(after)")
    }
}

/// `AnyValue` contents and keys the editors write: made once, alive for the process.
enum EditValues {
    /// `AnyValue{string_value: "fuzz"}`.
    static let string = WireText([0x0A, 4] + Array("fuzz".utf8))
    /// `AnyValue{int_value: 300}`.
    static let int = WireText([0x18, 0xAC, 0x02])
    static let insertKey = WireText("fuzz.inserted")
    static let updateKey = WireText("http.method")
    static let upsertKey = WireText("service.name")
    static let deleteKey = WireText("http.status_code")
}

/// The attributes processor's fast path: the same edits by key on every item.
final class KeyedEditor: AttributeEditor, Sendable {
    static let shared = KeyedEditor()
    let keyedEdits: KeyedAttributeEdits?

    init() {
        self.keyedEdits = KeyedAttributeEdits([
            (EditValues.insertKey.bytes, .insert, EditValues.string.bytes),
            (EditValues.updateKey.bytes, .update, EditValues.string.bytes),
            (EditValues.upsertKey.bytes, .upsert, EditValues.int.bytes),
            (EditValues.deleteKey.bytes, .delete, nil),
        ])
        invariant(self.keyedEdits != nil, "the keyed edits were refused")
    }

    func editResource(_ attributes: inout AttributeList, resource: ResourceContext) -> Bool { true }
    func editItem(_ attributes: inout AttributeList, context: ItemContext) {}
}

/// The general path: an editor that reads the item's context and edits its list.
final class ListEditor: AttributeEditor {
    var visited = 0

    func editResource(_ attributes: inout AttributeList, resource: ResourceContext) -> Bool {
        attributes.put(key: EditValues.upsertKey.bytes, value: EditValues.string.bytes)
        if let index = attributes.firstIndex(of: EditValues.deleteKey.bytes) { attributes.remove(at: index) }
        return resource.serviceName?.count != 1
    }

    func editItem(_ attributes: inout AttributeList, context: ItemContext) {
        self.visited += 1
        // What the include/exclude rules read.
        var seen = (context.scopeName?.count ?? 0) + (context.scopeVersion?.count ?? 0) + (context.metricName?.count ?? 0)
        seen += (context.spanName?.count ?? 0) + (context.severityText?.count ?? 0) + (context.logBody == nil ? 0 : 1)
        seen = seen &+ Int(truncatingIfNeeded: context.spanKind) &+ Int(truncatingIfNeeded: context.severityNumber)
        for index in 0..<attributes.count { _ = attributes.value(at: index) }
        switch UInt(bitPattern: self.visited &+ seen) % 4 {
        case 0: attributes.append(key: EditValues.insertKey.bytes, value: EditValues.int.bytes)
        case 1: if attributes.count > 0 { attributes.remove(at: 0) }
        case 2: if attributes.count > 0 { attributes.setValue(at: attributes.count - 1, to: nil) }
        default: attributes.put(key: EditValues.updateKey.bytes, value: EditValues.string.bytes)
        }
    }
}
