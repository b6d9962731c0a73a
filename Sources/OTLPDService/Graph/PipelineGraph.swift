import Logging
import NIOCore
import OTLPDCore

/// The running components of a config, wired as its pipelines say:
/// receivers -> each pipeline's processors -> fan-out to its exporters.
///
/// Started downstream first (exporters, processors, receivers) so nothing
/// is accepted before there is somewhere to put it; stopped upstream first
/// (receivers, processors, exporters) so each stage drains into a live one.
public final class PipelineGraph: Sendable {
    let receivers: [(ComponentID, any Receiver)]
    /// In pipeline order: earlier processors flush into later ones.
    let processors: [(String, any Processor)]
    let exporters: [(ComponentID, any Exporter)]
    let logger: Logger

    private init(
        receivers: [(ComponentID, any Receiver)],
        processors: [(String, any Processor)],
        exporters: [(ComponentID, any Exporter)],
        logger: Logger
    ) {
        self.receivers = receivers
        self.processors = processors
        self.exporters = exporters
        self.logger = logger
    }

    /// Builds and starts everything; on failure, stops what had started and throws.
    public static func start(
        _ configuration: CollectorConfiguration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> PipelineGraph {
        func settings(_ kind: ComponentKind, _ id: ComponentID) -> ComponentSettings {
            var componentLogger = logger
            componentLogger[metadataKey: "component"] = "\(kind.rawValue)/\(id)"
            return ComponentSettings(id: id, logger: componentLogger, eventLoopGroup: eventLoopGroup)
        }

        // Exporters: one instance each, fed by every pipeline that names it.
        var exporters: [(ComponentID, any Exporter)] = []
        var exporterByID: [ComponentID: any Exporter] = [:]
        for id in Self.ordered(configuration.pipelines.flatMap(\.exporters)) {
            let component = configuration.exporters[id]!
            let signals = Set(configuration.pipelines.filter { $0.exporters.contains(id) }.map(\.id.signal))
            let exporter = try (component.factory as! any ExporterFactory).makeExporter(component.settings, signals: signals, settings: settings(.exporter, id))
            exporters.append((id, exporter))
            exporterByID[id] = exporter
        }

        // Processors: one instance per pipeline, chained from the last to the first.
        var processors: [(String, any Processor)] = []
        var heads: [PipelineID: any Consumer] = [:]
        for pipeline in configuration.pipelines {
            let targets = pipeline.exporters.map { exporterByID[$0]! as any Consumer }
            var next: any Consumer = targets.count == 1 ? targets[0] : FanOutConsumer(targets)
            var chain: [(String, any Processor)] = []
            for id in pipeline.processors.reversed() {
                let component = configuration.processors[id]!
                let processor = try (component.factory as! any ProcessorFactory).makeProcessor(
                    component.settings, signal: pipeline.id.signal, next: next, settings: settings(.processor, id))
                chain.insert(("\(pipeline.id)/\(id)", processor), at: 0)
                next = processor
            }
            processors += chain
            heads[pipeline.id] = next
        }

        // Receivers: one instance each, feeding every pipeline that names it.
        var receivers: [(ComponentID, any Receiver)] = []
        for id in Self.ordered(configuration.pipelines.flatMap(\.receivers)) {
            let component = configuration.receivers[id]!
            var consumers: [Signal: any Consumer] = [:]
            for signal in Signal.allCases {
                let targets = configuration.pipelines.filter { $0.id.signal == signal && $0.receivers.contains(id) }.map { heads[$0.id]! }
                if !targets.isEmpty { consumers[signal] = targets.count == 1 ? targets[0] : FanOutConsumer(targets) }
            }
            let receiver = try (component.factory as! any ReceiverFactory).makeReceiver(component.settings, consumers: consumers, settings: settings(.receiver, id))
            receivers.append((id, receiver))
        }

        let graph = PipelineGraph(receivers: receivers, processors: processors, exporters: exporters, logger: logger)
        var started: [any Component] = []
        do {
            for (_, exporter) in exporters {
                try await exporter.start()
                started.append(exporter)
            }
            for (_, processor) in processors {
                try await processor.start()
                started.append(processor)
            }
            for (_, receiver) in receivers {
                try await receiver.start()
                started.append(receiver)
            }
        } catch {
            for component in started.reversed() { await component.shutdown() }
            throw error
        }
        return graph
    }

    /// Stops accepting, answers what was accepted, flushes every stage,
    /// all within `timeout`. Returns false if the deadline cut it short.
    public func shutdown(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        for (_, receiver) in self.receivers { await receiver.stopAccepting() }
        // Nothing is held back any more: requests under way are answered as soon as their data is written.
        for (_, processor) in self.processors { await processor.beginShutdown() }
        // Requests under way still run through processors and exporters here.
        for (_, receiver) in self.receivers {
            await receiver.drain(timeout: max(.zero, deadline - ContinuousClock.now - .milliseconds(500)))
            await receiver.shutdown()
        }
        let completed = await Self.withDeadline(deadline) {
            for (_, processor) in self.processors { await processor.shutdown() }
            for (_, exporter) in self.exporters { await exporter.shutdown() }
        }
        if !completed {
            self.logger.error("shutdown_timeout reached before every exporter finished; data not yet written is lost")
        }
        return completed
    }

    /// Runs `work`; false if `deadline` comes first (the work is left running, the process is exiting).
    private static func withDeadline(_ deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await work()
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private static func ordered(_ ids: [ComponentID]) -> [ComponentID] {
        var seen = Set<ComponentID>()
        return ids.filter { seen.insert($0).inserted }
    }
}
