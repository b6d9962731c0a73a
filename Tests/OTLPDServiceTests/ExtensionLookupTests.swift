import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import OTLPDConfig
import OTLPDCore
import OTLPDService
import Testing

/// Components find the running extensions in their settings: how an
/// exporter reaches its queue's storage and a receiver its authenticator.
struct ExtensionLookupTests {
    /// An exporter type that records which extensions its settings offered.
    struct ProbeFactory: ExporterFactory {
        let type = "probe"
        let signals: Set<Signal> = Set(Signal.allCases)
        let seen: NIOLockedValueBox<[ComponentID: String]>

        func decode(_ reader: ConfigReader) -> ComponentConfiguration {
            reader.finish()
            return 0
        }

        func makeExporter(_ configuration: ComponentConfiguration, signals: Set<Signal>, settings: ComponentSettings) throws -> any Exporter {
            self.seen.withLockedValue { seen in
                for (id, running) in settings.extensions { seen[id] = String(describing: Swift.type(of: running)) }
            }
            return Probe()
        }
    }

    struct Probe: Exporter {
        func start() async throws {}
        func shutdown() async {}
        func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept { .all }
    }

    @Test("an exporter's settings hold every running extension of service.extensions, by id")
    func exportersSeeRunningExtensions() async throws {
        let seen = NIOLockedValueBox<[ComponentID: String]>([:])
        var registry = ComponentRegistry.builtIn
        registry.exporters["probe"] = ProbeFactory(seen: seen)
        let yaml = """
            receivers:
              otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } }
            exporters:
              probe: {}
            extensions:
              health_check: { endpoint: 127.0.0.1:0 }
              health_check/unused: { endpoint: 127.0.0.1:0 }
            service:
              extensions: [health_check]
              telemetry: { metrics: { address: 127.0.0.1:0 } }
              pipelines:
                traces: { receivers: [otlp], exporters: [probe] }
            """
        let path = NSTemporaryDirectory() + "otlpd-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try ConfigLoader.load(files: [path], sets: [], environment: [:])
        let configuration = try CollectorConfiguration.decode(loaded.root, registry: registry)
        let graph = try await PipelineGraph.start(configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        _ = await graph.shutdown(timeout: .seconds(5))
        #expect(seen.withLockedValue { $0 } == [ComponentID(type: "health_check"): "HealthCheckExtension"], "only the enabled one, running")
    }
}
