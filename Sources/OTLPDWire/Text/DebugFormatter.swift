import NIOCore
import OTLPDCore

/// How much the debug exporter and the debuglog processor print.
public enum DebugVerbosity: String, Sendable, CaseIterable {
    /// A line per resource of each batch, with its record count.
    case basic
    /// A line per span, metric data point or log record.
    case normal
    /// Every field, a line each.
    case detailed
}

/// Writes the debug lines of a batch. Every line begins with the time, the
/// signal and `service.name`, so `grep checkout` finds a service's lines:
///
///     2026-11-21T10:00:00.123Z span  checkout  GET /cart  trace=4bf9...  span=00f0...  12.3ms  OK
///
/// Fields are read from the wire as the line needs them; nothing is decoded
/// into structures.
package enum DebugFormatter {
    /// Appends the lines for `payload`; `sample` says, per record, whether to print it.
    package static func appendLines(
        _ payload: ByteBuffer,
        signal: Signal,
        verbosity: DebugVerbosity,
        time: String,
        to sink: inout ByteSink,
        sample: (inout Bool) -> Void = { _ in }
    ) {
        var context = LineContext(time: time, signal: signal)
        WireReader.withReader(payload) { (request: inout WireReader) in
            do throws(WireError) {
                while !request.isAtEnd {
                    let (number, wireType) = try request.readTag()
                    guard number == 1, wireType == 2 else {
                        try request.skip(wireType: wireType, number: number)
                        continue
                    }
                    let resource = try request.readLengthDelimited()
                    try Self.appendResource(resource, &context, verbosity: verbosity, to: &sink, sample: sample)
                }
            } catch {
                // The receiver validated the bytes; a malformed rest is left unprinted.
            }
        }
    }

    struct LineContext {
        var time: String
        var signal: Signal
        var service = "unknown"

        var word: StaticString {
            switch self.signal {
            case .traces: "span"
            case .metrics: "metric"
            case .logs: "log"
            }
        }

        func prefix(_ sink: inout ByteSink) {
            // No time of its own where the journal stamps each line (an empty `time`).
            if !self.time.isEmpty {
                sink.append(contentsOf: self.time)
                sink.append(" ")
            }
            sink.append(self.word)
            sink.append("  ")
            sink.append(contentsOf: self.service)
            sink.append("  ")
        }
    }

    private static func appendResource(
        _ resourceMessage: WireReader,
        _ context: inout LineContext,
        verbosity: DebugVerbosity,
        to sink: inout ByteSink,
        sample: (inout Bool) -> Void
    ) throws(WireError) {
        // ResourceX { resource = 1; scope_x = 2 }, Resource { attributes = 1 }.
        context.service = "unknown"
        var scan = resourceMessage
        while !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            if number == 1 && wireType == 2 {
                var resource = try scan.readLengthDelimited()
                while !resource.isAtEnd {
                    let (field, type) = try resource.readTag()
                    if field == 1 && type == 2, let keyValue = ScalarKeyValue.read(try resource.readLengthDelimited()),
                        keyValue.key.equals("service.name"), case .string(let name) = keyValue.value
                    {
                        context.service = Self.singleLine(name.string)
                    } else if !(field == 1 && type == 2) {
                        try resource.skip(wireType: type, number: field)
                    }
                }
            } else {
                try scan.skip(wireType: wireType, number: number)
            }
        }
        switch verbosity {
        case .basic:
            var counter = RequestSummary(itemCount: 0, resourceCount: 0)
            try Self.forEachRecord(resourceMessage, signal: context.signal) { (_: WireReader, _: MetricInfo?) throws(WireError) in
                counter.itemCount += 1
            }
            context.prefix(&sink)
            sink.appendDecimal(UInt64(counter.itemCount))
            sink.append(" ")
            sink.append(contentsOf: context.signal.itemName)
            sink.append("\n")
        case .normal:
            try Self.forEachRecord(resourceMessage, signal: context.signal) { (record: WireReader, metric: MetricInfo?) throws(WireError) in
                var keep = true
                sample(&keep)
                guard keep else { return }
                let start = sink.byteCount
                context.prefix(&sink)
                do throws(WireError) {
                    switch context.signal {
                    case .traces: try Self.appendSpan(record, to: &sink)
                    case .metrics: try Self.appendPoint(record, metric: metric!, to: &sink)
                    case .logs: try Self.appendLog(record, to: &sink)
                    }
                    sink.append("\n")
                } catch {
                    sink.removeLast(sink.byteCount - start)
                }
            }
        case .detailed:
            var keep = true
            sample(&keep)
            guard keep else { return }
            var message = resourceMessage
            let schema = WireSchema.shared
            let request = schema.requestIndex(for: context.signal)
            let resourceType = schema.fields[Int(schema.fieldIndex(message: request, number: 1))].messageIndex
            try DetailedPrinter.appendMessage(&message, type: resourceType, indent: 0, context: context, to: &sink)
        }
    }

    // MARK: Records

    struct MetricInfo {
        enum PointKind { case number, histogram, exponentialHistogram, summary }

        var name: WireBytes
        var type: StaticString
        var kind: PointKind
    }

    /// Calls `body` for each span / data point / log record under one ResourceX.
    private static func forEachRecord(
        _ resource: WireReader,
        signal: Signal,
        _ body: (WireReader, MetricInfo?) throws(WireError) -> Void
    ) throws(WireError) {
        var resource = resource
        while !resource.isAtEnd {
            let (number, wireType) = try resource.readTag()
            guard number == 2, wireType == 2 else {
                try resource.skip(wireType: wireType, number: number)
                continue
            }
            var scope = try resource.readLengthDelimited()
            while !scope.isAtEnd {
                let (field, type) = try scope.readTag()
                guard field == 2, type == 2 else {
                    try scope.skip(wireType: type, number: field)
                    continue
                }
                let item = try scope.readLengthDelimited()
                if signal == .metrics {
                    try Self.forEachPoint(item, body)
                } else {
                    try body(item, nil)
                }
            }
        }
    }

    /// Metric { name = 1; gauge = 5 | sum = 7 | histogram = 9 | exponential_histogram = 10 | summary = 11 } -> data_points = 1.
    private static func forEachPoint(_ metric: WireReader, _ body: (WireReader, MetricInfo?) throws(WireError) -> Void) throws(WireError) {
        var name = WireBytes(start: WireReader.emptyBytes, count: 0)
        var scan = metric
        var data: (WireReader, StaticString, MetricInfo.PointKind)?
        while !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            switch (number, wireType) {
            case (1, 2): name = try scan.readLengthDelimited().bytes
            case (5, 2): data = (try scan.readLengthDelimited(), "gauge", .number)
            case (7, 2): data = (try scan.readLengthDelimited(), "sum", .number)
            case (9, 2): data = (try scan.readLengthDelimited(), "histogram", .histogram)
            case (10, 2): data = (try scan.readLengthDelimited(), "exponential_histogram", .exponentialHistogram)
            case (11, 2): data = (try scan.readLengthDelimited(), "summary", .summary)
            default: try scan.skip(wireType: wireType, number: number)
            }
        }
        guard let (pointsMessage, type, kind) = data else { return }
        var points = pointsMessage
        let info = MetricInfo(name: name, type: type, kind: kind)
        while !points.isAtEnd {
            let (number, wireType) = try points.readTag()
            guard number == 1, wireType == 2 else {
                try points.skip(wireType: wireType, number: number)
                continue
            }
            try body(try points.readLengthDelimited(), info)
        }
    }

    /// `GET /cart  trace=...  span=...  12.3ms  OK`
    private static func appendSpan(_ span: WireReader, to sink: inout ByteSink) throws(WireError) {
        var span = span
        var name = WireBytes(start: WireReader.emptyBytes, count: 0)
        var traceID = name
        var spanID = name
        var start: UInt64 = 0
        var end: UInt64 = 0
        var statusCode: UInt64 = 0
        var statusMessage = name
        while !span.isAtEnd {
            let (number, wireType) = try span.readTag()
            switch (number, wireType) {
            case (1, 2): traceID = try span.readLengthDelimited().bytes
            case (2, 2): spanID = try span.readLengthDelimited().bytes
            case (5, 2): name = try span.readLengthDelimited().bytes
            case (7, 1): start = try span.readFixed64()
            case (8, 1): end = try span.readFixed64()
            case (15, 2):
                var status = try span.readLengthDelimited()
                while !status.isAtEnd {
                    let (field, type) = try status.readTag()
                    switch (field, type) {
                    case (2, 2): statusMessage = try status.readLengthDelimited().bytes
                    case (3, 0): statusCode = try status.readVarint()
                    default: try status.skip(wireType: type, number: field)
                    }
                }
            default: try span.skip(wireType: wireType, number: number)
            }
        }
        Self.appendText(name, to: &sink)
        sink.append("  trace=")
        sink.appendHex(traceID)
        sink.append("  span=")
        sink.appendHex(spanID)
        sink.append("  ")
        Self.appendDuration(end >= start ? end - start : 0, to: &sink)
        sink.append("  ")
        switch statusCode {
        case 1: sink.append("OK")
        case 2: sink.append("ERROR")
        default: sink.append("UNSET")
        }
        if statusMessage.count > 0 {
            sink.append(" ")
            Self.appendQuoted(statusMessage, to: &sink)
        }
    }

    /// `http.server.duration  histogram  count=3  sum=12.5  {route=/cart}`
    private static func appendPoint(_ point: WireReader, metric: MetricInfo, to sink: inout ByteSink) throws(WireError) {
        var point = point
        Self.appendText(metric.name, to: &sink)
        sink.append("  ")
        sink.append(metric.type)
        sink.append("  ")
        var attributes: [WireReader] = []
        var value = ""
        var count: UInt64?
        var sum: Double?
        let attributesField: UInt32
        switch metric.kind {
        case .number, .summary: attributesField = 7
        case .histogram: attributesField = 9
        case .exponentialHistogram: attributesField = 1
        }
        while !point.isAtEnd {
            let (number, wireType) = try point.readTag()
            if number == attributesField && wireType == 2 {
                attributes.append(try point.readLengthDelimited())
                continue
            }
            switch (metric.kind, number, wireType) {
            case (.number, 4, 1): value = Self.format(Double(bitPattern: try point.readFixed64()))  // as_double
            case (.number, 6, 1): value = String(Int64(bitPattern: try point.readFixed64()))  // as_int
            case (.histogram, 4, 1), (.exponentialHistogram, 4, 1), (.summary, 4, 1): count = try point.readFixed64()
            case (.histogram, 5, 1), (.exponentialHistogram, 5, 1), (.summary, 5, 1): sum = Double(bitPattern: try point.readFixed64())
            default: try point.skip(wireType: wireType, number: number)
            }
        }
        if let count {
            sink.append("count=")
            sink.appendDecimal(count)
            if let sum {
                sink.append("  sum=")
                sink.append(contentsOf: Self.format(sum))
            }
        } else {
            sink.append(contentsOf: value.isEmpty ? "-" : value)
        }
        if !attributes.isEmpty {
            sink.append("  {")
            for (index, attribute) in attributes.enumerated() {
                if index > 0 { sink.append(", ") }
                try Self.appendKeyValue(attribute, to: &sink)
            }
            sink.append("}")
        }
    }

    /// `ERROR  payment failed  trace=...  span=...`
    private static func appendLog(_ record: WireReader, to sink: inout ByteSink) throws(WireError) {
        var record = record
        var severityText = WireBytes(start: WireReader.emptyBytes, count: 0)
        var severityNumber: UInt64 = 0
        var traceID = severityText
        var spanID = severityText
        var body: WireReader?
        while !record.isAtEnd {
            let (number, wireType) = try record.readTag()
            switch (number, wireType) {
            case (2, 0): severityNumber = try record.readVarint()
            case (3, 2): severityText = try record.readLengthDelimited().bytes
            case (5, 2): body = try record.readLengthDelimited()
            case (9, 2): traceID = try record.readLengthDelimited().bytes
            case (10, 2): spanID = try record.readLengthDelimited().bytes
            default: try record.skip(wireType: wireType, number: number)
            }
        }
        if severityText.count > 0 {
            Self.appendText(severityText, to: &sink)
        } else {
            sink.append(contentsOf: Self.severityName(severityNumber))
        }
        sink.append("  ")
        if let body {
            try Self.appendAnyValue(body, to: &sink)
        } else {
            sink.append("-")
        }
        if traceID.count > 0 {
            sink.append("  trace=")
            sink.appendHex(traceID)
        }
        if spanID.count > 0 {
            sink.append("  span=")
            sink.appendHex(spanID)
        }
    }

    // MARK: Values

    /// `key=value` of a KeyValue.
    static func appendKeyValue(_ keyValue: WireReader, to sink: inout ByteSink) throws(WireError) {
        var keyValue = keyValue
        var key = WireBytes(start: WireReader.emptyBytes, count: 0)
        var value: WireReader?
        while !keyValue.isAtEnd {
            let (number, wireType) = try keyValue.readTag()
            switch (number, wireType) {
            case (1, 2): key = try keyValue.readLengthDelimited().bytes
            case (2, 2): value = try keyValue.readLengthDelimited()
            default: try keyValue.skip(wireType: wireType, number: number)
            }
        }
        Self.appendText(key, to: &sink)
        sink.append("=")
        if let value { try Self.appendAnyValue(value, to: &sink) }
    }

    /// An AnyValue on one line: strings as they are, lists as [a, b], maps as {k=v}.
    static func appendAnyValue(_ value: WireReader, to sink: inout ByteSink, depth: Int = 0) throws(WireError) {
        guard depth < 16 else {
            sink.append("...")
            return
        }
        var value = value
        while !value.isAtEnd {
            let (number, wireType) = try value.readTag()
            switch (number, wireType) {
            case (1, 2): Self.appendText(try value.readLengthDelimited().bytes, to: &sink)
            case (2, 0): sink.append(try value.readVarint() != 0 ? "true" : "false")
            case (3, 0): sink.appendDecimal(Int64(bitPattern: try value.readVarint()))
            case (4, 1): sink.append(contentsOf: Self.format(Double(bitPattern: try value.readFixed64())))
            case (5, 2), (6, 2):
                var list = try value.readLengthDelimited()
                sink.append(number == 5 ? "[" : "{")
                var first = true
                while !list.isAtEnd {
                    let (field, type) = try list.readTag()
                    guard field == 1, type == 2 else {
                        try list.skip(wireType: type, number: field)
                        continue
                    }
                    if !first { sink.append(", ") }
                    first = false
                    let element = try list.readLengthDelimited()
                    if number == 5 {
                        try Self.appendAnyValue(element, to: &sink, depth: depth + 1)
                    } else {
                        try Self.appendKeyValue(element, to: &sink)
                    }
                }
                sink.append(number == 5 ? "]" : "}")
            case (7, 2):
                sink.append("0x")
                sink.appendHex(try value.readLengthDelimited().bytes)
            default:
                try value.skip(wireType: wireType, number: number)
            }
        }
    }

    /// Text kept on one line: control characters (newlines) escaped.
    static func appendText(_ bytes: WireBytes, to sink: inout ByteSink) {
        JSONStringEscaper.append(bytes, to: &sink)
    }

    static func appendQuoted(_ bytes: WireBytes, to sink: inout ByteSink) {
        sink.append("\"")
        JSONStringEscaper.append(bytes, to: &sink)
        sink.append("\"")
    }

    static func singleLine(_ text: String) -> String {
        String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
    }

    /// `850us`, `12.3ms`, `1.25s`.
    static func appendDuration(_ nanoseconds: UInt64, to sink: inout ByteSink) {
        if nanoseconds < 1_000_000 {
            sink.appendDecimal(nanoseconds / 1000)
            sink.append("us")
        } else if nanoseconds < 1_000_000_000 {
            let tenths = (nanoseconds + 50_000) / 100_000
            sink.appendDecimal(tenths / 10)
            sink.append(".")
            sink.appendDecimal(tenths % 10)
            sink.append("ms")
        } else {
            let hundredths = (nanoseconds + 5_000_000) / 10_000_000
            sink.appendDecimal(hundredths / 100)
            sink.append(".")
            if hundredths % 100 < 10 { sink.append("0") }
            sink.appendDecimal(hundredths % 100)
            sink.append("s")
        }
    }

    static func format(_ value: Double) -> String {
        var sink = ByteSink(capacity: 32)
        OTLPJSONEncoder.writeDouble(value, to: &sink)
        return sink.string.replacingQuotes()
    }

    static func severityName(_ number: UInt64) -> String {
        switch number {
        case 1...4: "TRACE"
        case 5...8: "DEBUG"
        case 9...12: "INFO"
        case 13...16: "WARN"
        case 17...20: "ERROR"
        case 21...24: "FATAL"
        default: "-"
        }
    }
}

extension String {
    fileprivate func replacingQuotes() -> String {
        String(self.filter { $0 != "\"" })
    }
}
