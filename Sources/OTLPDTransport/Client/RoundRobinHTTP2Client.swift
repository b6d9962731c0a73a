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

    public func send(_ request: HTTPClientRequest, deadline: NIODeadline) async throws(HTTPClientError) -> HTTPClientResponse {
        await self.refreshIfDue()
        guard let client = self.state.withLockedValue({ $0.rotation.next() }) else {
            throw HTTPClientError(.connectFailed, "cannot connect to \(self.authority): the name resolves to no address")
        }
        do {
            return try await client.send(request, deadline: deadline)
        } catch {
            // A replica may be gone: look the name up again before the next call.
            if error.kind == .connectFailed { self.state.withLockedValue { $0.resolvedAt = nil } }
            throw error
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
