import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import ServiceLifecycle
import UnixSignals

/// The daemon: runs the pipeline graph of a config until a graceful
/// shutdown (SIGTERM / SIGINT), then stops it within `shutdown_timeout`;
/// on SIGHUP, reads the config again and moves to it without dropping
/// anything in flight.
public final class Collector: Service {
    let configuration: CollectorConfiguration
    /// Reads the config files again (for SIGHUP); throws when they are invalid.
    let reloadConfiguration: (@Sendable () throws -> CollectorConfiguration)?
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    /// Outlives any one pipeline graph: bytes held by requests in flight stay counted.
    let memoryGuard = MemoryGuard()

    /// systemd, when it started otlpd as a `Type=notify` service.
    let serviceManager: ServiceManager
    /// The config files it runs (for the status page).
    let configDescription: String

    public init(
        configuration: CollectorConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger,
        reloadConfiguration: (@Sendable () throws -> CollectorConfiguration)? = nil, environment: [String: String] = [:],
        configDescription: String = "<embedded default>"
    ) {
        self.configDescription = configDescription
        self.serviceManager = ServiceManager(environment: environment, logger: logger)
        self.configuration = configuration
        self.reloadConfiguration = reloadConfiguration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    enum LifecycleEvent: Sendable {
        case reload
        case stop
    }

    public func run() async throws {
        let telemetry = SelfTelemetry(serviceVersion: OTLPDVersion.number)
        let services = ServiceRegistry(logger: self.logger)
        var server: TelemetryServer?
        if let endpoint = self.configuration.telemetry.metricsEndpoint {
            let telemetryServer = TelemetryServer(
                endpoint: endpoint, telemetry: telemetry, services: services, memory: self.memoryGuard, logger: self.logger,
                maxFeedClients: self.configuration.telemetry.maxFeedClients)
            try await telemetryServer.start(group: self.eventLoopGroup)
            telemetryServer.setConfig(self.configDescription)
            server = telemetryServer
        }
        var graph: PipelineGraph
        do {
            graph = try await PipelineGraph.start(
                self.configuration, eventLoopGroup: self.eventLoopGroup, logger: self.logger, telemetry: telemetry, ingestObserver: services,
                memoryGuard: self.memoryGuard)
        } catch {
            await server?.stop()
            throw error
        }
        self.logger.info(
            "otlpd is ready",
            metadata: [
                "pipelines": "\(self.configuration.pipelines.map { $0.id.description }.joined(separator: ","))",
                "exporters": "\(Self.exporterTargets(self.configuration))",
            ])
        server?.running(graph)
        let running = NIOLockedValueBox(graph)
        let status: @Sendable () -> String = { Self.status(running.withLockedValue { $0 }, telemetry: telemetry) }
        self.serviceManager.ready(status: status())
        let serviceManagerTask = Task { await self.serviceManager.run(eventLoops: self.eventLoopGroup, status: status) }
        defer { serviceManagerTask.cancel() }
        // One queue of lifecycle events, handled in order: a SIGHUP during a
        // reload waits for it, and a stop waits for a reload under way.
        let (events, continuation) = AsyncStream.makeStream(of: LifecycleEvent.self)
        let hangups = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { continuation.yield(.reload) }
        }
        let stops = Task {
            try? await gracefulShutdown()
            continuation.yield(.stop)
        }
        defer {
            hangups.cancel()
            stops.cancel()
        }
        lifecycle: for await event in events {
            switch event {
            case .reload:
                self.serviceManager.reloading()
                let result: String
                (graph, result) = await self.reload(graph)
                server?.reloaded(result)
                server?.running(graph)
                running.withLockedValue { [graph] in $0 = graph }
                self.serviceManager.ready(status: status())
            case .stop: break lifecycle
            }
        }
        let timeout = graph.configuration.shutdownTimeout
        self.serviceManager.stopping()
        self.logger.info("shutting down", metadata: ["timeout": "\(ConfigUnits.format(timeout))"])
        let completed = await graph.shutdown(timeout: timeout)
        await server?.stop()
        guard completed else {
            // Exit 1 so a supervisor sees that the stop was cut short; what was
            // acknowledged had been written, what was not is the clients' to retry.
            throw ShutdownTimeoutError(timeout: timeout)
        }
        self.logger.info("stopped")
    }

    /// Each exporter in use and where it writes or sends: `debug(stdout) file(./otlpd-data/otlpd.jsonl)`.
    static func exporterTargets(_ configuration: CollectorConfiguration) -> String {
        let used = Set(configuration.pipelines.flatMap(\.exporters))
        return configuration.exporters.filter { used.contains($0.key) }.sorted { $0.key.description < $1.key.description }.map { id, component in
            let target = (component.factory as? any ExporterFactory)?.target(component.settings) ?? ""
            return target.isEmpty ? id.description : "\(id)(\(target))"
        }.joined(separator: " ")
    }

    /// The service manager's status line: "3 pipelines, 2 listeners, 0 queued".
    static func status(_ graph: PipelineGraph, telemetry: SelfTelemetry) -> String {
        let queued = telemetry.exporterStatus.snapshot().reduce(0) { $0 + $1.queuedRequests }
        let pipelines = graph.configuration.pipelines.count
        let listeners = graph.listenerCount
        return "\(pipelines) pipeline\(pipelines == 1 ? "" : "s"), \(listeners) listener\(listeners == 1 ? "" : "s"), \(queued) queued"
    }

    /// SIGHUP: the graph of the config as the files say now, or the running
    /// one when they are invalid or it cannot start.
    /// Returns the graph that runs now and, for the status page, how the reload went.
    private func reload(_ graph: PipelineGraph) async -> (PipelineGraph, String) {
        guard let reloadConfiguration = self.reloadConfiguration else {
            self.logger.warning("SIGHUP received, but this config has no files to read again; the running config stays")
            return (graph, "no config files to read again; the running config stays")
        }
        self.logger.info("SIGHUP received: reloading the config")
        let configuration: CollectorConfiguration
        do {
            configuration = try reloadConfiguration()
        } catch {
            let reason = String(describing: error).split(separator: "\n").joined(separator: "; ")
            self.logger.error("reload: the config is invalid; the running config stays", metadata: ["error": "\(reason)"])
            return (graph, "the config is invalid; the running config stays: \(reason)")
        }
        let running = graph.configuration.telemetry
        if configuration.telemetry.metricsEndpoint != running.metricsEndpoint || configuration.telemetry.maxFeedClients != running.maxFeedClients
            || configuration.telemetry.logLevel != running.logLevel || configuration.telemetry.logEncoding != running.logEncoding
        {
            self.logger.warning("reload: service.telemetry changes take effect at the next start")
        }
        do {
            let next = try await graph.reload(to: configuration, timeout: configuration.shutdownTimeout)
            self.logger.info("reloaded", metadata: ["pipelines": "\(configuration.pipelines.map { $0.id.description }.joined(separator: ","))"])
            return (next, "reloaded")
        } catch {
            self.logger.error("reload: the new config could not start; the previous config runs on", metadata: ["error": "\(error)"])
            return (error.running, "the new config could not start; the previous config runs on: \(error)")
        }
    }
}

/// The stop took longer than `shutdown_timeout`: some stage had not finished.
public struct ShutdownTimeoutError: Error, CustomStringConvertible {
    public var timeout: Duration

    public var description: String {
        "shutdown_timeout (\(ConfigUnits.format(self.timeout))) reached before every stage finished"
    }
}
