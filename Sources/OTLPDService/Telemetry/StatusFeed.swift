import NIOCore
import Synchronization

/// The status page's live feed at `/events`: Server-Sent Events, one
/// `status` event a second with the same JSON as `/services`. The JSON is
/// made once per tick for all subscribers, and only while there are any;
/// at most `maxClients` subscribe at once. A subscriber that does not read
/// keeps only the newest event.
package final class StatusFeed: Sendable {
    package let maxClients: Int
    let interval: Duration
    /// The JSON of one event, given the number of subscribers.
    private let snapshot: @Sendable (Int) -> String
    private let state = Mutex(State())

    private struct State {
        var clients: [Int: AsyncStream<ByteBuffer>.Continuation] = [:]
        var nextID = 0
        var ticking = false
        var closed = false
    }

    package init(maxClients: Int, interval: Duration = .seconds(1), snapshot: @escaping @Sendable (Int) -> String) {
        self.maxClients = maxClients
        self.interval = interval
        self.snapshot = snapshot
    }

    package var clientCount: Int { self.state.withLock { $0.clients.count } }

    /// A new subscriber's events, the first at once; nil when `maxClients` are subscribed (or the feed is closed).
    package func subscribe() -> AsyncStream<ByteBuffer>? {
        let (events, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(1))
        let subscription = self.state.withLock { state -> (id: Int, startTicker: Bool)? in
            guard !state.closed, state.clients.count < self.maxClients else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.clients[id] = continuation
            defer { state.ticking = true }
            return (id, !state.ticking)
        }
        guard let subscription else { return nil }
        continuation.onTermination = { _ in self.state.withLock { _ = $0.clients.removeValue(forKey: subscription.id) } }
        // The browser reconnects after a second if the connection drops.
        continuation.yield(ByteBuffer(string: "retry: 1000\n" + Self.event(self.snapshot(self.clientCount))))
        if subscription.startTicker { Task { await self.tick() } }
        return events
    }

    /// Sends one event a second until nobody subscribes.
    private func tick() async {
        while true {
            try? await Task.sleep(for: self.interval)
            let clients = self.state.withLock { state -> [AsyncStream<ByteBuffer>.Continuation]? in
                if state.clients.isEmpty || state.closed {
                    state.ticking = false
                    return nil
                }
                return Array(state.clients.values)
            }
            guard let clients else { return }
            let event = ByteBuffer(string: Self.event(self.snapshot(clients.count)))
            for client in clients { client.yield(event) }
        }
    }

    /// Ends every subscriber's stream (the connections close) and takes no more.
    package func close() {
        let clients = self.state.withLock { state in
            state.closed = true
            return Array(state.clients.values)
        }
        for client in clients { client.finish() }
    }

    /// One SSE event; the JSON is on one line (its strings escape line breaks).
    static func event(_ json: String) -> String {
        "event: status\ndata: \(json)\n\n"
    }
}
