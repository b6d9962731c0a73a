import Foundation
import Logging
import NIOCore
import NIOPosix
import OTLPDConfig
import OTLPDCore
import OTLPDProcessors
import OTLPDTestSupport
import OTLPDWire
import Testing

// Helpers for the attributes and resource processor tests: attribute lists
// written as dictionary literals (order kept), OTLP/JSON requests built from
// them, processors built from YAML text, and what reached the next stage
// read back as attribute lists.

// MARK: Values and attribute lists

/// An attribute value with its OTLP type.
indirect enum Value: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case bytes([UInt8])
    case array([Value])
    case map(Attrs)
    case empty

    static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        // Bit equality: -0.0 is not 0.0 and NaN equals NaN here.
        case (.double(let a), .double(let b)): a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
        case (.bool(let a), .bool(let b)): a == b
        case (.bytes(let a), .bytes(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)): a == b
        case (.empty, .empty): true
        default: false
        }
    }

    var description: String {
        switch self {
        case .string(let text): "\"\(text)\""
        case .int(let value): "\(value)"
        case .double(let value): "\(value)d"
        case .bool(let value): "\(value)"
        case .bytes(let bytes): "bytes\(bytes)"
        case .array(let values): "\(values)"
        case .map(let attrs): attrs.description
        case .empty: "empty"
        }
    }

    /// The OTLP/JSON `AnyValue` object.
    var json: String {
        switch self {
        case .string(let text): return "{\"stringValue\":\(jsonString(text))}"
        case .int(let value): return "{\"intValue\":\"\(value)\"}"
        case .double(let value):
            if value.isNaN { return "{\"doubleValue\":\"NaN\"}" }
            if value.isInfinite { return "{\"doubleValue\":\"\(value < 0 ? "-Infinity" : "Infinity")\"}" }
            return "{\"doubleValue\":\(value)}"
        case .bool(let value): return "{\"boolValue\":\(value)}"
        case .bytes(let bytes): return "{\"bytesValue\":\"\(Data(bytes).base64EncodedString())\"}"
        case .array(let values): return "{\"arrayValue\":{\"values\":[\(values.map(\.json).joined(separator: ","))]}}"
        case .map(let attrs): return "{\"kvlistValue\":{\"values\":\(attrs.json)}}"
        case .empty: return "{}"
        }
    }

    /// Reads an OTLP/JSON `AnyValue` object as the encoder writes it.
    init(json object: Any?) throws {
        guard let object = object as? [String: Any], let (kind, content) = object.first else {
            self = .empty
            return
        }
        switch kind {
        case "stringValue": self = .string(try #require(content as? String))
        case "intValue":
            if let text = content as? String { self = .int(try #require(Int64(text))) } else { self = .int(try #require(content as? NSNumber).int64Value) }
        case "doubleValue":
            if let text = content as? String {
                self = .double(text == "NaN" ? .nan : text == "-Infinity" ? -.infinity : .infinity)
            } else {
                self = .double(try #require(content as? NSNumber).doubleValue)
            }
        case "boolValue": self = .bool(try #require(content as? Bool))
        case "bytesValue":
            let text = try #require(content as? String)
            self = .bytes(Array(try #require(Data(base64Encoded: text))))
        case "arrayValue":
            let values = (content as? [String: Any])?["values"] as? [Any] ?? []
            self = .array(try values.map { try Value(json: $0) })
        case "kvlistValue": self = .map(try Attrs(json: (content as? [String: Any])?["values"]))
        default: throw ValueError(message: "unknown AnyValue kind \(kind)")
        }
    }
}

struct ValueError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral {
    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int64) { self = .int(value) }
    init(floatLiteral value: Double) { self = .double(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// An ordered attribute list; written as a dictionary literal, compared in order.
struct Attrs: Equatable, Sendable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    struct Entry: Equatable, Sendable {
        var key: String
        var value: Value
    }

    var entries: [Entry]

    init(_ entries: [Entry]) { self.entries = entries }

    init(dictionaryLiteral elements: (String, Value)...) {
        self.entries = elements.map { Entry(key: $0.0, value: $0.1) }
    }

    init(json object: Any?) throws {
        let list = object as? [[String: Any]] ?? []
        self.entries = try list.map { Entry(key: try #require($0["key"] as? String), value: try Value(json: $0["value"])) }
    }

    subscript(key: String) -> Value? { self.entries.first { $0.key == key }?.value }

    var keys: [String] { self.entries.map(\.key) }

    var description: String {
        "[" + self.entries.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }

    var json: String {
        "[" + self.entries.map { "{\"key\":\(jsonString($0.key)),\"value\":\($0.value.json)}" }.joined(separator: ",") + "]"
    }

    /// The same entries in key order: for the Collector's results that are maps without an order.
    var sorted: Attrs { Attrs(self.entries.sorted { $0.key < $1.key }) }

    func appending(_ key: String, _ value: Value) -> Attrs { Attrs(self.entries + [Entry(key: key, value: value)]) }
}

func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}

// MARK: Building OTLP/JSON requests

/// A resource with its scopes; items are OTLP/JSON objects of the request's signal.
struct TestResource {
    /// nil: no `resource` field at all.
    var attributes: Attrs?
    var scopes: [TestScope]
    var schemaURL: String? = nil

    init(_ attributes: Attrs?, _ scopes: [TestScope], schemaURL: String? = nil) {
        self.attributes = attributes
        self.scopes = scopes
        self.schemaURL = schemaURL
    }

    /// A resource with `service.name` (none when nil) and one scope.
    static func service(_ name: String?, _ items: [String]) -> TestResource {
        TestResource(name.map { ["service.name": .string($0)] } ?? [:], [TestScope(items)])
    }
}

struct TestScope {
    var name: String?
    var version: String?
    var items: [String]

    init(name: String? = nil, version: String? = nil, _ items: [String]) {
        self.name = name
        self.version = version
        self.items = items
    }
}

enum OTLP {
    static let traceID = "\"traceId\":\"5b8efff798038103d269b633813fc60c\""

    static func span(_ attributes: Attrs = [:]) -> String {
        Self.span("span", attributes)
    }

    /// A span; `fieldsAfter` are written after `attributes` (extra JSON members, comma-led).
    static func span(_ name: String, kind: Int? = nil, _ attributes: Attrs = [:], fieldsAfter: String = "") -> String {
        var members = [traceID, "\"spanId\":\"eee19b7ec3c1b174\"", "\"name\":\(jsonString(name))"]
        if let kind { members.append("\"kind\":\(kind)") }
        members.append("\"attributes\":\(attributes.json)")
        return "{" + members.joined(separator: ",") + fieldsAfter + "}"
    }

    static func log(body: Value? = nil, severityText: String? = nil, severityNumber: Int? = nil, _ attributes: Attrs = [:]) -> String {
        var members = ["\"timeUnixNano\":\"1544712660300000000\""]
        if let severityNumber { members.append("\"severityNumber\":\(severityNumber)") }
        if let severityText { members.append("\"severityText\":\(jsonString(severityText))") }
        if let body { members.append("\"body\":\(body.json)") }
        members.append("\"attributes\":\(attributes.json)")
        return "{" + members.joined(separator: ",") + "}"
    }

    enum MetricKind: CaseIterable {
        case gauge, sum, histogram, exponentialHistogram, summary
    }

    /// A metric with one data point per attribute list.
    static func metric(_ name: String, _ kind: MetricKind = .gauge, _ points: [Attrs]) -> String {
        let time = "\"timeUnixNano\":\"1544712660300000000\""
        let dataPoints = points.map { attributes -> String in
            let common = "\"attributes\":\(attributes.json),\(time)"
            switch kind {
            case .gauge, .sum: return "{\(common),\"asDouble\":1.5}"
            case .histogram: return "{\(common),\"count\":\"2\",\"sum\":3,\"bucketCounts\":[\"1\",\"1\"],\"explicitBounds\":[1]}"
            case .exponentialHistogram: return "{\(common),\"count\":\"1\",\"scale\":1,\"zeroCount\":\"0\",\"positive\":{\"offset\":1,\"bucketCounts\":[\"1\"]}}"
            case .summary: return "{\(common),\"count\":\"1\",\"sum\":2,\"quantileValues\":[{\"quantile\":0.5,\"value\":2}]}"
            }
        }
        let body = "{\"dataPoints\":[\(dataPoints.joined(separator: ","))]"
        let data: String =
            switch kind {
            case .gauge: "\"gauge\":\(body)}"
            case .sum: "\"sum\":\(body),\"aggregationTemporality\":2,\"isMonotonic\":true}"
            case .histogram: "\"histogram\":\(body),\"aggregationTemporality\":2}"
            case .exponentialHistogram: "\"exponentialHistogram\":\(body),\"aggregationTemporality\":2}"
            case .summary: "\"summary\":\(body)}"
            }
        return "{\"name\":\(jsonString(name)),\"unit\":\"1\",\(data)}"
    }

    static func request(_ signal: Signal, _ resources: [TestResource]) -> String {
        let (top, scopeKey, itemKey) = Self.keys(signal)
        let resourceJSON = resources.map { resource -> String in
            var members: [String] = []
            if let attributes = resource.attributes { members.append("\"resource\":{\"attributes\":\(attributes.json)}") }
            let scopes = resource.scopes.map { scope -> String in
                var scopeMembers: [String] = []
                if scope.name != nil || scope.version != nil {
                    var fields: [String] = []
                    if let name = scope.name { fields.append("\"name\":\(jsonString(name))") }
                    if let version = scope.version { fields.append("\"version\":\(jsonString(version))") }
                    scopeMembers.append("\"scope\":{\(fields.joined(separator: ","))}")
                }
                scopeMembers.append("\"\(itemKey)\":[\(scope.items.joined(separator: ","))]")
                return "{" + scopeMembers.joined(separator: ",") + "}"
            }
            members.append("\"\(scopeKey)\":[\(scopes.joined(separator: ","))]")
            if let url = resource.schemaURL { members.append("\"schemaUrl\":\(jsonString(url))") }
            return "{" + members.joined(separator: ",") + "}"
        }
        return "{\"\(top)\":[\(resourceJSON.joined(separator: ","))]}"
    }

    static func keys(_ signal: Signal) -> (String, String, String) {
        switch signal {
        case .traces: ("resourceSpans", "scopeSpans", "spans")
        case .logs: ("resourceLogs", "scopeLogs", "logRecords")
        case .metrics: ("resourceMetrics", "scopeMetrics", "metrics")
        }
    }

    /// One item of `signal` with these attributes (a gauge data point for metrics).
    static func item(_ signal: Signal, _ attributes: Attrs) -> String {
        switch signal {
        case .traces: Self.span(attributes)
        case .logs: Self.log(attributes)
        case .metrics: Self.metric("m", .gauge, [attributes])
        }
    }

    /// The request's protobuf bytes.
    static func encode(_ json: String, _ signal: Signal) throws -> ByteBuffer {
        try OTLPJSONDecoder.decode(ByteBuffer(string: json), signal: signal)
    }
}

// MARK: What came out

/// A request as it reached the next stage, read back from OTLP/JSON.
struct Output {
    let signal: Signal
    let payload: ByteBuffer
    let json: [String: Any]

    init(_ payload: ByteBuffer, signal: Signal) throws {
        self.signal = signal
        self.payload = payload
        let encoded = try OTLPJSONEncoder.encode(payload, message: WireSchema.shared.requestIndex(for: signal))
        self.json = try #require(try JSONSerialization.jsonObject(with: Data(encoded.readableBytesView)) as? [String: Any])
    }

    var resourceObjects: [[String: Any]] {
        self.json[OTLP.keys(self.signal).0] as? [[String: Any]] ?? []
    }

    /// Each resource's attributes (empty when it has none).
    var resources: [Attrs] {
        get throws { try self.resourceObjects.map { try Attrs(json: ($0["resource"] as? [String: Any])?["attributes"]) } }
    }

    /// Spans, log records or data points, in request order.
    var itemObjects: [[String: Any]] {
        let (_, scopeKey, itemKey) = OTLP.keys(self.signal)
        var items: [[String: Any]] = []
        for resource in self.resourceObjects {
            for scope in resource[scopeKey] as? [[String: Any]] ?? [] {
                for item in scope[itemKey] as? [[String: Any]] ?? [] {
                    guard self.signal == .metrics else {
                        items.append(item)
                        continue
                    }
                    for kind in ["gauge", "sum", "histogram", "exponentialHistogram", "summary"] {
                        items += ((item[kind] as? [String: Any])?["dataPoints"] as? [[String: Any]]) ?? []
                    }
                }
            }
        }
        return items
    }

    var items: [Attrs] {
        get throws { try self.itemObjects.map { try Attrs(json: $0["attributes"]) } }
    }
}

/// Whether two JSON objects are equal (as JSONSerialization reads them).
func sameJSON(_ a: Any, _ b: Any) -> Bool {
    let text = { (object: Any) in try? JSONSerialization.data(withJSONObject: ["x": object], options: [.sortedKeys]) }
    return text(a) != nil && text(a) == text(b)
}

// MARK: Config and processors

enum Config {
    /// YAML text as the config loader reads it (through a file, as otlpd does).
    static func node(_ yaml: String) throws -> ConfigNode {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("otlpd-attributes-test-\(UUID().uuidString).yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        return try ConfigLoader.load(files: [url.path], sets: [], environment: [:]).root
    }

    /// Decodes `yaml` with `factory`; the errors found.
    static func decode(_ factory: some ProcessorFactory, _ yaml: String, path: String) throws -> (ComponentConfiguration, [ConfigError]) {
        let diagnostics = ConfigDiagnostics()
        let configuration = factory.decode(ConfigReader(try Self.node(yaml), path: path, diagnostics: diagnostics))
        return (configuration, diagnostics.errors)
    }

    static func attributesErrors(_ yaml: String) throws -> [ConfigError] {
        try Self.decode(AttributesProcessorFactory(), yaml, path: "processors.attributes").1
    }

    static func resourceErrors(_ yaml: String) throws -> [ConfigError] {
        try Self.decode(ResourceProcessorFactory(), yaml, path: "processors.resource").1
    }

    /// The problems `validate(_:signal:)` finds in a config that decodes cleanly.
    static func attributesProblems(_ yaml: String, _ signal: Signal) throws -> [String] {
        let factory = AttributesProcessorFactory()
        let (configuration, errors) = try Self.decode(factory, yaml, path: "processors.attributes")
        try #require(errors.isEmpty, "\(errors)")
        return factory.validate(configuration, signal: signal)
    }
}

/// A processor built from YAML the way the service builds it, feeding a `RecordingConsumer`.
struct Harness {
    let processor: any Processor
    let next: RecordingConsumer
    let signal: Signal

    static func settings(_ type: String) -> ComponentSettings {
        ComponentSettings(id: ComponentID(type: type), logger: Logger(label: "test"), eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
    }

    init(_ factory: some ProcessorFactory, _ yaml: String, signal: Signal, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (configuration, errors) = try Config.decode(factory, yaml, path: "processors.\(factory.type)")
        try #require(errors.isEmpty, "config errors: \(errors)", sourceLocation: sourceLocation)
        let problems = factory.validate(configuration, signal: signal)
        try #require(problems.isEmpty, "config problems for \(signal): \(problems)", sourceLocation: sourceLocation)
        self.next = RecordingConsumer()
        self.signal = signal
        self.processor = try factory.makeProcessor(configuration, signal: signal, next: self.next, settings: Self.settings(factory.type))
    }

    static func attributes(_ yaml: String, _ signal: Signal = .traces, sourceLocation: SourceLocation = #_sourceLocation) throws -> Harness {
        try Harness(AttributesProcessorFactory(), yaml, signal: signal, sourceLocation: sourceLocation)
    }

    static func resource(_ yaml: String, _ signal: Signal = .traces, sourceLocation: SourceLocation = #_sourceLocation) throws -> Harness {
        try Harness(ResourceProcessorFactory(), yaml, signal: signal, sourceLocation: sourceLocation)
    }

    /// Sends `payload` through; what reached the next stage.
    func run(_ payload: ByteBuffer, itemCount: Int = 1) async throws -> Output {
        let before = self.next.batches.count
        try await self.processor.consume(TelemetryBatch(signal: self.signal, payload: payload, itemCount: itemCount))
        let batches = self.next.batches
        try #require(batches.count == before + 1)
        let batch = batches[before]
        #expect(batch.itemCount == itemCount)
        // Whatever was rewritten must still be a valid request with the same items.
        let summary = try WireValidator.validate(batch.payload, signal: self.signal)
        let original = try WireValidator.validate(payload, signal: self.signal)
        #expect(summary == original)
        return try Output(batch.payload, signal: self.signal)
    }

    func run(_ resources: [TestResource]) async throws -> Output {
        let payload = try OTLP.encode(OTLP.request(self.signal, resources), self.signal)
        return try await self.run(payload, itemCount: try WireValidator.validate(payload, signal: self.signal).itemCount)
    }
}

/// Whether two buffers are the very same bytes in memory (passed on, not copied).
func sameStorage(_ a: ByteBuffer, _ b: ByteBuffer) -> Bool {
    a.readableBytes == b.readableBytes
        && a.withUnsafeReadableBytes { x in b.withUnsafeReadableBytes { y in x.baseAddress == y.baseAddress } }
}

// MARK: Running actions on one item

/// Runs the attributes processor `yaml` on one item of `signal` with `input`; the item's attributes after.
func applied(_ yaml: String, to input: Attrs, _ signal: Signal = .traces, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Attrs {
    let harness = try Harness.attributes(yaml, signal, sourceLocation: sourceLocation)
    let payload = try OTLP.encode(OTLP.request(signal, [TestResource.service("svc", [OTLP.item(signal, input)])]), signal)
    let output = try await harness.run(payload)
    let items = try output.items
    try #require(items.count == 1, sourceLocation: sourceLocation)
    if items[0] == input {
        // Nothing changed: the request goes on as it came.
        #expect(output.payload == payload, "unchanged attributes but different bytes", sourceLocation: sourceLocation)
    }
    return items[0]
}

/// Runs the attributes processor on a span, a log record and a gauge data
/// point with `input`, and expects `expected` from each.
func expectActions(_ yaml: String, _ input: Attrs, _ expected: Attrs, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    for signal in Signal.allCases {
        let result = try await applied(yaml, to: input, signal, sourceLocation: sourceLocation)
        #expect(result == expected, "\(signal)", sourceLocation: sourceLocation)
    }
}

// MARK: Raw protobuf

/// The top-level fields of a protobuf message: number, wire type and the bytes of the whole field (tag included).
func protobufFields(_ bytes: [UInt8]) throws -> [(number: UInt64, wireType: UInt8, content: [UInt8], whole: [UInt8])] {
    var fields: [(UInt64, UInt8, [UInt8], [UInt8])] = []
    var index = 0
    func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < bytes.count else { throw ValueError(message: "truncated varint") }
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }
    while index < bytes.count {
        let start = index
        let tag = try varint()
        let wireType = UInt8(tag & 7)
        let contentStart: Int
        switch wireType {
        case 0:
            contentStart = index
            _ = try varint()
        case 1:
            contentStart = index
            index += 8
        case 2:
            let length = Int(try varint())
            contentStart = index
            index += length
        case 5:
            contentStart = index
            index += 4
        default: throw ValueError(message: "wire type \(wireType)")
        }
        guard index <= bytes.count else { throw ValueError(message: "truncated field") }
        fields.append((tag >> 3, wireType, Array(bytes[contentStart..<index]), Array(bytes[start..<index])))
    }
    return fields
}

extension ByteBuffer {
    var bytes: [UInt8] { Array(self.readableBytesView) }
}
