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
    let extensions: [(ComponentID, any Extension)]
    let receivers: [(ComponentID, any Receiver)]
    /// In pipeline order: earlier processors flush into later ones.
    let processors: [(String, any Processor)]
    let exporters: [(ComponentID, any Exporter)]
    let logger: Logger

    private init(
        extensions: [(ComponentID, any Extension)],
        receivers: [(ComponentID, any Receiver)],
        processors: [(String, any Processor)],
        exporters: [(ComponentID, any Exporter)],
        logger: Logger
    ) {
        self.extensions = extensions
        self.receivers = receivers
        self.processors = processors
        self.exporters = exporters
        self.logger = logger
    }

    /// Builds and starts everything; on failure, stops what had started and throws.
    public static func start(
        _ configuration: CollectorConfiguration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        telemetry: SelfTelemetry = SelfTelemetry(),
        ingestObserver: (any IngestObserver)? = nil,
        memoryGuard: MemoryGuard = MemoryGuard()
    ) async throws -> PipelineGraph {
        func settings(_ kind: ComponentKind, _ id: ComponentID) -> ComponentSettings {
            var componentLogger = logger
            componentLogger[metadataKey: "component"] = "\(kind.rawValue)/\(id)"
            return ComponentSettings(
                id: id, logger: componentLogger, eventLoopGroup: eventLoopGroup, telemetry: telemetry,
                ingestObserver: kind == .receiver ? ingestObserver : nil, memoryGuard: memoryGuard)
        }

        // Extensions: before everything, in the order service.extensions lists them.
        var extensions: [(ComponentID, any Extension)] = []
        for id in configuration.enabledExtensions {
            let component = configuration.extensions[id]!
            extensions.append((id, try (component.factory as! any ExtensionFactory).makeExtension(component.settings, settings: settings(.extension, id))))
        }

        // Exporters: one instance each, fed by every pipeline that names it.
        var exporters: [(ComponentID, any Exporter)] = []
        var exporterByID: [ComponentID: any Consumer] = [:]
        for id in Self.ordered(configuration.pipelines.flatMap(\.exporters)) {
            let component = configuration.exporters[id]!
            let signals = Set(configuration.pipelines.filter { $0.exporters.contains(id) }.map(\.id.signal))
            let exporter = try (component.factory as! any ExporterFactory).makeExporter(component.settings, signals: signals, settings: settings(.exporter, id))
            exporters.append((id, exporter))
            exporterByID[id] = ExporterMeter(exporter: exporter, counters: telemetry.exporter(id))
        }

        // Processors: one instance per pipeline, chained from the last to the first.
        var processors: [(String, any Processor)] = []
        var heads: [PipelineID: any Consumer] = [:]
        for pipeline in configuration.pipelines {
            let targets = pipeline.exporters.map { exporterByID[$0]! }
            var next: any Consumer = targets.count == 1 ? targets[0] : FanOutConsumer(targets)
            var chain: [(String, any Processor)] = []
            for id in pipeline.processors.reversed() {
                let component = configuration.processors[id]!
                let counters = telemetry.processor(id, signal: pipeline.id.signal)
                let processor = try (component.factory as! any ProcessorFactory).makeProcessor(
                    component.settings, signal: pipeline.id.signal, next: ItemMeter(next: next, counter: counters.outgoing),
                    settings: settings(.processor, id))
                chain.insert(("\(pipeline.id)/\(id)", processor), at: 0)
                next = ItemMeter(next: processor, counter: counters.incoming)
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

        let graph = PipelineGraph(extensions: extensions, receivers: receivers, processors: processors, exporters: exporters, logger: logger)
        var started: [any Component] = []
        do {
            for (_, component) in extensions {
                try await component.start()
                started.append(component)
            }
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
        for (_, component) in extensions { await component.pipelinesReady() }
        return graph
    }

    /// Stops accepting, answers what was accepted, flushes every stage,
    /// all within `timeout`. Returns false if the deadline cut it short.
    public func shutdown(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        for (_, component) in self.extensions { await component.pipelinesStopping() }
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
            for (_, component) in self.extensions.reversed() { await component.shutdown() }
        }
        if !completed {
            self.logger.error("shutdown_timeout reached before every exporter finished; data not yet written is lost")
        }
        return completed
    }

    /// Runs `work`; false if `deadline` comes first. The work is not
    /// awaited past the deadline (a task group would wait for it): a stage
    /// stuck on a blocked write must not keep the process from exiting.
    private static func withDeadline(_ deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        let (outcomes, continuation) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
        // Not cancelled at the deadline: left running while the process exits.
        Task {
            await work()
            continuation.yield(true)
        }
        let timer = Task {
            try? await Task.sleep(until: deadline)
            continuation.yield(false)
        }
        var iterator = outcomes.makeAsyncIterator()
        let completed = await iterator.next() ?? false
        timer.cancel()
        return completed
    }

    private static func ordered(_ ids: [ComponentID]) -> [ComponentID] {
        var seen = Set<ComponentID>()
        return ids.filter { seen.insert($0).inserted }
    }
}

/// Counts what an exporter sent and failed to send, as otelcol does.
struct ExporterMeter: Consumer {
    let exporter: any Exporter
    let counters: ExporterCounters

    func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) {
        let (items, signal) = (batch.itemCount, batch.signal)
        do {
            try await self.exporter.consume(batch)
        } catch {
            self.counters.sendFailed.add(items, for: signal)
            throw error
        }
        self.counters.sent.add(items, for: signal)
    }
}

/// Counts the items that pass into or out of a processor.
struct ItemMeter: Consumer {
    let next: any Consumer
    let counter: TelemetryCounter

    func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) {
        self.counter.add(batch.itemCount)
        try await self.next.consume(batch)
    }
}
