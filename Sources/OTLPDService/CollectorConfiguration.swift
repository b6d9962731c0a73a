import Logging
import OTLPDCore

/// The decoded config: every component's settings and the pipelines.
public struct CollectorConfiguration: Sendable {
    public struct Component: Sendable {
        public var id: ComponentID
        public var factory: any ComponentFactory
        public var settings: ComponentConfiguration
        /// Its config as written (without locations): a reload keeps a running
        /// component whose source did not change.
        public var source = ""
    }

    public struct Pipeline: Sendable {
        public var id: PipelineID
        public var receivers: [ComponentID]
        public var processors: [ComponentID]
        public var exporters: [ComponentID]
    }

    public struct Telemetry: Sendable {
        public var logLevel = Logger.Level.info
        public var logEncoding = LogEncoding.console
        /// Where `/metrics` and `/services` are served; nil when turned off (`level: none`).
        public var metricsEndpoint: Endpoint? = Endpoint(host: "localhost", port: 8888)
        /// Browsers that may hold the status page's live feed (`/events`) open at once; 0 turns it off (the page polls).
        public var maxFeedClients = 16
    }

    public enum LogEncoding: String, Sendable, CaseIterable {
        case console
        case json
    }

    public var receivers: [ComponentID: Component] = [:]
    public var processors: [ComponentID: Component] = [:]
    public var exporters: [ComponentID: Component] = [:]
    public var extensions: [ComponentID: Component] = [:]
    /// `service.extensions`: the extensions that run, in order.
    public var enabledExtensions: [ComponentID] = []
    public var pipelines: [Pipeline] = []
    public var telemetry = Telemetry()
    public var shutdownTimeout: Duration = .seconds(25)
    /// Settings that are valid but most likely mistakes, each with its key path.
    public var warnings: [String] = []

    /// Decodes and checks the whole config; throws every error found, each with its file and key path.
    public static func decode(_ root: ConfigNode, registry: ComponentRegistry = .builtIn) throws(ConfigErrors) -> CollectorConfiguration {
        let diagnostics = ConfigDiagnostics()
        let top = ConfigReader(root, path: "", diagnostics: diagnostics)
        var configuration = CollectorConfiguration()
        configuration.receivers = Self.decodeSection(.receiver, top, registry)
        configuration.processors = Self.decodeSection(.processor, top, registry)
        configuration.exporters = Self.decodeSection(.exporter, top, registry)
        configuration.extensions = Self.decodeSection(.extension, top, registry)
        top.refuse("connectors", because: "connectors are not supported by this build")
        if let service = top.child("service") {
            Self.decodeService(service, &configuration)
            service.finish()
        } else {
            diagnostics.add(at: root, "service", "missing 'service' with at least one pipeline")
        }
        top.finish()
        Self.checkExtensionsUsed(configuration, root: root, diagnostics: diagnostics)
        try diagnostics.check()
        for kind in [ComponentKind.receiver, .processor, .exporter, .extension] {
            for (id, component) in configuration.components(kind).sorted(by: { $0.key.description < $1.key.description }) {
                for warning in component.factory.warnings(component.settings) {
                    configuration.warnings.append("\(kind.section).\(id): \(warning)")
                }
            }
        }
        return configuration
    }

    /// Each extension a component names (a persistent queue's storage, an
    /// authenticator) is defined, enabled, and of a type that can play its role.
    private static func checkExtensionsUsed(_ configuration: CollectorConfiguration, root: ConfigNode, diagnostics: ConfigDiagnostics) {
        for kind in [ComponentKind.receiver, .exporter] {
            for (id, component) in configuration.components(kind).sorted(by: { $0.key.description < $1.key.description }) {
                for use in component.factory.extensionsUsed(component.settings) {
                    let node = root[kind.section]?[id.description]
                    let path = "\(kind.section).\(id).\(use.keyPath)"
                    guard let extensionComponent = configuration.extensions[use.id] else {
                        diagnostics.add(
                            at: node, path, "extension '\(use.id)' is not defined under 'extensions' (add it there and to service.extensions)")
                        continue
                    }
                    guard (extensionComponent.factory as? any ExtensionFactory)?.roles.contains(use.role) == true else {
                        let fit = use.role == .queueStorage ? "a file_storage extension" : "a bearertokenauth extension"
                        diagnostics.add(at: node, path, "extension '\(use.id)' \(use.role == .queueStorage ? "keeps no queues" : "is not an authenticator"); name \(fit)")
                        continue
                    }
                    if !configuration.enabledExtensions.contains(use.id) {
                        diagnostics.add(at: node, path, "extension '\(use.id)' is defined but not listed in service.extensions")
                    }
                }
            }
        }
    }

