import Foundation
import NIOPosix
import OTLPDCore
import OTLPDExtensions
import OTLPDTestSupport
import OTLPDTransport
import Testing

/// The health_check extension over a real socket, through its states.
struct HealthCheckTests {
    @Test("503 while starting, 200 with the Collector's JSON while ready, 503 while stopping; 404 elsewhere")
    func states() async throws {
        let logs = LogRecorder()
        let factory = HealthCheckExtensionFactory()
        let diagnostics = ConfigDiagnostics()
        let node = ConfigNode.mapping([("endpoint", .scalar("127.0.0.1:0")), ("path", .scalar("/health"))])
        let configuration = factory.decode(ConfigReader(node, path: "extensions.health_check", diagnostics: diagnostics))
        #expect(diagnostics.errors.isEmpty)
        let health = try factory.makeExtension(
            configuration, settings: ComponentSettings(id: ComponentID(type: "health_check"), logger: logs.logger(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton))
        try await health.start()
        let endpoint = try #require(logs.all.first { $0.message == "health check listening" }?.metadata["endpoint"])
        let port = try #require(Int(endpoint.split(separator: ":").last ?? ""))
        func get(_ path: String = "/health") async throws -> HTTPGet.Response {
            try await HTTPGet.fetch(host: "127.0.0.1", port: port, path: path)
        }

        let starting = try await get()
        #expect(starting.status == 503)
        #expect(starting.body.contains("\"status\":\"Server not available\""))

        await health.pipelinesReady()
        let ready = try await get()
        #expect(ready.status == 200)
        let body = try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: String]
        #expect(body?["status"] == "Server available")
        #expect(body?["upSince"]?.hasSuffix("Z") == true)
        #expect(body?["uptime"]?.hasSuffix("s") == true)
        #expect(try await get("/health?verbose=1").status == 200)
        #expect(try await get("/other").status == 404)

        await health.pipelinesStopping()
        #expect(try await get().status == 503)
        await health.shutdown()
    }

    @Test("uptime is written as Go writes a duration, as the Collector's body has it")
    func uptimeFormat() {
        let cases: [(Duration, String)] = [
            (.zero, "0s"), (.nanoseconds(999), "999ns"), (.nanoseconds(1_500), "1.5µs"), (.nanoseconds(123_456_789), "123.456789ms"),
            (.seconds(1), "1s"), (.milliseconds(3_500), "3.5s"), (.seconds(60), "1m0s"), (.nanoseconds(61_000_000_001), "1m1.000000001s"),
            (.seconds(3_600), "1h0m0s"), (.seconds(26 * 3_600 + 3 * 60 + 4), "26h3m4s"),
        ]
        for (duration, text) in cases {
            let formatted = GoDuration.format(duration)
            #expect(formatted == text)
        }
    }

    @Test("a path must start with /")
    func badPath() {
        let diagnostics = ConfigDiagnostics()
        _ = HealthCheckExtensionFactory().decode(
            ConfigReader(ConfigNode.mapping([("path", .scalar("health"))]), path: "extensions.health_check", diagnostics: diagnostics))
        #expect(diagnostics.errors.map(\.keyPath) == ["extensions.health_check.path"])
    }
}
