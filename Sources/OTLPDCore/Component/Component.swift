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
    /// Sends requests from now on to `consumers` (a reload's new pipelines);
    /// requests already under way finish where they started.
    func replaceConsumers(_ consumers: [Signal: any Consumer])
    /// Sockets it listens on (for the service manager's status line).
    var listenerCount: Int { get }
    /// Each socket it listens on, as the status page shows it.
    var listeners: [ListenerStatus] { get }
    /// A reload kept it running (its config did not change): what it reads
    /// from files (a renewed TLS certificate) is read again.
    func reloaded() async
}

/// One listening socket of a receiver, now.
public struct ListenerStatus: Sendable, Equatable {
    /// `OTLP/gRPC` or `OTLP/HTTP`: what the port is meant for (either protocol is answered on it).
    public var protocolName: String
    /// `host:port`, the port as bound.
    public var endpoint: String
    public var tls: Bool
    /// The authenticator requests must pass (`bearertokenauth`), or nil.
    public var auth: String?
    public var openConnections: Int

    public init(protocolName: String, endpoint: String, tls: Bool, auth: String?, openConnections: Int) {
        self.protocolName = protocolName
        self.endpoint = endpoint
        self.tls = tls
        self.auth = auth
        self.openConnections = openConnections
    }
}

extension Receiver {
    public var listenerCount: Int { 0 }
    public var listeners: [ListenerStatus] { [] }
    public func reloaded() async {}
}

public protocol Exporter: Component, Consumer {
    /// Shutdown has begun: nothing may be attempted after `deadline` (a
    /// forwarding exporter stops retrying then, so its clients hear a
    /// retryable error before the process exits).
    func beginShutdown(deadline: ContinuousClock.Instant) async
    /// Whether it counts what it sent and failed to send itself (a
    /// forwarding exporter, which also tells a full queue from a failed
    /// send); otherwise the graph counts around it.
    var countsItsOwnSends: Bool { get }
}

extension Exporter {
    public func beginShutdown(deadline: ContinuousClock.Instant) async {}
    public var countsItsOwnSends: Bool { false }
}

/// Something beside the pipelines (health checks, storage). Extensions
/// start before every pipeline component and stop after them.
public protocol Extension: Component {
    /// Every pipeline is running (a health check turns ready).
    func pipelinesReady() async
    /// A reload kept it running (its config did not change): what it reads
    /// from files (a token) is read again.
    func reloaded() async
    /// Shutdown has begun (a health check turns unavailable).
    func pipelinesStopping() async
}

extension Extension {
    public func reloaded() async {}
    public func pipelinesReady() async {}
    public func pipelinesStopping() async {}
}

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
    /// otlpd's own metrics.
    public var telemetry: SelfTelemetry
    /// The per-service view, which receivers report each request to.
    public var ingestObserver: (any IngestObserver)?
    /// The bytes of telemetry held in the process, which receivers count and the memory_limiter bounds.
    public var memoryGuard: MemoryGuard
    /// The running extensions (`service.extensions`), which start before
    /// every pipeline component: where an exporter finds the storage of its
    /// persistent queue, or a component its authenticator.
    public var extensions: [ComponentID: any Extension]

    public init(
        id: ComponentID,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup,
        telemetry: SelfTelemetry = SelfTelemetry(),
        ingestObserver: (any IngestObserver)? = nil,
        memoryGuard: MemoryGuard = MemoryGuard(),
        extensions: [ComponentID: any Extension] = [:]
    ) {
        self.id = id
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.telemetry = telemetry
        self.ingestObserver = ingestObserver
        self.memoryGuard = memoryGuard
        self.extensions = extensions
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
    /// Settings that cannot serve a pipeline of `signal` (include rules
    /// that name span fields, in a logs pipeline).
    func validate(_ configuration: ComponentConfiguration, signal: Signal) -> [String]
    /// Settings that are valid but most likely a mistake (an exporter aimed
    /// at the other protocol's port): `validate` prints them, `run` logs them.
    func warnings(_ configuration: ComponentConfiguration) -> [String]
    /// The extensions its settings name (`sending_queue.storage`,
    /// `auth.authenticator`), each with its key path and the role it must
    /// play: the config checks that they are enabled and can, and a reload
    /// replaces the component when one of them changes.
    func extensionsUsed(_ configuration: ComponentConfiguration) -> [ExtensionUse]
}

/// An extension a component's settings name, and what for.
public struct ExtensionUse: Sendable {
    public enum Role: String, Sendable {
        /// A `QueueStorage` (`file_storage`).
        case queueStorage = "keeps persistent queues"
        /// A `ServerAuthenticator` (`bearertokenauth`), checking clients' requests.
        case serverAuthenticator = "authenticates requests"
        /// A `ClientAuthenticator`, adding credentials to requests sent upstream.
        case clientAuthenticator = "adds credentials to requests"
    }

    public var keyPath: String
    public var id: ComponentID
    public var role: Role

    public init(keyPath: String, id: ComponentID, role: Role) {
        self.keyPath = keyPath
        self.id = id
        self.role = role
    }
}

extension ComponentFactory {
    public func extensionsUsed(_ configuration: ComponentConfiguration) -> [ExtensionUse] { [] }
    public func validate(_ configuration: ComponentConfiguration) -> [String] { [] }
    public func warnings(_ configuration: ComponentConfiguration) -> [String] { [] }
    public func validate(_ configuration: ComponentConfiguration, signal: Signal) -> [String] { [] }
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
    /// Where it writes or sends, for the start-up line (`./data/otlpd.jsonl`, `gateway:4317`).
    func target(_ configuration: ComponentConfiguration) -> String
    /// One exporter, shared by every pipeline that names it; `signals` are those pipelines' signals.
    func makeExporter(
        _ configuration: ComponentConfiguration,
        signals: Set<Signal>,
        settings: ComponentSettings
    ) throws -> any Exporter
}

public protocol ExtensionFactory: ComponentFactory {
    func makeExtension(_ configuration: ComponentConfiguration, settings: ComponentSettings) throws -> any Extension
    /// What its extensions can be named for.
    var roles: Set<ExtensionUse.Role> { get }
}

extension ExtensionFactory {
    public var roles: Set<ExtensionUse.Role> { [] }
}

extension ExporterFactory {
    public func target(_ configuration: ComponentConfiguration) -> String { "" }
}

public protocol ProcessorFactory: ComponentFactory {
    /// One processor instance for one pipeline, feeding `next`.
    func makeProcessor(
        _ configuration: ComponentConfiguration,
        signal: Signal,
        next: any Consumer,
        settings: ComponentSettings
    ) throws -> any Processor
    /// Whether its processors (with this config) hold requests to send them
    /// together; the graph then feeds each, as a `RequestGatherer`, the count
    /// of requests on their way to it.
    func gathersRequests(_ configuration: ComponentConfiguration) -> Bool
}

extension ProcessorFactory {
    public func gathersRequests(_ configuration: ComponentConfiguration) -> Bool { false }
}
