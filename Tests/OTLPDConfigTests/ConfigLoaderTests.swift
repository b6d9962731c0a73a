import Foundation
import OTLPDConfig
import OTLPDCore
import Testing

/// Writes YAML files into a fresh folder for one test.
struct ConfigFiles {
    let directory: String

    init() throws {
        self.directory = NSTemporaryDirectory() + "otlpd-config-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = "\(self.directory)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

struct ConfigLoaderTests {
    @Test func mergesFilesInOrder() throws {
        let files = try ConfigFiles()
        let first = try files.write(
            "a.yaml",
            """
            exporters:
              file: { path: /tmp/a.jsonl, format: json }
            service:
              pipelines:
                traces: { receivers: [otlp], exporters: [file, debug] }
            """)
        let second = try files.write(
            "b.yaml",
            """
            exporters:
              file: { path: /tmp/b.jsonl }
            service:
              pipelines:
                traces: { exporters: [nop] }
            """)
        let root = try ConfigLoader.load(files: [first, second], sets: [], environment: [:]).root
        // Later wins, mappings merge key by key, lists replace.
        #expect(root.node(at: ["exporters", "file", "path"])?.scalarText == "/tmp/b.jsonl")
        #expect(root.node(at: ["exporters", "file", "format"])?.scalarText == "json")
        #expect(root.node(at: ["service", "pipelines", "traces", "exporters"])?.items?.compactMap(\.scalarText) == ["nop"])
        #expect(root.node(at: ["service", "pipelines", "traces", "receivers"])?.items?.compactMap(\.scalarText) == ["otlp"])
    }

    @Test func setOverridesOneKey() throws {
        let files = try ConfigFiles()
        let file = try files.write("a.yaml", "service:\n  telemetry:\n    logs:\n      level: info\n")
        let root = try ConfigLoader.load(
            files: [file],
            sets: ["service.telemetry.logs.level=debug", "exporters::file::path=/x.jsonl", "receivers.otlp.protocols.grpc.endpoint=0.0.0.0:4317", "a.list=[x, y]"],
            environment: [:]
        ).root
        #expect(root.node(at: ["service", "telemetry", "logs", "level"])?.scalarText == "debug")
        #expect(root.node(at: ["exporters", "file", "path"])?.scalarText == "/x.jsonl")
        #expect(root.node(at: ["receivers", "otlp", "protocols", "grpc", "endpoint"])?.scalarText == "0.0.0.0:4317")
        #expect(root.node(at: ["a", "list"])?.items?.compactMap(\.scalarText) == ["x", "y"])
    }

    @Test func badSetIsAnError() throws {
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(files: [], sets: ["no-equals-sign"], environment: [:]) }
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(files: [], sets: ["a..b=1"], environment: [:]) }
    }

    @Test func expandsEnvironmentReferences() throws {
        let files = try ConfigFiles()
        let file = try files.write(
            "a.yaml",
            """
            a: ${env:HOST}:${PORT}
            b: ${env:MISSING:-fallback}
            c: ${env:EMPTY:-default-for-empty}
            d: price $$5 and $plain
            e: "${env:MISSING}"
            """)
        let loaded = try ConfigLoader.load(files: [file], sets: [], environment: ["HOST": "0.0.0.0", "PORT": "4317", "EMPTY": ""])
        let root = loaded.root
        #expect(root["a"]?.scalarText == "0.0.0.0:4317")
        #expect(root["b"]?.scalarText == "fallback")
        #expect(root["c"]?.scalarText == "default-for-empty")
        #expect(root["d"]?.scalarText == "price $5 and $plain")
        #expect(root["e"]?.scalarText == "")
        #expect(loaded.warnings.count == 1)
        #expect(loaded.warnings.first?.contains("MISSING") == true)
        #expect(loaded.warnings.first?.contains("a.yaml:5") == true)
    }

