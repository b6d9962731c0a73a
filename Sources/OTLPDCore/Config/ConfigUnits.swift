/// Parsers for the config's duration and size notations.
public enum ConfigUnits {
    /// Go's duration syntax, as the Collector takes it: `200ms`, `1.5s`, `1m30s`, `0`.
    /// Units: ns, us (or µs), ms, s, m, h. A number without a unit is refused
    /// (it is almost always a mistake), except `0`.
    public static func parseDuration(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingWhitespace())
        guard !rest.isEmpty else { return nil }
        var negative = false
        if rest.first == "-" || rest.first == "+" {
            negative = rest.first == "-"
            rest = rest.dropFirst()
        }
        if rest == "0" { return .zero }
        var totalNanoseconds: Double = 0
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: { !($0.isASCII && ($0.isNumber || $0 == ".")) })
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            totalNanoseconds += value * scale
        }
        guard totalNanoseconds < 9.2e18 else { return nil }
        let nanoseconds = Int64(totalNanoseconds.rounded())
        return .nanoseconds(negative ? -nanoseconds : nanoseconds)
    }

    /// A byte size: a plain integer (bytes) or a number with B, KiB, MiB,
    /// GiB (also KB, MB, GB as the same binary units, as the Collector reads them).
    public static func parseByteSize(_ text: String) -> Int? {
        let trimmed = text.trimmingWhitespace()
        let number = trimmed.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
        guard !number.isEmpty, let value = Double(number), value >= 0 else { return nil }
        let unit = trimmed.dropFirst(number.count).trimmingWhitespace()
        let scale: Double
        switch unit.lowercased() {
        case "", "b": scale = 1
        case "kib", "kb", "k": scale = 1024
        case "mib", "mb", "m": scale = 1024 * 1024
        case "gib", "gb", "g": scale = 1024 * 1024 * 1024
        default: return nil
        }
        let bytes = value * scale
        guard bytes < 9.2e18, unit.isEmpty ? value.rounded() == value : true else { return nil }
        return Int(bytes.rounded())
    }

    /// Renders a duration the way a config would write it (`200ms`, `1.5s`).
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = Int64(seconds) * 1_000_000_000 + attoseconds / 1_000_000_000
        if nanoseconds == 0 { return "0s" }
        if nanoseconds % 3_600_000_000_000 == 0 { return "\(nanoseconds / 3_600_000_000_000)h" }
        if nanoseconds % 60_000_000_000 == 0 { return "\(nanoseconds / 60_000_000_000)m" }
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000)us" }
        return "\(nanoseconds)ns"
    }
}

extension ConfigUnits {
    /// A byte count for people: `512 B`, `12 KiB`, `3.4 MiB`, `1.2 GiB`.
    public static func formatBytes(_ count: Int) -> String {
        if count < 1024 { return "\(count) B" }
        if count < 1 << 20 { return "\(count >> 10) KiB" }
        let (unit, shift) = count < 1 << 30 ? ("MiB", 20) : ("GiB", 30)
        let tenths = Int((Double(count) * 10 / Double(1 << shift)).rounded(.down))
        return "\(tenths / 10).\(tenths % 10) \(unit)"
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    public var nanosecondsValue: Int64 {
        let (seconds, attoseconds) = self.components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product + attoseconds / 1_000_000_000
    }

    /// Seconds as a floating-point number, for Retry-After and logs.
    public var secondsValue: Double {
        Double(self.nanosecondsValue) / 1e9
    }
}
