/// Header names and values that clients send on every request, as
/// constant strings: turning them into `String`s would otherwise allocate
/// a few times per request (Swift keeps only strings of up to 15 bytes
/// inline).
enum CommonHeaderText {
    /// Only texts over 15 bytes: shorter ones never allocate.
    private static let known: [String] = [
        "grpc-accept-encoding", "application/grpc", "application/grpc+proto", "application/x-protobuf",
        "identity,deflate,gzip", "identity, deflate, gzip", "identity,gzip,deflate",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ]

    /// The constants by length, then bytes, for a lookup without hashing.
    private static let byLength: [[(bytes: [UInt8], text: String)]] = {
        var table = [[(bytes: [UInt8], text: String)]](repeating: [], count: 65)
        for text in Self.known where text.utf8.count <= 64 {
            table[text.utf8.count].append((Array(text.utf8), text))
        }
        return table
    }()

    static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        // Up to 15 bytes a String is stored inline: nothing to save.
        if bytes.count > 15 && bytes.count < Self.byLength.count {
            for candidate in Self.byLength[bytes.count] where candidate.bytes.elementsEqual(bytes) {
                return candidate.text
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
