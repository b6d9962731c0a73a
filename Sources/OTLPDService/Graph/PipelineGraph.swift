import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore

/// The running components of a config, wired as its pipelines say:
/// receivers -> each pipeline's processors -> fan-out to its exporters.
///
/// Started downstream first (exporters, processors, receivers) so nothing
/// is accepted before there is somewhere to put it; stopped upstream first
/// (receivers, processors, exporters) so each stage drains into a live one.
public final class PipelineGraph: Sendable {
    let configuration: CollectorConfiguration
    let extensions: [(ComponentID, any Extension)]
    let receivers: [(ComponentID, any Receiver)]
    /// In pipeline order: earlier processors flush into later ones.
    let processors: [(String, any Processor)]
    let exporters: [(ComponentID, any Exporter)]
    /// Counts requests inside this graph's pipelines, so a reload retires
    /// the old graph only once they are through.
    let inFlight: InFlightGate
    let context: Context
    var logger: Logger { self.context.logger }

    /// What every component of a graph is built with, the same across reloads.
    public struct Context: Sendable {
        var eventLoopGroup: any EventLoopGroup
        var logger: Logger
        var telemetry: SelfTelemetry
        var ingestObserver: (any IngestObserver)?
        var memoryGuard: MemoryGuard

        func settings(_ kind: ComponentKind, _ id: ComponentID, extensions: [ComponentID: any Extension] = [:]) -> ComponentSettings {
            var componentLogger = self.logger
            componentLogger[metadataKey: "component"] = "\(kind.rawValue)/\(id)"
            return ComponentSettings(
                id: id, logger: componentLogger, eventLoopGroup: self.eventLoopGroup, telemetry: self.telemetry,
                ingestObserver: kind == .receiver ? self.ingestObserver : nil, memoryGuard: self.memoryGuard,
                extensions: extensions)
        }
    }

    /// Running components a new graph takes over from the one it replaces.
    struct Carried {
        var receivers: [ComponentID: any Receiver] = [:]
        var exporters: [ComponentID: any Exporter] = [:]
        var extensions: [ComponentID: any Extension] = [:]
    }

    private init(
        configuration: CollectorConfiguration,
        extensions: [(ComponentID, any Extension)],
        receivers: [(ComponentID, any Receiver)],
        processors: [(String, any Processor)],
        exporters: [(ComponentID, any Exporter)],
        inFlight: InFlightGate,
        context: Context
    ) {
        self.configuration = configuration
        self.extensions = extensions
        self.receivers = receivers
        self.processors = processors
        self.exporters = exporters
        self.inFlight = inFlight
        self.context = context
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
        let context = Context(
            eventLoopGroup: eventLoopGroup, logger: logger, telemetry: telemetry, ingestObserver: ingestObserver, memoryGuard: memoryGuard)
        return try await Self.start(configuration, carried: Carried(), context: context)
    }

