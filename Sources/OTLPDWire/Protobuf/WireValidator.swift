import NIOCore
import OTLPDCore

/// What a walk of a request found.
package struct RequestSummary: Sendable, Equatable {
    /// Spans, metric data points or log records.
    package var itemCount: Int
    /// `resource_spans` / `resource_metrics` / `resource_logs` entries.
    package var resourceCount: Int

    package init(itemCount: Int, resourceCount: Int) {
        self.itemCount = itemCount
        self.resourceCount = resourceCount
    }
}

/// Checks that bytes are a well-formed `Export*ServiceRequest`, every
/// nested message included, without decoding or allocating, and counts its
/// items. What passes can be walked by every other stage without surprises;
/// what fails is answered with 400 / INVALID_ARGUMENT before anything is kept.
///
/// As protobuf runtimes do, unknown fields and known fields with an
/// unexpected wire type are skipped (and kept in the bytes), and both packed
/// and unpacked repeated scalars are accepted.
package enum WireValidator {
    package static func validate(_ payload: ByteBuffer, signal: Signal) throws(WireError) -> RequestSummary {
        let schema = WireSchema.shared
        let root = schema.requestIndex(for: signal)
        return try WireReader.withReader(payload) { (reader: inout WireReader) throws(WireError) -> RequestSummary in
            var summary = RequestSummary(itemCount: 0, resourceCount: 0)
            try Self.walk(&reader, message: root, depth: 0, summary: &summary, schema: schema)
            return summary
        }
    }

    /// Validates one message of type `message` that fills `reader`.
    package static func validate(_ payload: ByteBuffer, message: Int32) throws(WireError) {
        let schema = WireSchema.shared
        try WireReader.withReader(payload) { (reader: inout WireReader) throws(WireError) in
            var summary = RequestSummary(itemCount: 0, resourceCount: 0)
            try Self.walk(&reader, message: message, depth: 0, summary: &summary, schema: schema)
        }
    }

    private static func walk(
        _ reader: inout WireReader,
        message: Int32,
        depth: Int,
        summary: inout RequestSummary,
        schema: WireSchema
    ) throws(WireError) {
        let entry = schema.messageTable[Int(message)]
        if entry.isItem { summary.itemCount += 1 }
        do throws(WireError) {
            while !reader.isAtEnd {
                let (number, wireType) = try reader.readTag()
                let index = number <= entry.maxNumber ? schema.numberTable[Int(entry.numberTableStart) + Int(number)] : -1
                guard index >= 0 else {
                    try reader.skip(wireType: wireType, number: number, depth: depth)
                    continue
                }
                let field = schema.fields[Int(index)]
                if field.kind == .message {
                    guard wireType == 2 else {
                        try reader.skip(wireType: wireType, number: number, depth: depth)
                        continue
                    }
                    var nested = try reader.readLengthDelimited()
                    if field.messageIndex == schema.keyValue && (ScalarKeyValue.isStringAttribute(nested) || ScalarKeyValue.read(nested) != nil) {
                        continue
                    }
                    guard depth < WireReader.maxDepth else { throw WireError(.tooDeep, offset: reader.offset) }
                    if depth == 0 { summary.resourceCount += 1 }
                    try Self.walk(&nested, message: field.messageIndex, depth: depth + 1, summary: &summary, schema: schema)
                } else if wireType == 2 && field.isRepeated && field.kind.isPackable {
                    var packed = try reader.readLengthDelimited()
                    try Self.checkPacked(&packed, kind: field.kind)
                } else {
                    try reader.skip(wireType: wireType, number: number, depth: depth)
                }
            }
        } catch {
            var error = error
            if error.message == nil { error.message = schema.messages[Int(message)].fullName }
            throw error
        }
    }

    private static func checkPacked(_ reader: inout WireReader, kind: FieldKind) throws(WireError) {
        switch kind.wireType {
        case .fixed32:
            guard reader.remaining % 4 == 0 else { throw WireError(.invalidPacked, offset: reader.offset) }
        case .fixed64:
            guard reader.remaining % 8 == 0 else { throw WireError(.invalidPacked, offset: reader.offset) }
        default:
            while !reader.isAtEnd { _ = try reader.readVarint() }
        }
    }
}
