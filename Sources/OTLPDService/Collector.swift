import Logging
import NIOCore
import OTLPDCore
import ServiceLifecycle
import UnixSignals

/// The daemon: runs the pipeline graph of a config until a graceful
/// shutdown (SIGTERM / SIGINT), then stops it within `shutdown_timeout`.
public final class Collector: Service {
    let configuration: CollectorConfiguration
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    /// Outlives any one pipeline graph: bytes held by requests in flight stay counted.
    let memoryGuard = MemoryGuard()

    public init(configuration: CollectorConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    public func run() async throws {
        let telemetry = SelfTelemetry(serviceVersion: OTLPDVersion.number)
        let services = ServiceRegistry(logger: self.logger)
        var server: TelemetryServer?
        if let endpoint = self.configuration.telemetry.metricsEndpoint {
            let telemetryServer = TelemetryServer(endpoint: endpoint, telemetry: telemetry, services: services, memory: self.memoryGuard, logger: self.logger)
            try await telemetryServer.start(group: self.eventLoopGroup)
            server = telemetryServer
        }
        let graph: PipelineGraph
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
            metadata: ["pipelines": "\(self.configuration.pipelines.map { $0.id.description }.joined(separator: ","))"])
        // SIGHUP's default action would end the process (a `systemctl reload`
        // would stop the service): trap it until reloading exists.
        let hangups = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                self.logger.warning("SIGHUP received: this build cannot reload its config yet; the running config stays")
            }
        }
        defer { hangups.cancel() }
        // Returns when a shutdown signal arrives.
        try? await gracefulShutdown()
        self.logger.info("shutting down", metadata: ["timeout": "\(ConfigUnits.format(self.configuration.shutdownTimeout))"])
        let completed = await graph.shutdown(timeout: self.configuration.shutdownTimeout)
        await server?.stop()
        guard completed else {
            // Exit 1 so a supervisor sees that the stop was cut short; what was
            // acknowledged had been written, what was not is the clients' to retry.
            throw ShutdownTimeoutError(timeout: self.configuration.shutdownTimeout)
        }
        self.logger.info("stopped")
    }
}

/// The stop took longer than `shutdown_timeout`: some stage had not finished.
public struct ShutdownTimeoutError: Error, CustomStringConvertible {
    public var timeout: Duration

    public var description: String {
        "shutdown_timeout (\(ConfigUnits.format(self.timeout))) reached before every stage finished"
    }
}
