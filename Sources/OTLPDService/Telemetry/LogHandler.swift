import Logging
import NIOConcurrencyHelpers
import OTLPDCore

#if canImport(Glibc)
import Glibc
#endif

/// otlpd's own log lines, on stderr: `console` is one tab-separated line
/// (time, level, message, key=value...), `json` one object per line with
/// the Collector's names (`level`, `ts`, `msg`) and the fields after.
public struct OTLPDLogHandler: LogHandler {
    public enum Encoding: Sendable {
        case console
        case json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let encoding: Encoding
    private static let lock = NIOLock()

    /// Off under systemd (`JOURNAL_STREAM`): the journal adds its own.
    let timestamps: Bool

    public init(level: Logger.Level, encoding: Encoding, timestamps: Bool = true) {
        self.logLevel = level
        self.encoding = encoding
        self.timestamps = timestamps
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let time = Timestamp.iso8601()
        let level = Self.name(event.level)
        var line: String
        switch self.encoding {
        case .console:
            // Under the journal, a `<N>` syslog priority prefix (which journald takes off) lets `journalctl -p warning` find warnings.
            line = self.timestamps ? "\(time)\t\(level)\t\(event.message)" : "<\(Self.syslogPriority(event.level))>\(level)\t\(event.message)"
            for key in all.keys.sorted() {
                line += "\t\(key)=\(Self.consoleValue(all[key]!))"
            }
        case .json:
            // The Collector's field names (zap's production encoder): level, ts, msg, then the fields.
            line = "{\"level\":\"\(level)\",\"ts\":\"\(time)\",\"msg\":\(Self.jsonString(event.message.description))"
            for key in all.keys.sorted() {
                line += ",\(Self.jsonString(key)):\(Self.jsonString("\(all[key]!)"))"
            }
            line += "}"
        }
        line += "\n"
        Self.lock.withLock {
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func name(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "info"
        case .warning: "warn"
        case .error: "error"
        case .critical: "error"
        }
    }

    /// Values with spaces are quoted, so `key=value` pairs stay parseable.
    static func consoleValue(_ value: Logger.Metadata.Value) -> String {
        let text = "\(value)"
        guard text.contains(where: { $0 == " " || $0 == "\t" || $0 == "\"" || $0.isNewline }) || text.isEmpty else { return text }
        return Self.jsonString(text)
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\u00" + String(scalar.value, radix: 16).leftPad(2)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func leftPad(_ width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}
