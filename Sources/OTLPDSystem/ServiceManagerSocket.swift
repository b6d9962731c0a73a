import Glibc

/// The socket systemd gives a `Type=notify` service (`NOTIFY_SOCKET`): one
/// datagram per state change (`READY=1`, `RELOADING=1`, `STOPPING=1`,
/// `STATUS=…`, `WATCHDOG=1`), as `sd_notify(3)` sends them, without linking libsystemd.
public final class ServiceManagerSocket: Sendable {
    public let path: String
    private let descriptor: Int32

    /// The socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace); nil when unset or unusable.
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108 else { return nil }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        close(self.descriptor)
    }

    /// Sends one message (`KEY=value` lines); false if it did not go.
    @discardableResult
    public func send(_ message: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var name = Array(self.path.utf8)
        // `@name` is the abstract namespace: a leading NUL, and the length counts only the bytes used.
        if name.first == UInt8(ascii: "@") { name[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in name.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count + (name.first == 0 ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { body in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(self.descriptor, body.baseAddress, body.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent == bytes.count
    }

    /// CLOCK_MONOTONIC in microseconds, as `RELOADING=1` wants it in `MONOTONIC_USEC`.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }

    /// The watchdog interval systemd asks for (`WATCHDOG_USEC`), if it is meant for this process (`WATCHDOG_PID`).
    public static func watchdogInterval(environment: [String: String]) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], Int32(pid) != getpid() { return nil }
        return .microseconds(microseconds)
    }
}
