/// The fuzz targets, by the name `make fuzz`, `otlpd-fuzz TARGET PATH...`
/// and `--target=NAME` use. Each harness takes one input, runs it through
/// the product code it is named after, and returns; a broken invariant stops
/// the process (`invariant`), which libFuzzer reports as a crash.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    let run: @Sendable ([UInt8]) -> Void
}

enum FuzzTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(
            name: "sniffer", summary: "a server connection: the sniffer, HTTP/1.1 and the nghttp2 server session, the input fed in pieces",
            run: SnifferHarness.run),
        FuzzTarget(name: "h2client", summary: "the nghttp2 client handler with requests under way, the input fed as the server's bytes", run: H2ClientHarness.run),
        FuzzTarget(name: "grpc", summary: "gRPC deframing, then decompression with every coding under a limit", run: GRPCHarness.run),
        FuzzTarget(
            name: "wire", summary: "the protobuf walkers: validation, OTLP/JSON out (and back in), debug lines, splits, attribute edits",
            run: WireHarness.run),
        FuzzTarget(name: "json", summary: "the OTLP/JSON decoder for each signal, what it made validated and encoded back", run: JSONHarness.run),
        FuzzTarget(name: "segments", summary: "the persistent queue's segment log recovering from the input as a segment file", run: SegmentsHarness.run),
        FuzzTarget(name: "config", summary: "the YAML config loader and the collector's config decoding and checks", run: ConfigHarness.run),
    ]

    static func named(_ name: String) -> FuzzTarget? {
        Self.all.first { $0.name == name }
    }

    static var names: String { Self.all.map(\.name).joined(separator: ", ") }
}

/// Stops the process when a harness's invariant does not hold: libFuzzer
/// saves the input as a crash, and the replay runner fails.
func invariant(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("invariant broken: \(message())", file: file, line: line) }
}