    /// Builds the graph of `configuration` around the `carried` components
    /// and starts the rest: downstream first, so nothing is accepted before
    /// there is somewhere to put it. On failure, stops what it started.
    static func start(_ configuration: CollectorConfiguration, carried: Carried, context: Context) async throws -> PipelineGraph {
        let telemetry = context.telemetry
        var started: [any Component] = []
        do {
            // Extensions: before everything, in the order service.extensions lists them.
            var extensions: [(ComponentID, any Extension)] = []
            for id in configuration.enabledExtensions {
                if let running = carried.extensions[id] {
                    extensions.append((id, running))
                    continue
                }
                let component = configuration.extensions[id]!
                let made = try (component.factory as! any ExtensionFactory).makeExtension(component.settings, settings: context.settings(.extension, id))
                try await made.start()
                started.append(made)
                extensions.append((id, made))
            }
            // What the pipeline components find in their settings (ids are unique in service.extensions).
            let runningExtensions = Dictionary(extensions, uniquingKeysWith: { first, _ in first })

            // Exporters: one instance each, fed by every pipeline that names it.
            var exporters: [(ComponentID, any Exporter)] = []
            var exporterByID: [ComponentID: any Consumer] = [:]
            for id in Self.ordered(configuration.pipelines.flatMap(\.exporters)) {
                let exporter: any Exporter
                if let running = carried.exporters[id] {
                    exporter = running
                } else {
                    let component = configuration.exporters[id]!
                    exporter = try (component.factory as! any ExporterFactory).makeExporter(
                        component.settings, signals: Self.signals(of: id, in: configuration),
                        settings: context.settings(.exporter, id, extensions: runningExtensions))
                    try await exporter.start()
                    started.append(exporter)
                }
                exporters.append((id, exporter))
                exporterByID[id] = exporter.countsItsOwnSends ? exporter : ExporterMeter(exporter: exporter, counters: telemetry.exporter(id))
            }

            // Processors: one instance per pipeline, chained from the last to the first; new on every reload.
            var processors: [(String, any Processor)] = []
            var heads: [PipelineID: any Consumer] = [:]
            for pipeline in configuration.pipelines {
                let targets = pipeline.exporters.map { exporterByID[$0]! }
                var next: any Consumer = targets.count == 1 ? targets[0] : FanOutConsumer(targets)
                var chain: [(String, any Processor)] = []
                // The gatherer (batch) downstream whose stretch of pipeline is not fed yet: its
                // feed goes where that stretch starts, after the previous gatherer or at the entry.
                var unfed: (any RequestGatherer)?
                for id in pipeline.processors.reversed() {
                    let component = configuration.processors[id]!
                    let factory = component.factory as! any ProcessorFactory
                    let gathers = factory.gathersRequests(component.settings)
                    if gathers, let gatherer = unfed {
                        next = GathererFeed(next: next, gatherer: gatherer)
                        unfed = nil
                    }
                    let counters = telemetry.processor(id, signal: pipeline.id.signal)
                    let processor = try factory.makeProcessor(
                        component.settings, signal: pipeline.id.signal, next: ItemMeter(next: next, counter: counters.outgoing),
                        settings: context.settings(.processor, id, extensions: runningExtensions))
                    chain.insert(("\(pipeline.id)/\(id)", processor), at: 0)
                    next = ItemMeter(next: processor, counter: counters.incoming)
                    if gathers, let gatherer = processor as? any RequestGatherer { unfed = gatherer }
                }
                if let gatherer = unfed { next = GathererFeed(next: next, gatherer: gatherer) }
                for (_, processor) in chain.reversed() {
                    try await processor.start()
                    started.append(processor)
                }
                processors += chain
                heads[pipeline.id] = next
            }

            // Receivers: one instance each, feeding every pipeline that names it.
            let gate = InFlightGate()
            var receivers: [(ComponentID, any Receiver)] = []
            var receiverConsumers: [ComponentID: [Signal: any Consumer]] = [:]
            for id in Self.ordered(configuration.pipelines.flatMap(\.receivers)) {
                var consumers: [Signal: any Consumer] = [:]
                for signal in Signal.allCases {
                    let targets = configuration.pipelines.filter { $0.id.signal == signal && $0.receivers.contains(id) }.map { heads[$0.id]! }
                    if !targets.isEmpty { consumers[signal] = GatedConsumer(next: targets.count == 1 ? targets[0] : FanOutConsumer(targets), gate: gate) }
                }
                receiverConsumers[id] = consumers
                if let running = carried.receivers[id] {
                    receivers.append((id, running))
                    continue
                }
                let component = configuration.receivers[id]!
                let receiver = try (component.factory as! any ReceiverFactory).makeReceiver(
                    component.settings, consumers: consumers, settings: context.settings(.receiver, id, extensions: runningExtensions))
                try await receiver.start()
                started.append(receiver)
                receivers.append((id, receiver))
            }
            let graph = PipelineGraph(
                configuration: configuration, extensions: extensions, receivers: receivers, processors: processors, exporters: exporters,
                inFlight: gate, context: context)
            // Carried receivers send to the new pipelines only now that all of them run.
            for (id, receiver) in carried.receivers { receiver.replaceConsumers(receiverConsumers[id] ?? [:]) }
            for (_, component) in extensions { await component.pipelinesReady() }
            return graph
        } catch {
            for component in started.reversed() { await component.shutdown() }
            throw error
        }
    }

