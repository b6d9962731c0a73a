#if canImport(Glibc)
import Glibc
#endif

/// Names to addresses with the system's resolver (getaddrinfo: /etc/hosts,
/// DNS, and so a Kubernetes headless Service's every pod). It blocks: call
/// it off the event loops.
public enum AddressResolver {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The numeric addresses of `host` for TCP, in the resolver's order, each once.
    public static func addresses(of host: String) throws(Failure) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else { throw Failure(description: String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var entry = list
        while let current = entry {
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if let address = current.pointee.ai_addr {
                switch Int32(address.pointee.sa_family) {
                case AF_INET:
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet in
                        var raw = inet.pointee.sin_addr
                        _ = inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
                    }
                case AF_INET6:
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet6 in
                        var raw = inet6.pointee.sin6_addr
                        _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
                    }
                default:
                    break
                }
            }
            let numeric = String(cString: text)
            if !numeric.isEmpty && !addresses.contains(numeric) { addresses.append(numeric) }
            entry = current.pointee.ai_next
        }
        return addresses
    }
}