    func components(_ kind: ComponentKind) -> [ComponentID: Component] {
        switch kind {
        case .receiver: self.receivers
        case .processor: self.processors
        case .exporter: self.exporters
        case .extension: self.extensions
        }
    }

    private static func decodeSection(_ kind: ComponentKind, _ top: ConfigReader, _ registry: ComponentRegistry) -> [ComponentID: Component] {
        var result: [ComponentID: Component] = [:]
        guard let section = top.child(kind.section) else { return result }
        guard let entries = section.node.entries else { return result }
        section.accept(contentsOf: entries.map(\.key))
        for entry in entries {
            let path = "\(kind.section).\(entry.key)"
            guard let id = ComponentID(parsing: entry.key) else {
                top.diagnostics.add(at: entry.value, path, "'\(entry.key)' is not a component id: write type or type/name")
                continue
            }
            guard let factory = registry.factory(kind: kind, type: id.type) else {
                let known = registry.types(of: kind).joined(separator: ", ")
                top.diagnostics.add(at: entry.value, path, "unknown \(kind.rawValue) type '\(id.type)'; this build has: \(known)")
                continue
            }
            let reader = ConfigReader(entry.value, path: path, diagnostics: top.diagnostics)
            let settings = factory.decode(reader)
            for problem in factory.validate(settings) {
                top.diagnostics.add(at: entry.value, path, problem)
            }

            result[id] = Component(id: id, factory: factory, settings: settings, source: entry.value.canonicalText)
        }
        return result
    }

    private static func decodeService(_ service: ConfigReader, _ configuration: inout CollectorConfiguration) {
        configuration.shutdownTimeout = service.duration("shutdown_timeout", default: .seconds(25), allowZero: false)
        for (index, name) in (service.stringList("extensions") ?? []).enumerated() {
            let path = "service.extensions[\(index)]"
            guard let id = ComponentID(parsing: name), configuration.extensions[id] != nil else {
                service.diagnostics.add(at: service.node["extensions"], path, "extension '\(name)' is not defined under 'extensions'")
                continue
            }
            if !configuration.enabledExtensions.contains(id) { configuration.enabledExtensions.append(id) }
        }
        if let telemetry = service.child("telemetry") {
            if let logs = telemetry.child("logs") {
                configuration.telemetry.logLevel = Self.logLevel(logs)
                configuration.telemetry.logEncoding = logs.choice("encoding", default: .console)
                logs.finish()
            }
            if let metrics = telemetry.child("metrics") {
                configuration.telemetry.metricsEndpoint = Self.metricsEndpoint(metrics)
                configuration.telemetry.maxFeedClients = metrics.int("max_feed_clients", default: 16, in: 0...1024)
                metrics.finish()
            }
            telemetry.finish()
        }
        guard let pipelines = service.child("pipelines"), let entries = pipelines.node.entries, !entries.isEmpty else {
            service.error("pipelines", "define at least one pipeline (traces, metrics or logs)")
            return
        }
        pipelines.accept(contentsOf: entries.map(\.key))
        for entry in entries {
            let path = "service.pipelines.\(entry.key)"
            guard let id = PipelineID(parsing: entry.key) else {
                service.diagnostics.add(at: entry.value, path, "'\(entry.key)' is not a pipeline id: write traces, metrics or logs, optionally /name")
                continue
            }
            let reader = ConfigReader(entry.value, path: path, diagnostics: service.diagnostics)
            let pipeline = Pipeline(
                id: id,
                receivers: Self.references(.receiver, reader, configuration.receivers, signal: id.signal),
                processors: Self.references(.processor, reader, configuration.processors, signal: id.signal),
                exporters: Self.references(.exporter, reader, configuration.exporters, signal: id.signal))
            if pipeline.receivers.isEmpty && !reader.contains("receivers") { reader.error("receivers", "a pipeline needs at least one receiver") }
            if pipeline.exporters.isEmpty && !reader.contains("exporters") { reader.error("exporters", "a pipeline needs at least one exporter") }
            reader.finish()
            configuration.pipelines.append(pipeline)
        }
    }