    static func signals(of exporter: ComponentID, in configuration: CollectorConfiguration) -> Set<Signal> {
        Set(configuration.pipelines.filter { $0.exporters.contains(exporter) }.map(\.id.signal))
    }

    // MARK: Reload

    /// Sockets its receivers listen on.
    public var listenerCount: Int { self.receivers.reduce(0) { $0 + $1.1.listenerCount } }

    /// Replaces this graph with one for `configuration`: receivers,
    /// exporters and extensions whose config did not change keep running
    /// (so do their listeners, connections and files); the rest are
    /// replaced. This graph's batches are flushed and its requests finish
    /// here before its processors and exporters stop. If the new graph
    /// cannot start, one for this graph's own config is built in its place
    /// (what was closed for the change opens again) and a `ReloadError`
    /// carrying it is thrown.
    public func reload(to configuration: CollectorConfiguration, timeout: Duration) async throws(ReloadError) -> PipelineGraph {
        let deadline = ContinuousClock.now + timeout
        let carried = self.carried(into: configuration, stopped: [])
        // Kept extensions read their files again (a token file rotated before the SIGHUP).
        for (_, component) in carried.extensions { await component.reloaded() }
        for (_, receiver) in carried.receivers { await receiver.reloaded() }
        // Held data goes on now, and nothing is held from here on: a request
        // of a receiver that goes away must not wait for a batch timeout.
        for (_, processor) in self.processors { await processor.beginShutdown() }
        // What goes away stops first: a changed receiver or extension may listen where its old self did.
        let leaving = self.receivers.filter { carried.receivers[$0.0] == nil }
        for (_, receiver) in leaving { await receiver.stopAccepting() }
        for (_, receiver) in leaving {
            await receiver.drain(timeout: max(.zero, deadline - ContinuousClock.now))
            await receiver.shutdown()
        }
        let leavingExtensions = self.extensions.filter { carried.extensions[$0.0] == nil }
        for (_, component) in leavingExtensions.reversed() { await component.shutdown() }
        let stopped = Set(leaving.map(\.0) + leavingExtensions.map(\.0))

        do {
            let next = try await Self.start(configuration, carried: carried, context: self.context)
            await self.retire(keeping: carried, deadline: deadline)
            return next
        } catch {
            // This graph's own config again, around what still runs: what was
            // stopped for the change opens again, with processors that hold data again.
            let kept = self.carried(into: self.configuration, stopped: stopped)
            guard let restored = try? await Self.start(self.configuration, carried: kept, context: self.context) else {
                self.logger.error("reload: the previous config could not start again either; running without what was stopped for the change")
                throw ReloadError(underlying: error, running: self)
            }
            await self.retire(keeping: kept, deadline: deadline)
            throw ReloadError(underlying: error, running: restored)
        }
    }

    /// What of this graph a graph for `configuration` takes over: the
    /// components whose config text and wiring did not change, and that run.
    private func carried(into configuration: CollectorConfiguration, stopped: Set<ComponentID>) -> Carried {
        let old = self.configuration
        var carried = Carried()
        for (id, receiver) in self.receivers
        where !stopped.contains(id) && configuration.receivers[id]?.source == old.receivers[id]?.source
            && configuration.pipelines.contains(where: { $0.receivers.contains(id) })
            && Self.extensionsUnchanged(configuration.receivers[id], from: old, to: configuration)
        {
            carried.receivers[id] = receiver
        }
        for (id, exporter) in self.exporters
        where configuration.exporters[id]?.source == old.exporters[id]?.source
            && Self.signals(of: id, in: configuration) == Self.signals(of: id, in: old)
            && Self.extensionsUnchanged(configuration.exporters[id], from: old, to: configuration)
        {
            carried.exporters[id] = exporter
        }
        for (id, component) in self.extensions
        where !stopped.contains(id) && configuration.extensions[id]?.source == old.extensions[id]?.source
            && configuration.enabledExtensions.contains(id)
        {
            carried.extensions[id] = component
        }
        return carried
    }

