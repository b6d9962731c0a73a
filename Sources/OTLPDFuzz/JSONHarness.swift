import NIOCore
import OTLPDCore
import OTLPDWire

/// The OTLP/JSON decoder (an OTLP/HTTP body with `application/json`) on the
/// input as a request of each signal.
///
/// Invariants, for what it decodes: the protobuf it wrote is a valid
/// request (the receiver validates it next, and a client should not hear
/// 400 for JSON otlpd accepted), and that request, written back as OTLP/JSON
/// lines, decodes again with the same resources and items (`WireHarness.checkJSON`).
enum JSONHarness {
    static func run(_ input: [UInt8]) {
        let body = ByteBuffer(bytes: input)
        for signal in Signal.allCases {
            guard let wire = try? OTLPJSONDecoder.decode(body, signal: signal) else { continue }
            let summary: RequestSummary
            do {
                summary = try WireValidator.validate(wire, signal: signal)
            } catch {
                fatalError("invariant broken: \(signal): the JSON decoder wrote a request the validator refuses: \(error)")
            }
            WireHarness.checkJSON(wire, signal: signal, summary: summary)
        }
    }
}
