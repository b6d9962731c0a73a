import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import OTLPDHTTP
import OTLPDSystem

/// Calls to an upstream name spread over every address it resolves to,
/// one connection each, in turn (gRPC's `round_robin`): a fleet of agents
/// spreads its load over a gateway's replicas (a Kubernetes headless
/// Service). The name is resolved again every `refreshInterval`, and at
/// once after a connect failure, so replicas that come and go are followed;
/// an address that leaves gets no new calls and its connection closes once
/// those under way are answered.
public final class RoundRobinHTTP2Client: Sendable {
    public let host: String
    public let port: Int
    public let authority: String
    private let tls: NIOSSLContext?
    private let serverName: String?
    private let group: any EventLoopGroup
    private let refreshInterval: Duration
    private let resolve: @Sendable (String) throws -> [String]
    private let state = NIOLockedValueBox(State())

    struct State {
        var rotation = RoundRobin<HTTP2Client>()
        var resolvedAt: ContinuousClock.Instant?
        var resolving = false
        var closed = false
        /// Addresses whose last connect failed: skipped until then, while another answers (the wait doubles, up to 30 s).
        var down: [String: (until: ContinuousClock.Instant, wait: Duration)] = [:]

        /// The next address in turn that is not in `tried`, preferring those not known to be down.
        mutating func pick(excluding tried: Set<String>, now: ContinuousClock.Instant) -> (String, HTTP2Client)? {
            let down = self.down
            return self.rotation.next { key in !tried.contains(key) && (down[key].map { $0.until <= now } ?? true) }
                ?? self.rotation.next { key in !tried.contains(key) }
        }
    }

    public init(
        host: String, port: Int, tls: NIOSSLContext?, serverName: String? = nil, group: any EventLoopGroup,
        refreshInterval: Duration = .seconds(30),
        resolve: @escaping @Sendable (String) throws -> [String] = { try AddressResolver.addresses(of: $0) }
    ) {
        self.host = host
        self.port = port
        self.authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.tls = tls
        self.serverName = serverName ?? (UpstreamConnector.isAddress(host) ? nil : host)
        self.group = group
        self.refreshInterval = refreshInterval
        self.resolve = resolve
    }

    /// The addresses calls go to now.
    public var addresses: [String] { self.state.withLockedValue { $0.rotation.keys } }

    /// Sends on the next address in turn; an address that refuses the
    /// connection is marked down (skipped for a while, as gRPC's round_robin
    /// skips a failing subchannel) and the call goes to the next one at once,
    /// so a replica that went away costs no retry wait while another answers.
    public func send(_ request: HTTPClientRequest, deadline: NIODeadline) async throws(HTTPClientError) -> HTTPClientResponse {
        await self.refreshIfDue()
        var tried: Set<String> = []
        var lastFailure: HTTPClientError?
        while true {
            guard let (address, client) = self.state.withLockedValue({ $0.pick(excluding: tried, now: .now) }) else {
                throw lastFailure ?? HTTPClientError(.connectFailed, "cannot connect to \(self.authority): the name resolves to no address")
            }
            do {
                let response = try await client.send(request, deadline: deadline)
                self.state.withLockedValue { _ = $0.down.removeValue(forKey: address) }
                return response
            } catch {
                guard error.kind == .connectFailed else { throw error }
                tried.insert(address)
                lastFailure = error
                self.state.withLockedValue { state in
                    // A replica may be gone: look the name up again before the next call.
                    state.resolvedAt = nil
                    let wait = min(.seconds(30), (state.down[address]?.wait ?? .milliseconds(500)) * 2)
                    state.down[address] = (ContinuousClock.now + wait, wait)
                }
            }
        }
    }

    public func shutdown() async {
        let clients = self.state.withLockedValue { state -> [HTTP2Client] in
            state.closed = true
            return state.rotation.removeAll()
        }
        for client in clients { await client.shutdown() }
    }

    private func refreshIfDue() async {
        let due = self.state.withLockedValue { state -> Bool in
            guard !state.closed, !state.resolving else { return false }
            if let resolvedAt = state.resolvedAt, ContinuousClock.now - resolvedAt < self.refreshInterval, !state.rotation.isEmpty {
                return false
            }
            state.resolving = true
            return true
        }
        guard due else { return }
        let addresses: [String]
        if UpstreamConnector.isAddress(self.host) {
            addresses = [self.host]
        } else {
            let host = self.host
            let resolve = self.resolve
            addresses = (try? await NIOThreadPool.singleton.runIfActive { try resolve(host) }) ?? []
        }
        let removed = self.state.withLockedValue { state -> [HTTP2Client] in
            state.resolving = false
            // A failed lookup keeps the addresses known before.
            guard !addresses.isEmpty, !state.closed else { return [] }
            state.resolvedAt = .now
            state.down = state.down.filter { addresses.contains($0.key) }
            return state.rotation.update(addresses) { address in
                HTTP2Client(
                    host: address, port: self.port, tls: self.tls, serverName: self.serverName, authority: self.authority, group: self.group)
            }
        }
        for client in removed { await client.shutdown() }
    }

}

/// Values by key, handed out in turn; an update keeps the values of keys
/// that stay, adds the new, and returns the ones that left.
package struct RoundRobin<Value: Sendable>: Sendable {
    package init() {}

    package private(set) var keys: [String] = []
    private var values: [String: Value] = [:]
    private var position = 0

    package var isEmpty: Bool { self.keys.isEmpty }

    package mutating func next() -> Value? {
        guard !self.keys.isEmpty else { return nil }
        defer { self.position = (self.position + 1) % self.keys.count }
        return self.values[self.keys[self.position % self.keys.count]]
    }

    /// The next key in turn that `eligible` accepts, with its value; the turn moves past it.
    package mutating func next(where eligible: (String) -> Bool) -> (String, Value)? {
        for step in 0..<self.keys.count {
            let index = (self.position + step) % self.keys.count
            let key = self.keys[index]
            guard eligible(key), let value = self.values[key] else { continue }
            self.position = (index + 1) % self.keys.count
            return (key, value)
        }
        return nil
    }

    package mutating func update(_ keys: [String], make: (String) -> Value) -> [Value] {
        var removed: [Value] = []
        for key in self.keys where !keys.contains(key) {
            if let value = self.values.removeValue(forKey: key) { removed.append(value) }
        }
        for key in keys where self.values[key] == nil { self.values[key] = make(key) }
        self.keys = keys
        if self.position >= keys.count { self.position = 0 }
        return removed
    }

    package mutating func removeAll() -> [Value] {
        defer {
            self.keys = []
            self.values = [:]
            self.position = 0
        }
        return Array(self.values.values)
    }
}
