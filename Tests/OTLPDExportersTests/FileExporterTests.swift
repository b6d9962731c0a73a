import Foundation
import Logging
import NIOCore
import NIOPosix
import OTLPDCompression
import OTLPDCore
import OTLPDExporters
import OTLPDOutput
import OTLPDTestSupport
import OTLPDWire
import Testing

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "otlpd-exporter-tests-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func settings(_ id: String = "file") -> ComponentSettings {
    ComponentSettings(id: ComponentID(type: id), logger: Logger(label: "test"), eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
}

func lines(_ path: String) throws -> [String] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
}

struct FileAppenderTests {
    @Test("concurrent appends all land, each whole")
    func concurrentAppends() async throws {
        let directory = try temporaryDirectory()
        let appender = FileAppender(path: "\(directory)/out.jsonl", rotation: nil, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for line in 0..<50 {
                        try await appender.append(ByteBuffer(string: "writer-\(writer)-line-\(line)-" + String(repeating: "x", count: 500) + "\n"))
                    }
                }
            }
            try await group.waitForAll()
        }
        await appender.close()
        let written = try lines("\(directory)/out.jsonl")
        #expect(written.count == 400)
        #expect(Set(written).count == 400)
        #expect(written.allSatisfy { $0.hasPrefix("writer-") && $0.hasSuffix(String(repeating: "x", count: 500)) })
    }

    @Test("appends to what is there, never truncates")
    func appendsAcrossReopen() async throws {
        let directory = try temporaryDirectory()
        let path = "\(directory)/sub/folder/out.jsonl"
        for round in 0..<3 {
            let appender = FileAppender(path: path, rotation: nil, logger: Logger(label: "test"))
            try appender.open()
            try await appender.append(ByteBuffer(string: "round \(round)\n"))
            await appender.close()
        }
        #expect(try lines(path) == ["round 0", "round 1", "round 2"])
    }

    @Test func backupNames() {
        #expect(FileAppender.split("/var/lib/otlpd/otlpd.traces.jsonl") == ("/var/lib/otlpd/", "otlpd.traces", ".jsonl"))
        #expect(FileAppender.split("out") == ("", "out", ""))
        #expect(FileAppender.split(".hidden") == ("", ".hidden", ""))
        // 2026-11-21T10:00:00.123Z
        let stamp: Int64 = 1_795_255_200_123_000_000
        #expect(FileAppender.backupPath(for: "/d/otlpd.jsonl", nanoseconds: stamp, localTime: false) == "/d/otlpd-2026-11-21T10-00-00.123.jsonl")
    }

    @Test("rotates by size and keeps max_backups")
    func rotation() async throws {
        let directory = try temporaryDirectory()
        let path = "\(directory)/out.jsonl"
        let appender = FileAppender(path: path, rotation: RotationPolicy(maxBytes: 1000, maxDays: 0, maxBackups: 2), logger: Logger(label: "test"))
        for index in 0..<12 {
            try await appender.append(ByteBuffer(string: String(repeating: Character(String(index % 10)), count: 399) + "\n"))
        }
        await appender.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let backups = names.filter { $0 != "out.jsonl" }
        #expect(backups.count == 2, "\(names)")
        #expect(backups.allSatisfy { $0.hasPrefix("out-") && $0.hasSuffix(".jsonl") && $0.count == "out-2026-11-21T10-00-00.123.jsonl".count })
        // Every file stays under the limit; the newest data is in the current file.
        for name in names {
            let size = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.size] as! Int
            #expect(size <= 1000)
        }
        #expect(try lines(path).last?.hasPrefix("1") == true)
    }

    @Test("backups older than max_days go")
    func pruneByAge() async throws {
        let directory = try temporaryDirectory()
        let path = "\(directory)/out.jsonl"
        let old = FileAppender.backupPath(for: path, nanoseconds: Timestamp.nowNanoseconds() - 3 * 86_400 * 1_000_000_000, localTime: false)
        let recent = FileAppender.backupPath(for: path, nanoseconds: Timestamp.nowNanoseconds() - 3_600 * 1_000_000_000, localTime: false)
        _ = FileManager.default.createFile(atPath: old, contents: Data("old\n".utf8))
        _ = FileManager.default.createFile(atPath: recent, contents: Data("recent\n".utf8))
        _ = FileManager.default.createFile(atPath: "\(directory)/unrelated.txt", contents: Data())
        let appender = FileAppender(path: path, rotation: RotationPolicy(maxBytes: 10, maxDays: 2, maxBackups: 0), logger: Logger(label: "test"))
        appender.pruneBackups(RotationPolicy(maxBytes: 10, maxDays: 2, maxBackups: 0))
        #expect(!FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: recent))
        #expect(FileManager.default.fileExists(atPath: "\(directory)/unrelated.txt"))
    }
}

