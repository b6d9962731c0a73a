import OTLPDCore

/// The `detailed` verbosity: every field of a resource and what it holds,
/// one `name: value` line each, indented by depth, every line with the
/// time, signal and service prefix. Driven by the schema tables.
enum DetailedPrinter {
    static func appendMessage(
        _ reader: inout WireReader,
        type: Int32,
        indent: Int,
        context: DebugFormatter.LineContext,
        to sink: inout ByteSink
    ) throws(WireError) {
        let schema = WireSchema.shared
        let anyValue = schema.messageIndex("opentelemetry.proto.common.v1.AnyValue")
        while !reader.isAtEnd {
            let (number, wireType) = try reader.readTag()
            let index = schema.fieldIndex(message: type, number: number)
            guard index >= 0 else {
                try reader.skip(wireType: wireType, number: number)
                continue
            }
            let field = schema.fields[Int(index)]
            let name = schema.fieldNames[Int(index)]
            let accepted = wireType == field.kind.wireType.rawValue || (wireType == 2 && field.isRepeated && field.kind.isPackable)
            guard accepted else {
                try reader.skip(wireType: wireType, number: number)
                continue
            }
            if field.kind == .message {
                var nested = try reader.readLengthDelimited()
                Self.startLine(indent, name, context, &sink)
                if field.messageIndex == schema.keyValue {
                    try DebugFormatter.appendKeyValue(nested, to: &sink)
                    sink.append("\n")
                } else if field.messageIndex == anyValue {
                    try DebugFormatter.appendAnyValue(nested, to: &sink)
                    sink.append("\n")
                } else {
                    sink.removeLast(1)  // "name:" ends the line; the fields follow indented
                    sink.append("\n")
                    try Self.appendMessage(&nested, type: field.messageIndex, indent: indent + 1, context: context, to: &sink)
                }
            } else if wireType == 2 && field.kind.isPackable {
                var packed = try reader.readLengthDelimited()
                Self.startLine(indent, name, context, &sink)
                sink.append("[")
                var first = true
                while !packed.isAtEnd {
                    if !first { sink.append(", ") }
                    first = false
                    _ = try Self.appendScalar(field, &packed, to: &sink)
                }
                sink.append("]\n")
            } else {
                Self.startLine(indent, name, context, &sink)
                let integer = try Self.appendScalar(field, &reader, to: &sink)
                if let integer, field.kind == .enumeration || name.hasSuffix("time_unix_nano") {
                    Self.annotate(field, value: integer, &sink)
                }
                sink.append("\n")
            }
        }
    }

    private static func startLine(_ indent: Int, _ name: String, _ context: DebugFormatter.LineContext, _ sink: inout ByteSink) {
        context.prefix(&sink)
        for _ in 0..<indent { sink.append("  ") }
        sink.append(contentsOf: name)
        sink.append(": ")
    }

    /// Writes one scalar; returns it when it is an integer (for `annotate`).
    private static func appendScalar(_ field: FieldLayout, _ reader: inout WireReader, to sink: inout ByteSink) throws(WireError) -> Int64? {
        var integer: Int64?
        switch field.kind {
        case .string: DebugFormatter.appendQuoted(try reader.readLengthDelimited().bytes, to: &sink)
        case .bytes:
            let bytes = try reader.readLengthDelimited().bytes
            if !field.isHexID { sink.append("0x") }
            sink.appendHex(bytes)
        case .bool: sink.append(try reader.readVarint() != 0 ? "true" : "false")
        case .int32, .enumeration: integer = Int64(Int32(truncatingIfNeeded: try reader.readVarint()))
        case .int64: integer = Int64(bitPattern: try reader.readVarint())
        case .uint32, .uint64:
            let value = try reader.readVarint()
            sink.appendDecimal(value)
            return value <= UInt64(Int64.max) ? Int64(value) : nil
        case .sint32, .sint64:
            let raw = try reader.readVarint()
            integer = Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        case .fixed32: integer = Int64(try reader.readFixed32())
        case .sfixed32: integer = Int64(Int32(bitPattern: try reader.readFixed32()))
        case .fixed64:
            let value = try reader.readFixed64()
            sink.appendDecimal(value)
            return value <= UInt64(Int64.max) ? Int64(value) : nil
        case .sfixed64: integer = Int64(bitPattern: try reader.readFixed64())
        case .float: sink.append(contentsOf: DebugFormatter.format(Double(Float(bitPattern: try reader.readFixed32()))))
        case .double: sink.append(contentsOf: DebugFormatter.format(Double(bitPattern: try reader.readFixed64())))
        case .message: try reader.skip(wireType: 2, number: field.number)
        }
        if let integer { sink.appendDecimal(integer) }
        return integer
    }

    /// Enum names and readable times after the raw numbers.
    private static func annotate(_ field: FieldLayout, value: Int64, _ sink: inout ByteSink) {
        if field.kind == .enumeration {
            guard let enumName = WireSchema.shared.enums[Int(field.enumIndex)].namesByValue[Int32(truncatingIfNeeded: value)] else { return }
            sink.append(" (")
            sink.append(contentsOf: enumName)
            sink.append(")")
        } else if value > 0 {
            sink.append(" (")
            sink.append(contentsOf: Timestamp.iso8601(nanoseconds: value))
            sink.append(")")
        }
    }
}
