import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCore
import OTLPDSystem

/// systemd's view of the daemon (`Type=notify`): `READY=1` once every
/// listener is open, `RELOADING=1` and `READY=1` around a reload,
/// `STOPPING=1`, a `STATUS=` line, and the watchdog, fed only while every
/// event loop and the blocking-I/O pool answer, so a stuck loop gets the
/// process restarted. Does nothing without `NOTIFY_SOCKET`.
final class ServiceManager: Sendable {
    let socket: ServiceManagerSocket?
    let watchdogInterval: Duration?
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var lastStatus = ""
        var stalledSince: ContinuousClock.Instant?
    }

    init(environment: [String: String], logger: Logger) {
        self.socket = ServiceManagerSocket(environment: environment)
        self.watchdogInterval = self.socket == nil ? nil : ServiceManagerSocket.watchdogInterval(environment: environment)
        self.logger = logger
        if let socket = self.socket {
            logger.info(
                "reporting to the service manager", metadata: ["socket": "\(socket.path)", "watchdog": "\(self.watchdogInterval.map { ConfigUnits.format($0) } ?? "off")"])
        }
    }

    func ready(status: String) {
        self.send("READY=1\nSTATUS=\(status)")
        self.state.withLockedValue { $0.lastStatus = status }
    }

    func reloading() {
        self.send("RELOADING=1\nMONOTONIC_USEC=\(ServiceManagerSocket.monotonicMicroseconds())\nSTATUS=reloading the config")
    }

    func stopping() {
        self.send("STOPPING=1\nSTATUS=stopping: draining and flushing")
    }

    private func send(_ message: String) {
        guard let socket = self.socket else { return }
        if !socket.send(message) {
            self.logger.warning("cannot reach the service manager's socket", metadata: ["socket": "\(socket.path)"])
        }
    }

    /// Feeds the watchdog every half interval while everything answers, and
    /// keeps `STATUS=` current (at most every 5 s), until cancelled.
    func run(eventLoops: any EventLoopGroup, status: @escaping @Sendable () -> String) async {
        guard self.socket != nil else { return }
        let tick = min(self.watchdogInterval.map { $0 / 2 } ?? .seconds(5), .seconds(5))
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if Task.isCancelled { return }
            if self.watchdogInterval != nil {
                if await Self.everythingAnswers(eventLoops, within: tick) {
                    self.send("WATCHDOG=1")
                    self.recovered()
                } else {
                    self.stalled(tick)
                }
            }
            let current = status()
            let changed = self.state.withLockedValue { state -> Bool in
                defer { state.lastStatus = current }
                return state.lastStatus != current
            }
            if changed { self.send("STATUS=\(current)") }
        }
    }

    /// Whether every event loop and the blocking-I/O pool (file and queue writes) run a task within `limit`.
    static func everythingAnswers(_ eventLoops: any EventLoopGroup, within limit: Duration) async -> Bool {
        let loops = Array(eventLoops.makeIterator())
        let answered = NIOLockedValueBox(0)
        for loop in loops { loop.execute { answered.withLockedValue { $0 += 1 } } }
        NIOThreadPool.singleton.submit { _ in answered.withLockedValue { $0 += 1 } }
        let deadline = ContinuousClock.now + limit
        while answered.withLockedValue({ $0 }) < loops.count + 1 {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    private func stalled(_ tick: Duration) {
        let first = self.state.withLockedValue { state -> Bool in
            defer { state.stalledSince = state.stalledSince ?? .now }
            return state.stalledSince == nil
        }
        if first {
            self.logger.error(
                "an event loop or the I/O pool did not answer within \(ConfigUnits.format(tick)); the watchdog is not fed, so systemd restarts otlpd if it stays stuck")
        }
    }

    private func recovered() {
        let since = self.state.withLockedValue { state -> ContinuousClock.Instant? in
            defer { state.stalledSince = nil }
            return state.stalledSince
        }
        if let since {
            self.logger.warning("the event loops answer again; the watchdog is fed", metadata: ["stuck_for": "\(ConfigUnits.format(.milliseconds((ContinuousClock.now - since).nanosecondsValue / 1_000_000)))"])
        }
    }
}