struct FileExporterTests {
    func exporter(_ yaml: [String: String], signals: Set<Signal> = [.traces]) throws -> FileExporter {
        let diagnostics = ConfigDiagnostics()
        let node = ConfigNode.mapping(yaml.map { ($0.key, ConfigNode.scalar($0.value)) })
        let configuration = FileExporterFactory().decode(ConfigReader(node, path: "exporters.file", diagnostics: diagnostics))
        try diagnostics.check()
        return try FileExporterFactory().makeExporter(configuration, signals: signals, settings: settings()) as! FileExporter
    }

    @Test("one resource per line, one file per signal when several feed it")
    func jsonLinesPerSignal() async throws {
        let directory = try temporaryDirectory()
        let exporter = try self.exporter(["path": "\(directory)/otlpd.jsonl"], signals: [.traces, .logs])
        try await exporter.start()
        var payload = TestRequests.traces(service: "checkout", spans: 2)
        var second = TestRequests.traces(service: "payments", spans: 1)
        payload.writeBuffer(&second)
        try await exporter.consume(TelemetryBatch(signal: .traces, payload: payload, itemCount: 3))
        await exporter.shutdown()
        let written = try lines("\(directory)/otlpd.traces.jsonl")
        #expect(written.count == 2)
        #expect(written[0].contains("checkout") && !written[0].contains("payments"))
        #expect(written[1].contains("payments") && !written[1].contains("checkout"))
        #expect(FileManager.default.fileExists(atPath: "\(directory)/otlpd.logs.jsonl"))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/otlpd.jsonl"))
    }

    @Test("flush_interval puts written data on disk on schedule, only when something was written; 0 turns it off")
    func flushInterval() async throws {
        let directory = try temporaryDirectory()
        let periodic = try self.exporter(["path": "\(directory)/synced.jsonl", "flush_interval": "20ms"])
        try await periodic.start()
        try await periodic.consume(TestRequests.batch(spans: 1))
        #expect(await eventually { periodic.syncCount == 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(periodic.syncCount == 1, "nothing new written, nothing to sync")
        try await periodic.consume(TestRequests.batch(spans: 1))
        #expect(await eventually { periodic.syncCount == 2 })
        await periodic.shutdown()

        let never = try self.exporter(["path": "\(directory)/unsynced.jsonl", "flush_interval": "0"])
        try await never.start()
        try await never.consume(TestRequests.batch(spans: 1))
        try await Task.sleep(for: .milliseconds(100))
        #expect(never.syncCount == 0)
        await never.shutdown()
        #expect(try lines("\(directory)/unsynced.jsonl").count == 1)
    }

