internal import COTLPProto
internal import CProtobufC
import OTLPDCore

/// How a field's value is encoded, as far as walking and printing it goes.
package enum FieldKind: UInt8, Sendable, BitwiseCopyable {
    case int32, sint32, sfixed32, uint32, fixed32
    case int64, sint64, sfixed64, uint64, fixed64
    case float, double, bool, enumeration
    case string, bytes, message

    /// The wire type a single (unpacked) value of this kind uses.
    package var wireType: WireType {
        switch self {
        case .int32, .sint32, .uint32, .int64, .sint64, .uint64, .bool, .enumeration: .varint
        case .sfixed32, .fixed32, .float: .fixed32
        case .sfixed64, .fixed64, .double: .fixed64
        case .string, .bytes, .message: .lengthDelimited
        }
    }

    /// Scalars that proto3 may pack into one length-delimited field.
    package var isPackable: Bool {
        self.wireType != .lengthDelimited
    }
}

package enum WireType: UInt8, Sendable, BitwiseCopyable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// One field, flattened so the walkers read it without reference counting.
package struct FieldLayout: Sendable, BitwiseCopyable {
    package var number: UInt32
    package var kind: FieldKind
    package var isRepeated: Bool
    /// OTLP/JSON writes trace and span ids as hex, not base64.
    package var isHexID: Bool
    /// Index of the field's message type in `WireSchema.messages`, or -1.
    package var messageIndex: Int32
    /// Index of the field's enum type in `WireSchema.enums`, or -1.
    package var enumIndex: Int32
    /// `"lowerCamelCase":` (with quotes and colon) in `WireSchema.keyBytes`.
    package var jsonKeyStart: UInt32
    package var jsonKeyCount: UInt32
}

package struct MessageLayout: Sendable {
    package var fullName: String
    /// The message's fields are `fields[firstField ..< firstField + fieldCount]`.
    package var firstField: Int32
    package var fieldCount: Int32
    /// `numberTable[numberTableStart + n]` is the index in `fields` of field number n, or -1.
    package var numberTableStart: Int32
    package var maxNumber: UInt32
    /// Spans, metric data points and log records: what item counts count.
    package var isItem: Bool
}

package struct EnumLayout: Sendable {
    package var fullName: String
    package var valuesByName: [String: Int32]
    package var namesByValue: [Int32: String]
}

