#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock time for log lines and file names, without Foundation.
public enum Timestamp {
    /// Nanoseconds since the Unix epoch.
    public static func nowNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// `2026-11-21T10:00:00.123Z` (UTC, milliseconds).
    public static func iso8601(nanoseconds: Int64 = Timestamp.nowNanoseconds()) -> String {
        let (date, time, millis) = Self.components(nanoseconds: nanoseconds, local: false)
        return "\(date)T\(time).\(Self.pad(millis, 3))Z"
    }

    /// `2026-11-21T10-00-00.123`, the backup-file stamp (UTC, or local time).
    public static func fileStamp(nanoseconds: Int64, local: Bool) -> String {
        let (date, time, millis) = Self.components(nanoseconds: nanoseconds, local: local)
        return "\(date)T\(time.replacingColons()).\(Self.pad(millis, 3))"
    }

    /// Parses a `fileStamp` back (UTC or local), to age backups.
    public static func parseFileStamp(_ text: Substring, local: Bool) -> Int64? {
        let digits = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard digits.count == 7 else { return nil }
        var parts = tm()
        parts.tm_year = Int32(digits[0] - 1900)
        parts.tm_mon = Int32(digits[1] - 1)
        parts.tm_mday = Int32(digits[2])
        parts.tm_hour = Int32(digits[3])
        parts.tm_min = Int32(digits[4])
        parts.tm_sec = Int32(digits[5])
        parts.tm_isdst = -1
        let seconds = local ? mktime(&parts) : timegm(&parts)
        guard seconds >= 0 else { return nil }
        return Int64(seconds) * 1_000_000_000 + Int64(digits[6]) * 1_000_000
    }

    private static func components(nanoseconds: Int64, local: Bool) -> (String, String, Int) {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        if local { localtime_r(&seconds, &parts) } else { gmtime_r(&seconds, &parts) }
        let date = "\(Int(parts.tm_year) + 1900)-\(Self.pad(Int(parts.tm_mon) + 1, 2))-\(Self.pad(Int(parts.tm_mday), 2))"
        let time = "\(Self.pad(Int(parts.tm_hour), 2)):\(Self.pad(Int(parts.tm_min), 2)):\(Self.pad(Int(parts.tm_sec), 2))"
        return (date, time, Int(nanoseconds % 1_000_000_000 / 1_000_000))
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}

extension String {
    fileprivate func replacingColons() -> String {
        String(self.map { $0 == ":" ? "-" : $0 })
    }
}