    @Test("a batch merged from several requests: one line per resource in JSON, one length-prefixed request in proto")
    func mergedBatch() async throws {
        let directory = try temporaryDirectory()
        let first = TestRequests.traces(service: "checkout", spans: 2)
        let second = TestRequests.traces(service: "payments", spans: 1)
        let merged = TelemetryBatch(
            signal: .traces, merging: [TelemetryBatch(signal: .traces, payload: first, itemCount: 2), TelemetryBatch(signal: .traces, payload: second, itemCount: 1)])
        #expect(merged.parts.count == 2)
        for options in [["format": "json"], ["format": "json", "compression": "gzip"]] {
            let path = "\(directory)/merged-\(options.count).jsonl"
            let exporter = try self.exporter(options.merging(["path": path]) { $1 })
            try await exporter.start()
            try await exporter.consume(merged)
            await exporter.shutdown()
            let written: [String]
            if options["compression"] == nil {
                written = try lines(path)
            } else {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/gzip")
                process.arguments = ["-dc", path]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                written = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").map(String.init)
                process.waitUntilExit()
            }
            #expect(written.count == 2, "\(options)")
            #expect(written.first?.contains("checkout") == true && written.last?.contains("payments") == true, "\(options)")
        }
        let exporter = try self.exporter(["path": "\(directory)/merged.binpb", "format": "proto"])
        try await exporter.start()
        try await exporter.consume(merged)
        await exporter.shutdown()
        var data = ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: "\(directory)/merged.binpb")))
        let length = data.readInteger(as: UInt32.self)
        #expect(length == UInt32(first.readableBytes + second.readableBytes))
        #expect(data.readSlice(length: Int(length ?? 0)) == merged.payload)
        #expect(data.readableBytes == 0)
    }

    @Test("proto format: 4-byte big-endian length, then the request")
    func protoFormat() async throws {
        let directory = try temporaryDirectory()
        let exporter = try self.exporter(["path": "\(directory)/out.binpb", "format": "proto"])
        try await exporter.start()
        let payloads = [TestRequests.traces(spans: 1), TestRequests.traces(spans: 3)]
        for payload in payloads { try await exporter.consume(TelemetryBatch(signal: .traces, payload: payload, itemCount: 0)) }
        await exporter.shutdown()
        var data = ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: "\(directory)/out.binpb")))
        for payload in payloads {
            let length = data.readInteger(as: UInt32.self)
            #expect(length == UInt32(payload.readableBytes))
            #expect(data.readSlice(length: Int(length ?? 0)) == payload)
        }
        #expect(data.readableBytes == 0)
    }

    @Test("compressed output is one readable stream at every moment", arguments: ["gzip", "zstd"])
    func compressedOutput(compression: String) async throws {
        let directory = try temporaryDirectory()
        let path = "\(directory)/out.jsonl.\(compression == "gzip" ? "gz" : "zst")"
        let exporter = try self.exporter(["path": path, "compression": compression])
        try await exporter.start()
        for round in 0..<3 {
            try await exporter.consume(TelemetryBatch(signal: .traces, payload: TestRequests.traces(service: "svc-\(round)", spans: 2), itemCount: 2))
        }
        // Read while the exporter is still open: each write is a complete member/frame.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compression == "gzip" ? "/bin/gzip" : "/usr/bin/zstd")
        process.arguments = ["-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        await exporter.shutdown()
        #expect(process.terminationStatus == 0)
        let decoded = output.split(separator: "\n")
        #expect(decoded.count == 3)
        #expect(decoded.enumerated().allSatisfy { $0.element.contains("svc-\($0.offset)") })
    }

    @Test("group_by: a file per service.name, 'unknown' without it")
    func groupBy() async throws {
        let directory = try temporaryDirectory()
        let diagnostics = ConfigDiagnostics()
        let node = ConfigNode.mapping([
            ("path", .scalar("\(directory)/svc-*.jsonl")),
            ("group_by", .mapping([("enabled", .scalar("true")), ("max_open_files", .scalar("2"))])),
        ])
        let configuration = FileExporterFactory().decode(ConfigReader(node, path: "exporters.file", diagnostics: diagnostics))
        try diagnostics.check()
        let exporter = try FileExporterFactory().makeExporter(configuration, signals: [.traces], settings: settings())
        try await exporter.start()
        var payload = TestRequests.traces(service: "checkout", spans: 1)
        for service in ["cart", nil, "checkout", "a/b"] as [String?] {
            var more = TestRequests.traces(service: service, spans: 1)
            payload.writeBuffer(&more)
        }
        try await exporter.consume(TelemetryBatch(signal: .traces, payload: payload, itemCount: 5))
        await exporter.shutdown()
        #expect(try lines("\(directory)/svc-checkout.jsonl").count == 2)
        #expect(try lines("\(directory)/svc-cart.jsonl").count == 1)
        #expect(try lines("\(directory)/svc-unknown.jsonl").count == 1)
        #expect(try lines("\(directory)/svc-a_b.jsonl").count == 1)
    }

    @Test func groupByNeedsAStar() {
        let diagnostics = ConfigDiagnostics()
        let node = ConfigNode.mapping([("path", .scalar("/tmp/x.jsonl")), ("group_by", .mapping([("enabled", .scalar("true"))]))])
        _ = FileExporterFactory().decode(ConfigReader(node, path: "exporters.file", diagnostics: diagnostics))
        #expect(diagnostics.errors.map(\.keyPath) == ["exporters.file.path"])
    }

    @Test("a write that fails is a retryable error, not a success")
    func unwritableIsRetryable() async throws {
        let exporter = try self.exporter(["path": "/proc/self/otlpd-cannot-write-here/x.jsonl"])
        await #expect(throws: ConsumeError.self) {
            try await exporter.consume(TestRequests.batch(spans: 1))
        }
        do {
            try await exporter.consume(TestRequests.batch(spans: 1))
        } catch {
            #expect(error.isRetryable)
        }
    }
}