/// The OTLP message types as flat tables, read once from the descriptors
/// protoc-c generated from `proto/`. Every walker (validation, OTLP/JSON in
/// and out, the debug printer) is driven by these tables, so the `.proto`
/// files are the one source of field numbers, types and names.
///
/// The hot tables live in memory that is never freed (the schema is built
/// once per process), so walkers index them without reference counting.
package final class WireSchema: @unchecked Sendable {
    package let messages: [MessageLayout]
    package let enums: [EnumLayout]
    /// Field names, parallel to `fields`: snake_case as in the .proto, and lowerCamelCase.
    package let fieldNames: [String]
    package let jsonNames: [String]
    package let fields: UnsafeBufferPointer<FieldLayout>
    package let numberTable: UnsafeBufferPointer<Int32>
    package let keyBytes: UnsafeBufferPointer<UInt8>
    /// `messageNumberInfo[m]` is (numberTableStart, maxNumber, isItem) of message m, for the walkers.
    package let messageTable: UnsafeBufferPointer<MessageEntry>
    private let indexByName: [String: Int32]
    /// Per message: field index by JSON name and by proto name (OTLP/JSON receivers accept both).
    package let fieldsByKey: [[String: Int32]]

    package struct MessageEntry: BitwiseCopyable {
        package var numberTableStart: Int32
        package var maxNumber: UInt32
        package var isItem: Bool
    }

    package static let shared = WireSchema()

    /// Index of a message type by its full proto name.
    package func messageIndex(_ fullName: String) -> Int32 {
        guard let index = self.indexByName[fullName] else {
            preconditionFailure("message \(fullName) is not in the OTLP schema")
        }
        return index
    }

    /// The `Export*ServiceRequest` of each signal.
    package func requestIndex(for signal: Signal) -> Int32 {
        switch signal {
        case .traces: self.traceRequest
        case .metrics: self.metricsRequest
        case .logs: self.logsRequest
        }
    }

    package let traceRequest: Int32
    package let metricsRequest: Int32
    package let logsRequest: Int32
    /// `KeyValue`: most of OTLP's bytes, so the walkers have a fast path for it.
    package let keyValue: Int32
    /// `Span` and the messages it holds: the JSON writer has a path of its own for spans.
    package let span: Int32
    package let spanEvent: Int32
    package let spanLink: Int32
    package let spanStatus: Int32

    /// The field index of field `number` of message `message`, or -1.
    @inline(__always)
    package func fieldIndex(message: Int32, number: UInt32) -> Int32 {
        let entry = self.messageTable[Int(message)]
        guard number <= entry.maxNumber else { return -1 }
        return self.numberTable[Int(entry.numberTableStart) + Int(number)]
    }

    private init() {
        var builder = Builder()
        for root in [
            otlp_export_trace_request_descriptor(), otlp_export_metrics_request_descriptor(),
            otlp_export_logs_request_descriptor(), otlp_export_trace_response_descriptor(),
            otlp_export_metrics_response_descriptor(), otlp_export_logs_response_descriptor(),
            otlp_rpc_status_descriptor(), otlp_rpc_retry_info_descriptor(),
        ] {
            _ = builder.add(root!)
        }
        self.messages = builder.messages
        self.fieldNames = builder.fieldNames
        self.jsonNames = builder.jsonNames
        self.enums = builder.enums
        self.indexByName = builder.indexByName
        self.fieldsByKey = builder.messages.map { layout in
            var keys: [String: Int32] = [:]
            for index in layout.firstField..<(layout.firstField + layout.fieldCount) {
                keys[builder.fieldNames[Int(index)]] = index
                keys[builder.jsonNames[Int(index)]] = index
            }
            return keys
        }
        self.fields = Self.immortal(builder.fields)
        self.numberTable = Self.immortal(builder.numberTable)
        self.keyBytes = Self.immortal(builder.keyBytes)
        self.messageTable = Self.immortal(
            builder.messages.map {
                MessageEntry(numberTableStart: $0.numberTableStart, maxNumber: $0.maxNumber, isItem: $0.isItem)
            }
        )
        self.traceRequest = builder.indexByName["opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"]!
        self.metricsRequest = builder.indexByName["opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"]!
        self.logsRequest = builder.indexByName["opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"]!
        self.keyValue = builder.indexByName["opentelemetry.proto.common.v1.KeyValue"]!
        self.span = builder.indexByName["opentelemetry.proto.trace.v1.Span"]!
        self.spanEvent = builder.indexByName["opentelemetry.proto.trace.v1.Span.Event"]!
        self.spanLink = builder.indexByName["opentelemetry.proto.trace.v1.Span.Link"]!
        self.spanStatus = builder.indexByName["opentelemetry.proto.trace.v1.Status"]!
    }

    private static func immortal<Element>(_ array: [Element]) -> UnsafeBufferPointer<Element> {
        let memory = UnsafeMutableBufferPointer<Element>.allocate(capacity: max(array.count, 1))
        _ = memory.initialize(from: array)
        return UnsafeBufferPointer(memory)
    }

    /// What item counts count: the records of each signal.
    private static let itemMessages: Set<String> = [
        "opentelemetry.proto.trace.v1.Span",
        "opentelemetry.proto.metrics.v1.NumberDataPoint",
        "opentelemetry.proto.metrics.v1.HistogramDataPoint",
        "opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint",
        "opentelemetry.proto.metrics.v1.SummaryDataPoint",
        "opentelemetry.proto.logs.v1.LogRecord",
    ]

    private struct Builder {
        var messages: [MessageLayout] = []
        var fields: [FieldLayout] = []
        var fieldNames: [String] = []
        var jsonNames: [String] = []
        var numberTable: [Int32] = []
        var keyBytes: [UInt8] = []
        var enums: [EnumLayout] = []
        var indexByName: [String: Int32] = [:]
        var enumIndexByName: [String: Int32] = [:]

        /// Adds a message type and everything it refers to; returns its index.
        mutating func add(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> Int32 {
            let name = String(cString: descriptor.pointee.name)
            if let existing = self.indexByName[name] { return existing }
            let index = Int32(self.messages.count)
            self.indexByName[name] = index
            // Reserve the slot first: message types refer to each other in cycles.
            self.messages.append(
                MessageLayout(
                    fullName: name, firstField: 0, fieldCount: 0, numberTableStart: 0, maxNumber: 0,
                    isItem: WireSchema.itemMessages.contains(name)
                )
            )

            let count = Int(descriptor.pointee.n_fields)
            var pending: [(FieldLayout, String, String, UnsafeRawPointer?)] = []
            var maxNumber: UInt32 = 0
            for i in 0..<count {
                let field = descriptor.pointee.fields[i]
                let fieldName = String(cString: field.name)
                let kind = Self.kind(field.type)
                let jsonName = Self.lowerCamelCase(fieldName)
                let isRepeated = field.label.rawValue == PROTOBUF_C_LABEL_REPEATED.rawValue
                let layout = FieldLayout(
                    number: field.id,
                    kind: kind,
                    isRepeated: isRepeated,
                    isHexID: kind == .bytes && ["trace_id", "span_id", "parent_span_id"].contains(fieldName),
                    messageIndex: -1,
                    enumIndex: -1,
                    jsonKeyStart: 0,
                    jsonKeyCount: 0
                )
                maxNumber = max(maxNumber, field.id)
                pending.append((layout, fieldName, jsonName, field.descriptor))
            }

            // Nested types first, so that their indices are known.
            for i in pending.indices {
                switch pending[i].0.kind {
                case .message:
                    let nested = pending[i].3!.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                    pending[i].0.messageIndex = self.add(nested)
                case .enumeration:
                    let nested = pending[i].3!.assumingMemoryBound(to: ProtobufCEnumDescriptor.self)
                    pending[i].0.enumIndex = self.addEnum(nested)
                default:
                    break
                }
            }

            let firstField = Int32(self.fields.count)
            for (var layout, fieldName, jsonName, _) in pending {
                let key = Array("\"\(jsonName)\":".utf8)
                layout.jsonKeyStart = UInt32(self.keyBytes.count)
                layout.jsonKeyCount = UInt32(key.count)
                self.keyBytes.append(contentsOf: key)
                self.fields.append(layout)
                self.fieldNames.append(fieldName)
                self.jsonNames.append(jsonName)
            }
            let tableStart = Int32(self.numberTable.count)
            self.numberTable.append(contentsOf: repeatElement(-1, count: Int(maxNumber) + 1))
            for offset in 0..<pending.count {
                self.numberTable[Int(tableStart) + Int(pending[offset].0.number)] = firstField + Int32(offset)
            }
            self.messages[Int(index)].firstField = firstField
            self.messages[Int(index)].fieldCount = Int32(pending.count)
            self.messages[Int(index)].numberTableStart = tableStart
            self.messages[Int(index)].maxNumber = maxNumber
            return index
        }

        mutating func addEnum(_ descriptor: UnsafePointer<ProtobufCEnumDescriptor>) -> Int32 {
            let name = String(cString: descriptor.pointee.name)
            if let existing = self.enumIndexByName[name] { return existing }
            var byName: [String: Int32] = [:]
            var byValue: [Int32: String] = [:]
            for i in 0..<Int(descriptor.pointee.n_values) {
                let value = descriptor.pointee.values[i]
                let valueName = String(cString: value.name)
                byName[valueName] = value.value
                if byValue[value.value] == nil { byValue[value.value] = valueName }
            }
            let index = Int32(self.enums.count)
            self.enums.append(EnumLayout(fullName: name, valuesByName: byName, namesByValue: byValue))
            self.enumIndexByName[name] = index
            return index
        }

        static func kind(_ type: ProtobufCType) -> FieldKind {
            switch type.rawValue {
            case PROTOBUF_C_TYPE_INT32.rawValue: .int32
            case PROTOBUF_C_TYPE_SINT32.rawValue: .sint32
            case PROTOBUF_C_TYPE_SFIXED32.rawValue: .sfixed32
            case PROTOBUF_C_TYPE_INT64.rawValue: .int64
            case PROTOBUF_C_TYPE_SINT64.rawValue: .sint64
            case PROTOBUF_C_TYPE_SFIXED64.rawValue: .sfixed64
            case PROTOBUF_C_TYPE_UINT32.rawValue: .uint32
            case PROTOBUF_C_TYPE_FIXED32.rawValue: .fixed32
            case PROTOBUF_C_TYPE_UINT64.rawValue: .uint64
            case PROTOBUF_C_TYPE_FIXED64.rawValue: .fixed64
            case PROTOBUF_C_TYPE_FLOAT.rawValue: .float
            case PROTOBUF_C_TYPE_DOUBLE.rawValue: .double
            case PROTOBUF_C_TYPE_BOOL.rawValue: .bool
            case PROTOBUF_C_TYPE_ENUM.rawValue: .enumeration
            case PROTOBUF_C_TYPE_STRING.rawValue: .string
            case PROTOBUF_C_TYPE_BYTES.rawValue: .bytes
            case PROTOBUF_C_TYPE_MESSAGE.rawValue: .message
            default: preconditionFailure("unknown protobuf-c field type \(type.rawValue)")
            }
        }

        /// protoc's json_name rule: drop each underscore and capitalise the letter after it.
        static func lowerCamelCase(_ name: String) -> String {
            var result = ""
            var upperNext = false
            for character in name {
                if character == "_" {
                    upperNext = true
                } else if upperNext {
                    result += character.uppercased()
                    upperNext = false
                } else {
                    result.append(character)
                }
            }
            return result
        }
    }
}

