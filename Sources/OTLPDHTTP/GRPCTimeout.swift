/// gRPC's `grpc-timeout` header: at most 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`). The server reads it as the client's deadline; a
/// client sends what is left of its own.
public enum GRPCTimeout {
    public static func parse(_ text: String) -> Duration? {
        let utf8 = text.utf8
        guard utf8.count >= 2, utf8.count <= 9, let unit = utf8.last else { return nil }
        var value: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        switch unit {
        case UInt8(ascii: "H"): return .seconds(value * 3600)
        case UInt8(ascii: "M"): return .seconds(value * 60)
        case UInt8(ascii: "S"): return .seconds(value)
        case UInt8(ascii: "m"): return .milliseconds(value)
        case UInt8(ascii: "u"): return .microseconds(value)
        case UInt8(ascii: "n"): return .nanoseconds(value)
        default: return nil
        }
    }

    /// The header value for `duration`, in milliseconds while they fit in 8
    /// digits (rounded up, so a client never times out before its peer).
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return "0m" }
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        if milliseconds < 100_000_000 { return "\(milliseconds)m" }
        return "\(min(seconds + 1, 99_999_999))S"
    }
}
