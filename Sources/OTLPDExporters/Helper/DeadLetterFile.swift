import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDSystem
import OTLPDWire

/// Where a persistent queue puts data the upstream refused for good after
/// otlpd had acknowledged it: never dropped silently. One JSON line per
/// request: the exporter, the signal, the time, the upstream's status and message, and
/// the request in OTLP/JSON. Bounded by `maxBytes`: past half of it the file
/// becomes `NAME.1` (replacing the one before), so the oldest go first.
package final class DeadLetterFile: Sendable {
    package let path: String
    let exporter: String
    let maxBytes: Int
    private let file = NIOLockedValueBox<AppendOnlyFile?>(nil)
    private let count = NIOLockedValueBox(0)

    package init(path: String, exporter: String, maxBytes: Int = 64 << 20) {
        self.path = path
        self.exporter = exporter
        self.maxBytes = maxBytes
    }

    /// Records written since start.
    package var records: Int { self.count.withLockedValue { $0 } }

    /// Appends one refused request (blocking: call it off the event loops).
    package func write(_ payload: ByteBuffer, signal: Signal, status: String, message: String, now: Int64 = Timestamp.nowNanoseconds()) throws {
        var sink = ByteSink(capacity: payload.readableBytes * 3 + 256)
        sink.append("{\"exporter\":\"")
        sink.appendJSONEscaped(self.exporter)
        sink.append("\",\"signal\":\"")
        sink.appendJSONEscaped(signal.rawValue)
        sink.append("\",\"time\":\"")
        sink.append(contentsOf: Timestamp.iso8601(nanoseconds: now))
        sink.append("\",\"status\":\"")
        sink.appendJSONEscaped(status)
        sink.append("\",\"message\":\"")
        sink.appendJSONEscaped(message)
        sink.append("\",\"request\":")
        try OTLPJSONEncoder.append(payload, message: WireSchema.shared.requestIndex(for: signal), to: &sink)
        sink.append("}\n")
        let line = sink.byteBuffer()
        try self.file.withLockedValue { file in
            if file == nil { file = try AppendOnlyFile(path: self.path) }
            if let current = file, current.size > 0, current.size + line.readableBytes > self.maxBytes / 2 {
                current.close()
                try FileOperations.rename(self.path, to: self.path + ".1")
                file = try AppendOnlyFile(path: self.path)
            }
            try file?.write(line)
        }
        self.count.withLockedValue { $0 += 1 }
    }
}