    @Test func badEnvironmentReferenceIsAnError() throws {
        let files = try ConfigFiles()
        let file = try files.write("a.yaml", "a: ${env:not valid}\nb: ${unterminated\n")
        #expect {
            try ConfigLoader.load(files: [file], sets: [], environment: [:])
        } throws: { error in
            let errors = (error as! ConfigErrors).errors
            return errors.count == 2 && errors.allSatisfy { $0.location?.file == file } && errors[0].keyPath == "a"
        }
    }

    @Test func unreadableFileAndBadYAML() throws {
        let files = try ConfigFiles()
        let bad = try files.write("bad.yaml", "receivers: [unclosed\n")
        let list = try files.write("list.yaml", "- a\n- b\n")
        #expect {
            try ConfigLoader.load(files: ["/nonexistent/otlpd.yaml", bad, list], sets: [], environment: [:])
        } throws: { error in
            let text = "\(error)"
            return text.contains("/nonexistent/otlpd.yaml: cannot read the file") && text.contains("bad.yaml: not valid YAML")
                && text.contains("list.yaml:1: the config must be a mapping")
        }
    }

    @Test func printConfigRedactsSecrets() throws {
        let files = try ConfigFiles()
        let file = try files.write(
            "a.yaml",
            """
            extensions:
              bearertokenauth: { token: s3cret }
            exporters:
              otlp: { endpoint: "upstream:4317", headers: { authorization: "Bearer abc", x-tenant: acme } }
            """)
        let printed = ConfigLoader.printable(try ConfigLoader.load(files: [file], sets: [], environment: [:]).root)
        #expect(!printed.contains("s3cret"))
        #expect(!printed.contains("Bearer abc"))
        #expect(printed.contains("[REDACTED]"))
        #expect(printed.contains("acme"))
        // What is printed loads again to the same values.
        let again = try ConfigLoader.load(files: [try files.write("b.yaml", printed)], sets: [], environment: [:]).root
        #expect(again.node(at: ["exporters", "otlp", "endpoint"])?.scalarText == "upstream:4317")
    }

    @Test func embeddedDefaultLoads() throws {
        let root = try ConfigLoader.load(files: [], sets: [], environment: [:]).root
        #expect(root.node(at: ["receivers", "otlp", "protocols", "grpc", "endpoint"])?.scalarText == "localhost:4317")
        #expect(root.node(at: ["receivers", "otlp", "protocols", "http", "endpoint"])?.scalarText == "localhost:4318")
    }
}

struct ConfigUnitsTests {
    @Test(arguments: [
        ("200ms", 200_000_000), ("1s", 1_000_000_000), ("1.5s", 1_500_000_000), ("1m30s", 90_000_000_000), ("2h", 7_200_000_000_000),
        ("0", 0), ("500us", 500_000), ("10ns", 10),
    ])
    func durations(text: String, nanoseconds: Int64) {
        #expect(ConfigUnits.parseDuration(text)?.nanosecondsValue == nanoseconds)
    }

    @Test(arguments: ["", "5", "1x", "ms", "1.2.3s", "s1"])
    func badDurations(text: String) {
        #expect(ConfigUnits.parseDuration(text) == nil)
    }

    @Test(arguments: [("1024", 1024), ("64MiB", 64 << 20), ("512KiB", 512 << 10), ("1GiB", 1 << 30), ("2 MiB", 2 << 20), ("100MB", 100 << 20)])
    func sizes(text: String, bytes: Int) {
        #expect(ConfigUnits.parseByteSize(text) == bytes)
    }

    @Test(arguments: ["", "-1", "1.5", "ten", "5 TB"])
    func badSizes(text: String) {
        #expect(ConfigUnits.parseByteSize(text) == nil)
    }

    @Test func endpoints() {
        #expect(Endpoint(parsing: "localhost:4317") == Endpoint(host: "localhost", port: 4317))
        #expect(Endpoint(parsing: ":4318") == Endpoint(host: "0.0.0.0", port: 4318))
        #expect(Endpoint(parsing: "[::1]:4317") == Endpoint(host: "::1", port: 4317))
        #expect(Endpoint(parsing: "localhost") == nil)
        #expect(Endpoint(parsing: "host:99999") == nil)
        #expect(Endpoint(parsing: "::1:4317") == nil)
    }
}
