import Foundation
import OTLPDConfig
import OTLPDCore
import OTLPDService
import Logging
import Testing

/// Every config mistake is refused with the file, the key path and what is
/// wrong; one pass reports them all.
struct ConfigErrorTests {
    static let valid = """
        receivers:
          otlp:
            protocols:
              grpc: { endpoint: 127.0.0.1:4317 }
        exporters:
          nop: {}
        service:
          pipelines:
            traces: { receivers: [otlp], exporters: [nop] }
        """

    func errors(_ yaml: String, sets: [String] = []) throws -> [ConfigError] {
        let path = NSTemporaryDirectory() + "otlpd-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        do throws(ConfigErrors) {
            let loaded = try ConfigLoader.load(files: [path], sets: sets, environment: [:])
            _ = try CollectorConfiguration.decode(loaded.root)
            return []
        } catch {
            return error.errors
        }
    }

    /// Expects exactly one error at `keyPath` whose message contains `message`.
    func expectError(_ yaml: String, at keyPath: String, containing message: String, sets: [String] = [], sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let found = try self.errors(yaml, sets: sets)
        #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
        #expect(found.first?.keyPath == keyPath, "\(found)", sourceLocation: sourceLocation)
        #expect(found.first?.message.contains(message) == true, "\(found)", sourceLocation: sourceLocation)
        #expect(found.first?.location?.file.hasSuffix(".yaml") == true || found.first?.location?.file.hasPrefix("--set") == true, sourceLocation: sourceLocation)
    }

    @Test func validConfigDecodes() throws {
        #expect(try self.errors(Self.valid).isEmpty)
    }

    @Test func unknownComponentType() throws {
        try self.expectError(Self.valid + "\n  extra: 1\n", at: "service.extra", containing: "unknown key 'extra'")
        let yaml = Self.valid.replacingOccurrences(of: "nop: {}", with: "nop: {}\n  kafka: {}")
        try self.expectError(yaml, at: "exporters.kafka", containing: "unknown exporter type 'kafka'")
    }

    @Test func unknownKeyWithItsPath() throws {
        let yaml = Self.valid.replacingOccurrences(of: "grpc: { endpoint: 127.0.0.1:4317 }", with: "grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size: 4 }")
        try self.expectError(yaml, at: "receivers.otlp.protocols.grpc.max_recv_msg_size", containing: "unknown key")
    }

    @Test func pipelineNamesUndefinedComponent() throws {
        let yaml = Self.valid.replacingOccurrences(of: "exporters: [nop]", with: "exporters: [nop, file]")
        try self.expectError(yaml, at: "service.pipelines.traces.exporters[1]", containing: "exporter 'file' is not defined")
        let noReceiver = Self.valid.replacingOccurrences(of: "receivers: [otlp]", with: "receivers: [otlp/two]")
        try self.expectError(noReceiver, at: "service.pipelines.traces.receivers[0]", containing: "receiver 'otlp/two' is not defined")
    }

    @Test func badPipelineID() throws {
        let yaml = Self.valid.replacingOccurrences(of: "traces: {", with: "spans: {")
        try self.expectError(yaml, at: "service.pipelines.spans", containing: "not a pipeline id")
    }

    @Test func badDurationAndSize() throws {
        try self.expectError(Self.valid, at: "service.shutdown_timeout", containing: "not a duration", sets: ["service.shutdown_timeout=25"])
        let yaml = Self.valid.replacingOccurrences(of: "grpc: { endpoint: 127.0.0.1:4317 }", with: "grpc: { endpoint: 127.0.0.1:4317 }\n      http: { max_request_body_size: 10 MB-ish }")
        try self.expectError(yaml, at: "receivers.otlp.protocols.http.max_request_body_size", containing: "not a size")
    }

    @Test func badEndpoint() throws {
        let yaml = Self.valid.replacingOccurrences(of: "127.0.0.1:4317", with: "localhost")
        try self.expectError(yaml, at: "receivers.otlp.protocols.grpc.endpoint", containing: "not an endpoint")
    }

    @Test func unreadableTLSFile() throws {
        let yaml = Self.valid.replacingOccurrences(
            of: "grpc: { endpoint: 127.0.0.1:4317 }",
            with: "grpc: { endpoint: 127.0.0.1:4317, tls: { cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem } }")
        try self.expectError(yaml, at: "receivers.otlp.protocols.grpc.tls.cert_file", containing: "/nonexistent/cert.pem")
    }

    @Test func fileExporterNeedsAWritablePath() throws {
        let yaml = Self.valid.replacingOccurrences(of: "nop: {}", with: "file: { path: /etc/hostname/otlpd/x.jsonl }\n  nop: {}")
        try self.expectError(yaml, at: "exporters.file", containing: "cannot write")
        let noPath = Self.valid.replacingOccurrences(of: "nop: {}", with: "file: {}\n  nop: {}")
        try self.expectError(noPath, at: "exporters.file.path", containing: "needs a path")
    }

    @Test func choicesAreChecked() throws {
        let yaml = Self.valid.replacingOccurrences(of: "nop: {}", with: "nop: {}\n  file: { path: /tmp/x.jsonl, format: xml, compression: lz4 }")
        let found = try self.errors(yaml)
        #expect(Set(found.map(\.keyPath)) == ["exporters.file.format", "exporters.file.compression"])
        #expect(found.allSatisfy { $0.message.contains("is not one of") })
    }

    @Test("batch's group-commit settings: early_send a boolean, num_consumers at least 1")
    func batchGroupCommitSettings() throws {
        let yaml = Self.valid.replacingOccurrences(of: "exporters:\n", with: "processors:\n  batch: { early_send: maybe, num_consumers: 0 }\nexporters:\n")
            .replacingOccurrences(of: "exporters: [nop] }", with: "processors: [batch], exporters: [nop] }")
        let found = try self.errors(yaml)
        #expect(Set(found.map(\.keyPath)) == ["processors.batch.early_send", "processors.batch.num_consumers"], "\(found)")
        let good = yaml.replacingOccurrences(of: "early_send: maybe, num_consumers: 0", with: "early_send: false, num_consumers: 4")
        #expect(try self.errors(good).isEmpty)
    }

    @Test func everyErrorAtOnce() throws {
        let yaml = """
            receivers:
              otlp:
                protocols:
                  grpc: { endpoint: nowhere, colour: blue }
            processors:
              batch: { timeout: soon }
            exporters:
              nop: {}
            service:
              shutdown_timeout: -5s
              pipelines:
                traces: { receivers: [otlp], processors: [batch, attributes/x], exporters: [nop, missing] }
            """
        let found = try self.errors(yaml)
        let paths = Set(found.map(\.keyPath))
        #expect(
            paths == [
                "receivers.otlp.protocols.grpc.endpoint", "receivers.otlp.protocols.grpc.colour", "processors.batch.timeout",
                "service.shutdown_timeout", "service.pipelines.traces.processors[1]", "service.pipelines.traces.exporters[1]",
            ], "\(found)")
        // Errors carry the line they are on.
        #expect(found.first(where: { $0.keyPath == "processors.batch.timeout" })?.location?.line == 6)
    }

    @Test func missingServiceOrPipelines() throws {
        let noService = "exporters:\n  nop: {}\n"
        try self.expectError(noService, at: "service", containing: "at least one pipeline")
        try self.expectError("service:\n  pipelines: {}\n", at: "service.pipelines", containing: "at least one pipeline")
    }

    @Test func pipelineWithoutExporters() throws {
        let yaml = Self.valid.replacingOccurrences(of: "exporters: [nop]", with: "exporters: []")
        try self.expectError(yaml, at: "service.pipelines.traces.exporters", containing: "at least one exporter")
    }

    @Test func extensionsMustBeKnownAndDefined() throws {
        try self.expectError(Self.valid + "\nextensions:\n  bearertokenauth: {}\n", at: "extensions.bearertokenauth.token", containing: "give token")
        try self.expectError(Self.valid + "\nextensions:\n  zpages: {}\n", at: "extensions.zpages", containing: "unknown extension type")
        try self.expectError(Self.valid, at: "service.extensions[0]", containing: "not defined under 'extensions'", sets: ["service.extensions=[health_check]"])
    }

    @Test func persistentQueueNamesAnEnabledStorage() throws {
        let exporter = "nop: {}\n  otlp_grpc: { endpoint: 127.0.0.1:4317, sending_queue: { storage: file_storage } }"
        let yaml = Self.valid.replacingOccurrences(of: "exporters: [nop]", with: "exporters: [nop, otlp_grpc]")
            .replacingOccurrences(of: "nop: {}", with: exporter) + "\n"
        try self.expectError(yaml, at: "exporters.otlp_grpc.sending_queue.storage", containing: "is not defined under 'extensions'")
        let defined = yaml + "extensions:\n  file_storage: { directory: /tmp/q }\n  health_check: {}\n"
        try self.expectError(defined, at: "exporters.otlp_grpc.sending_queue.storage", containing: "not listed in service.extensions")
        let wrongKind = defined.replacingOccurrences(of: "storage: file_storage", with: "storage: health_check")
        try self.expectError(
            wrongKind, at: "exporters.otlp_grpc.sending_queue.storage", containing: "keeps no queues", sets: ["service.extensions=[health_check]"])
        let deadLetterAlone = yaml.replacingOccurrences(of: "{ storage: file_storage }", with: "{ dead_letter: { max_size: 1MiB } }")
        try self.expectError(deadLetterAlone, at: "exporters.otlp_grpc.sending_queue.dead_letter", containing: "applies to a persistent queue")
    }

    func decoded(_ yaml: String, sets: [String] = []) throws -> CollectorConfiguration {
        let path = NSTemporaryDirectory() + "otlpd-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try ConfigLoader.load(files: [path], sets: sets, environment: [:])
        return try CollectorConfiguration.decode(loaded.root)
    }

    @Test func telemetryMetricsEndpoint() throws {
        #expect(try self.decoded(Self.valid).telemetry.metricsEndpoint == Endpoint(host: "localhost", port: 8888))
        #expect(try self.decoded(Self.valid, sets: ["service.telemetry.metrics.level=none"]).telemetry.metricsEndpoint == nil)
        #expect(try self.decoded(Self.valid, sets: ["service.telemetry.metrics.address=0.0.0.0:9999"]).telemetry.metricsEndpoint == Endpoint(host: "0.0.0.0", port: 9999))
        #expect(try self.decoded(Self.valid, sets: ["service.telemetry.metrics.readers=[{pull: {exporter: {prometheus: {host: 127.0.0.1, port: 9464}}}}]"]).telemetry.metricsEndpoint == Endpoint(host: "127.0.0.1", port: 9464))
        try self.expectError(Self.valid, at: "service.telemetry.metrics.readers[0]", containing: "only a pull reader", sets: ["service.telemetry.metrics.readers=[{periodic: {}}]"])
        try self.expectError(Self.valid, at: "service.telemetry.metrics.level", containing: "not one of", sets: ["service.telemetry.metrics.level=loud"])
    }

    @Test func logLevelAndEncoding() throws {
        try self.expectError(Self.valid, at: "service.telemetry.logs.level", containing: "not one of", sets: ["service.telemetry.logs.level=loud"])
        let path = NSTemporaryDirectory() + "otlpd-\(UUID().uuidString).yaml"
        try Self.valid.write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try ConfigLoader.load(files: [path], sets: ["service.telemetry.logs.level=debug", "service.telemetry.logs.encoding=json"], environment: [:])
        let configuration = try CollectorConfiguration.decode(loaded.root)
        #expect(configuration.telemetry.logLevel == .debug)
        #expect(configuration.telemetry.logEncoding == .json)
    }

    @Test func sameEndpointForBothProtocols() throws {
        let yaml = Self.valid.replacingOccurrences(of: "grpc: { endpoint: 127.0.0.1:4317 }", with: "grpc: { endpoint: 127.0.0.1:4317 }\n      http: { endpoint: 127.0.0.1:4317 }")
        try self.expectError(yaml, at: "receivers.otlp.protocols.http.endpoint", containing: "same endpoint")
    }

    @Test func embeddedDefaultIsValid() throws {
        let loaded = try ConfigLoader.load(files: [], sets: [], environment: [:])
        let configuration = try CollectorConfiguration.decode(loaded.root)
        #expect(configuration.pipelines.map(\.id.description) == ["traces", "metrics", "logs"])
        #expect(configuration.pipelines.allSatisfy { $0.exporters.map(\.description) == ["debug", "file"] && $0.processors.map(\.description) == ["batch"] })
    }
}

/// The configs shipped in config/ load and validate, and config/otlpd.yaml
/// is exactly the embedded default.
struct ShippedConfigTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var files: [String] {
        let config = Self.repository.appendingPathComponent("config")
        let examples = config.appendingPathComponent("examples")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: examples.path)) ?? []
        return [config.appendingPathComponent("otlpd.yaml").path] + names.filter { $0.hasSuffix(".yaml") }.sorted().map { examples.appendingPathComponent($0).path }
    }

    @Test(arguments: ShippedConfigTests.files)
    func validates(path: String) throws {
        let loaded = try ConfigLoader.load(files: [path], sets: [], environment: ["OTLPD_DATA": NSTemporaryDirectory()])
        _ = try CollectorConfiguration.decode(loaded.root)
    }

    @Test func shippedDefaultIsTheEmbeddedOne() throws {
        #expect(Self.files.count >= 3)
        let shipped = try ConfigLoader.load(files: [Self.files[0]], sets: [], environment: [:]).root
        let embedded = try ConfigLoader.load(files: [], sets: [], environment: [:]).root
        #expect(ConfigLoader.printable(shipped) == ConfigLoader.printable(embedded))
    }
}