    /// Whether the extensions a component names kept their config (else it is made again with the new ones).
    private static func extensionsUnchanged(_ component: CollectorConfiguration.Component?, from old: CollectorConfiguration, to new: CollectorConfiguration) -> Bool {
        guard let component else { return false }
        return component.factory.extensionsUsed(component.settings).allSatisfy { new.extensions[$0.id]?.source == old.extensions[$0.id]?.source }
    }

    /// The old graph's end after a reload: requests under way finish, then
    /// its own processors and the exporters no longer used stop.
    private func retire(keeping carried: Carried, deadline: ContinuousClock.Instant) async {
        if !(await self.inFlight.waitUntilIdle(deadline: deadline)) {
            self.logger.warning("reload: requests still in the old pipelines at shutdown_timeout; stopping them")
        }
        let completed = await Self.withDeadline(deadline) {
            for (_, processor) in self.processors { await processor.shutdown() }
            for (id, exporter) in self.exporters where carried.exporters[id] == nil { await exporter.shutdown() }
        }
        if !completed {
            self.logger.error("reload: shutdown_timeout reached before the old pipelines finished")
        }
    }

    /// Stops accepting, answers what was accepted, flushes every stage,
    /// all within `timeout`. Returns false if the deadline cut it short.
    public func shutdown(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        for (_, component) in self.extensions { await component.pipelinesStopping() }
        for (_, receiver) in self.receivers { await receiver.stopAccepting() }
        // Nothing is held back any more: requests under way are answered as soon as their data is written.
        for (_, processor) in self.processors { await processor.beginShutdown() }
        // Retries end in time for their clients to hear a retryable error before the connections close.
        let answered = deadline - .milliseconds(500)
        for (_, exporter) in self.exporters { await exporter.beginShutdown(deadline: answered - .milliseconds(100)) }
        // Requests under way still run through processors and exporters here.
        for (_, receiver) in self.receivers {
            await receiver.drain(timeout: max(.zero, answered - ContinuousClock.now))
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

/// A reload whose config could not start: `running` is the graph of the
/// previous config, built again around what still ran.
public struct ReloadError: Error, CustomStringConvertible {
    public var underlying: any Error
    public var running: PipelineGraph

    public var description: String { "\(self.underlying)" }
}

/// Requests inside a graph's pipelines, counted so a reload can wait for them.
final class InFlightGate: Sendable {
    private let count = NIOLockedValueBox(0)

    func enter() { self.count.withLockedValue { $0 += 1 } }
    func leave() { self.count.withLockedValue { $0 -= 1 } }

    var isIdle: Bool {
        self.count.withLockedValue { $0 == 0 }
    }

    /// False if `deadline` came first.
    func waitUntilIdle(deadline: ContinuousClock.Instant) async -> Bool {
        while !self.isIdle {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return true
    }
}

/// A pipeline's entry, counting the requests inside.
struct GatedConsumer: Consumer {
    let next: any Consumer
    let gate: InFlightGate

    func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        self.gate.enter()
        defer { self.gate.leave() }
        return try await self.next.consume(batch)
    }
}

/// Counts what an exporter sent and failed to send, as otelcol does.
struct ExporterMeter: Consumer {
    let exporter: any Exporter
    let counters: ExporterCounters

    func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        let (items, signal) = (batch.itemCount, batch.signal)
        let kept: Kept
        do {
            kept = try await self.exporter.consume(batch)
        } catch {
            self.counters.sendFailed.add(items, for: signal)
            throw error
        }
        self.counters.sent.add(items, for: signal)
        return kept
    }
}

/// Counts the items that pass into or out of a processor.
struct ItemMeter: Consumer {
    let next: any Consumer
    let counter: TelemetryCounter

    func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        self.counter.add(batch.itemCount)
        return try await self.next.consume(batch)
    }
}