    /// The ids a pipeline lists under `receivers` / `processors` / `exporters`, each checked to be defined.
    private static func references(
        _ kind: ComponentKind,
        _ reader: ConfigReader,
        _ defined: [ComponentID: Component],
        signal: Signal
    ) -> [ComponentID] {
        guard let names = reader.stringList(kind.section) else { return [] }
        if names.isEmpty && kind != .processor {
            reader.error(kind.section, "a pipeline needs at least one \(kind.rawValue)")
        }
        var ids: [ComponentID] = []
        for (index, name) in names.enumerated() {
            let path = "\(reader.keyPath(kind.section))[\(index)]"
            guard let id = ComponentID(parsing: name) else {
                reader.diagnostics.add(at: reader.node[kind.section], path, "'\(name)' is not a component id")
                continue
            }
            guard let component = defined[id] else {
                reader.diagnostics.add(at: reader.node[kind.section], path, "\(kind.rawValue) '\(name)' is not defined under '\(kind.section)'")
                continue
            }
            if !component.factory.signals.contains(signal) {
                reader.diagnostics.add(at: reader.node[kind.section], path, "\(kind.rawValue) '\(name)' does not support \(signal)")
            } else {
                for problem in component.factory.validate(component.settings, signal: signal) {
                    reader.diagnostics.add(at: reader.node[kind.section], path, "\(kind.rawValue) '\(name)': \(problem)")
                }
            }
            if ids.contains(id) {
                reader.diagnostics.add(at: reader.node[kind.section], path, "\(kind.rawValue) '\(name)' is listed twice")
                continue
            }
            ids.append(id)
        }
        return ids
    }

    /// `address: host:port`, or the Collector's `readers: [{pull: {exporter: {prometheus: {host, port}}}}]`;
    /// `level: none` turns them off.
    private static func metricsEndpoint(_ metrics: ConfigReader) -> Endpoint? {
        var endpoint: Endpoint? = Endpoint(host: "localhost", port: 8888)
        if let level = metrics.string("level") {
            switch level.lowercased() {
            case "none": endpoint = nil
            case "basic", "normal", "detailed": break
            default: metrics.error("level", "'\(level)' is not one of: none, basic, normal, detailed")
            }
        }
        if metrics.contains("address") {
            endpoint = metrics.endpoint("address", default: Endpoint(host: "localhost", port: 8888))
        }
        if let readers = metrics.raw("readers") {
            for (index, reader) in (readers.items ?? []).enumerated() {
                let path = "\(metrics.keyPath("readers"))[\(index)]"
                let prometheus = ConfigReader(reader, path: path, diagnostics: metrics.diagnostics)
                guard let pull = prometheus.child("pull"), let exporter = pull.child("exporter"), let settings = exporter.child("prometheus") else {
                    metrics.diagnostics.add(at: reader, path, "only a pull reader with a prometheus exporter is supported")
                    continue
                }
                let host = settings.string("host", default: "localhost")
                let port = settings.int("port", default: 8888, in: 0...65535)
                settings.accept("without_units", "without_type_suffix", "without_scope_info")
                settings.finish()
                exporter.finish()
                pull.finish()
                prometheus.finish()
                endpoint = Endpoint(host: host, port: port)
            }
        }
        return endpoint
    }

    private static func logLevel(_ logs: ConfigReader) -> Logger.Level {
        guard let text = logs.string("level") else { return .info }
        switch text.lowercased() {
        case "debug": return .debug
        case "info": return .info
        case "warn", "warning": return .warning
        case "error": return .error
        default:
            logs.error("level", "'\(text)' is not one of: debug, info, warn, error")
            return .info
        }
    }
}

extension ConfigReader {
    func accept(contentsOf keys: [String]) {
        for key in keys { self.accept(key) }
    }
}
