#if canImport(Glibc)
import Glibc
#endif

/// HTTP's `Retry-After` (RFC 9110 section 10.2.3): a number of seconds, or
/// an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) to wait until.
package enum RetryAfter {
    package static func parse(_ text: String) -> Duration? {
        Self.parse(text, now: Int64(time(nil)))
    }

    package static func parse(_ text: String, now: Int64) -> Duration? {
        let words = text.split(separator: " ")
        if words.count == 1, let seconds = Int64(words[0]) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = Self.httpDate(words) else { return nil }
        return .seconds(max(0, date - now))
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the epoch of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    private static func httpDate(_ words: [Substring]) -> Int64? {
        guard words.count == 6, words[5] == "GMT", let day = Int64(words[1]), let monthIndex = Self.months.firstIndex(of: String(words[2])),
            let year = Int64(words[3])
        else { return nil }
        let clock = words[4].split(separator: ":").compactMap { Int64($0) }
        guard clock.count == 3 else { return nil }
        // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
        let month = Int64(monthIndex + 1)
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
    }
}
