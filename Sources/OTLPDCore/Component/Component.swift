import Logging
import NIOCore

/// Anything the pipeline graph starts and stops, as the OpenTelemetry
/// Collector's components: `start` before data flows, `shutdown` flushes
/// what it holds to the next stage and is safe to call without `start`.
public protocol Component: Sendable {
    func start() async throws
    func shutdown() async
}

/// A source of telemetry. Shutdown is in two steps, so that the graph can
/// stop every receiver from accepting before it waits for any of them.
public protocol Receiver: Component {
    /// Stops accepting new work and asks open connections to finish.
    func stopAccepting() async
    /// Waits (up to `timeout`) for requests already accepted to be answered,
    /// then closes what is left.
    func drain(timeout: Duration) async
}

public protocol Exporter: Component, Consumer {}

public protocol Processor: Component, Consumer {
    /// Shutdown has begun: stop holding data. Send what is held now and pass
    /// later data straight on, so requests still in flight are answered
    /// while the receivers drain, not when a timer fires.
    func beginShutdown() async
}

extension Processor {
    public func beginShutdown() async {}
}

/// What every factory gets to build a component.
public struct ComponentSettings: Sendable {
    public var id: ComponentID
    public var logger: Logger
    /// The process's event loops, for components with sockets or timers.
    public var eventLoopGroup: any EventLoopGroup

    public init(id: ComponentID, logger: Logger, eventLoopGroup: any EventLoopGroup) {
        self.id = id
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
    }
}

/// A component's settings after decoding: whatever type its factory chose.
public typealias ComponentConfiguration = any Sendable

/// Builds one type of component. The `decode` method reads the component's
/// config mapping, records every error in the reader's diagnostics, and
/// returns the settings with defaults applied.
public protocol ComponentFactory: Sendable {
    var type: String { get }
    /// The signals it can take part in.
    var signals: Set<Signal> { get }
    func decode(_ reader: ConfigReader) -> ComponentConfiguration
    /// Checks that need the whole config (files that must exist, ports); nil when fine.
    func validate(_ configuration: ComponentConfiguration) -> [String]
}

extension ComponentFactory {
    public func validate(_ configuration: ComponentConfiguration) -> [String] { [] }
}

public protocol ReceiverFactory: ComponentFactory {
    /// One receiver, feeding `consumers` (one per signal it is wired for).
    func makeReceiver(
        _ configuration: ComponentConfiguration,
        consumers: [Signal: any Consumer],
        settings: ComponentSettings
    ) throws -> any Receiver
}

public protocol ExporterFactory: ComponentFactory {
    /// One exporter, shared by every pipeline that names it; `signals` are those pipelines' signals.
    func makeExporter(
        _ configuration: ComponentConfiguration,
        signals: Set<Signal>,
        settings: ComponentSettings
    ) throws -> any Exporter
}

public protocol ProcessorFactory: ComponentFactory {
    /// One processor instance for one pipeline, feeding `next`.
    func makeProcessor(
        _ configuration: ComponentConfiguration,
        signal: Signal,
        next: any Consumer,
        settings: ComponentSettings
    ) throws -> any Processor
}
