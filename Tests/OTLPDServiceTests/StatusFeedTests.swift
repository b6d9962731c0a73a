import Foundation
import Logging
import NIOCore
import NIOPosix
import OTLPDConfig
import OTLPDCore
import OTLPDService
import Testing

/// The status page's data: the JSON the page reads (at `/services`, and in
/// every `/events` event), and the feed that pushes it to at most so many
/// browsers.
struct StatusFeedTests {
    func configuration(_ yaml: String) throws -> CollectorConfiguration {
        let path = NSTemporaryDirectory() + "otlpd-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try CollectorConfiguration.decode(try ConfigLoader.load(files: [path], sets: [], environment: [:]).root)
    }

    @Test("the status JSON: every part the page reads, with its type")
    func jsonShape() async throws {
        let configuration = try self.configuration(
            """
            receivers:
              otlp:
                protocols: { grpc: { endpoint: 127.0.0.1:0 }, http: { endpoint: 127.0.0.1:0 } }
            processors:
              batch: {}
            exporters:
              nop: {}
            service:
              pipelines:
                traces: { receivers: [otlp], processors: [batch], exporters: [nop] }
            """)
        let telemetry = SelfTelemetry()
        let services = ServiceRegistry(logger: Logger(label: "test"))
        services.accepted(
            signal: .traces, via: .httpProtobuf, port: 4317, wrongPort: true,
            resources: [ResourceObservation(serviceName: "<b>cart</b>", sdkLanguage: "python", itemCount: 5, duplicateSpans: 1)])
        telemetry.refusals.record(client: "10.0.0.7:5000", protocolName: "grpc", path: "/x", status: "UNAVAILABLE", reason: "full", service: "cart")
        let graph = try await PipelineGraph.start(configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        let report = StatusReport(telemetry: telemetry, services: services, memory: MemoryGuard(), maxFeedClients: 16)
        report.running(graph)
        let text = report.json(feedClients: 3)
        _ = await graph.shutdown(timeout: .seconds(5))

        let root = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(Set(root.keys) == ["services", "historySlotSeconds", "tracked", "maxServices", "exporters", "pipelines", "otlpd", "refusals"])
        let service = try #require((root["services"] as? [[String: Any]])?.first)
        #expect(service["name"] as? String == "<b>cart</b>", "names as sent: the page puts them in as text")
        #expect(service["ports"] as? [Int] == [4317] && service["wrongPort"] as? Bool == true && service["duplicateSpans"] as? Int == 1)
        #expect(service["protocols"] as? [String] == ["http/protobuf"] && (service["history"] as? [Int])?.count == 60)
        #expect((service["perSecond"] as? [String: Double]).map { Set($0.keys) } == ["spans", "metricPoints", "logRecords"])
        #expect((service["sdk"] as? [String: Any])?["language"] as? String == "python")

        let pipelines = try #require(root["pipelines"] as? [String: Any])
        let receiver = try #require((pipelines["receivers"] as? [[String: Any]])?.first)
        let listeners = try #require(receiver["listeners"] as? [[String: Any]])
        #expect(receiver["id"] as? String == "otlp" && listeners.compactMap { $0["protocol"] as? String } == ["OTLP/gRPC", "OTLP/HTTP"])
        #expect(listeners.allSatisfy { ($0["endpoint"] as? String)?.hasPrefix("127.0.0.1:") == true && $0["tls"] as? Bool == false })
        #expect(listeners.allSatisfy { $0["connections"] as? Int == 0 && $0["auth"] is NSNull })
        let pipeline = try #require((pipelines["pipelines"] as? [[String: Any]])?.first)
        #expect(pipeline["id"] as? String == "traces" && pipeline["processors"] as? [String] == ["batch"] && pipeline["exporters"] as? [String] == ["nop"])
        let exporter = try #require((pipelines["exporters"] as? [[String: Any]])?.first)
        #expect(exporter["id"] as? String == "nop" && exporter["sent"] as? Int == 0 && exporter["failed"] as? Int == 0 && exporter["target"] is String)

        let process = try #require(root["otlpd"] as? [String: Any])
        #expect(process["feedClients"] as? Int == 3 && process["maxFeedClients"] as? Int == 16)
        for key in ["version", "config"] { #expect(process[key] is String, "\(key)") }
        for key in ["uptimeSeconds", "rssBytes", "heldBytes"] { #expect(process[key] is NSNumber, "\(key)") }
        #expect(process["lastReload"] is NSNull && process["memoryLimitBytes"] is NSNull)

        let refusal = try #require((root["refusals"] as? [[String: Any]])?.first)
        #expect(refusal["client"] as? String == "10.0.0.7:5000" && refusal["service"] as? String == "cart" && refusal["status"] as? String == "UNAVAILABLE")
        #expect((refusal["time"] as? String)?.hasSuffix("Z") == true && refusal["reason"] as? String == "full")
    }

    @Test("the feed: the first event at once, then one a tick to each subscriber, each on one line of data")
    func eventsEachTick() async throws {
        let feed = StatusFeed(maxClients: 4, interval: .milliseconds(20)) { clients in "{\"clients\":\(clients),\"text\":\"a\\nb\"}" }
        var first = try #require(feed.subscribe()).makeAsyncIterator()
        #expect(await first.next().map { String(buffer: $0) } == "retry: 1000\nevent: status\ndata: {\"clients\":1,\"text\":\"a\\nb\"}\n\n")
        var second = try #require(feed.subscribe()).makeAsyncIterator()
        _ = await second.next().map { String(buffer: $0) }
        // Both get the ticks, each event counting both subscribers.
        #expect(await first.next().map { String(buffer: $0) } == "event: status\ndata: {\"clients\":2,\"text\":\"a\\nb\"}\n\n")
        #expect(await second.next().map { String(buffer: $0) } == "event: status\ndata: {\"clients\":2,\"text\":\"a\\nb\"}\n\n")
        feed.close()
        #expect(await first.next() == nil && feed.subscribe() == nil, "closed: streams end, nobody subscribes")
    }

    @Test("at most maxClients subscribe; a place is given back when a subscriber goes away")
    func cappedSubscribers() async throws {
        let feed = StatusFeed(maxClients: 2, interval: .milliseconds(20)) { _ in "{}" }
        // A subscription lasts while its stream is read (a connection's reader reads it).
        func reader() throws -> Task<Void, Never> {
            let events = try #require(feed.subscribe())
            return Task {
                for await _ in events {}
            }
        }
        let first = try reader()
        let second = try reader()
        try await Self.waitUntil { feed.clientCount == 2 }
        #expect(feed.subscribe() == nil, "a third is refused")
        second.cancel()  // its connection closed: the reader is cancelled
        await second.value
        try await Self.waitUntil { feed.clientCount == 1 }
        let third = try reader()
        #expect(feed.clientCount == 2, "the place was given back")
        feed.close()
        await first.value
        await third.value
    }

    @Test("nobody subscribes when the feed is turned off (max_feed_clients: 0)")
    func turnedOff() {
        let feed = StatusFeed(maxClients: 0) { _ in "{}" }
        #expect(feed.subscribe() == nil && feed.clientCount == 0)
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition())
    }
}
