import Foundation
import NIOCore
import OTLPDCore

/// The golden files in Fixtures/, made by make_fixtures.py with the PyPI
/// opentelemetry-proto package.
enum Fixture {
    static func data(_ name: String) throws -> Data {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw FixtureError.missing(name)
        }
        return try Data(contentsOf: url)
    }

    static func buffer(_ name: String) throws -> ByteBuffer {
        ByteBuffer(data: try data(name))
    }

    static func json(_ name: String) throws -> Any {
        try JSONSerialization.jsonObject(with: try data(name), options: [.fragmentsAllowed])
    }

    /// The top-level list key of each signal's request in OTLP/JSON.
    static func resourceKey(_ signal: Signal) -> String {
        switch signal {
        case .traces: "resourceSpans"
        case .metrics: "resourceMetrics"
        case .logs: "resourceLogs"
        }
    }

    enum FixtureError: Error {
        case missing(String)
    }
}

extension ByteBuffer {
    init(data: Data) {
        self = ByteBufferAllocator().buffer(capacity: data.count)
        self.writeBytes(data)
    }
}

/// Parses JSON text into Foundation objects for comparison by value.
func parseJSON(_ text: some StringProtocol) throws -> NSObject {
    try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as! NSObject
}
