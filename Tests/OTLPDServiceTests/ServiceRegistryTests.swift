import Foundation
import Logging
import OTLPDCore
import OTLPDService
import OTLPDTestSupport
import Testing

struct ServiceRegistryTests {
    let logs = LogRecorder()

    func registry(maxServices: Int = 1000) -> ServiceRegistry {
        ServiceRegistry(logger: self.logs.logger(), maxServices: maxServices)
    }

    @Test("counts per service and signal, with SDK, protocols, instances and the wrong port")
    func counts() throws {
        let registry = self.registry()
        let checkout = ResourceObservation(serviceName: "checkout", serviceInstanceID: "a", sdkLanguage: "go", sdkVersion: "1.2", itemCount: 5)
        registry.accepted(signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [checkout])
        var second = checkout
        second.serviceInstanceID = "b"
        second.itemCount = 3
        registry.accepted(signal: .metrics, via: .httpProtobuf, port: 4317, wrongPort: true, resources: [second])
        registry.accepted(signal: .logs, via: .httpJSON, port: 4318, wrongPort: false, resources: [ResourceObservation(itemCount: 2)])
        let entries = registry.snapshot()
        #expect(entries.map(\.name) == ["checkout", "unknown_service"])
        let entry = entries[0]
        #expect(entry.spans == 5 && entry.metricPoints == 3 && entry.logRecords == 0)
        #expect(entry.sdkLanguage == "go" && entry.sdkVersion == "1.2")
        #expect(entry.protocols == [.grpc, .httpProtobuf])
        #expect(entry.wrongPort)
        #expect(entry.instances == ["a", "b"])
        #expect(entries[1].logRecords == 2 && entries[1].protocols == [.httpJSON])
    }

    @Test("errors count once per request and service")
    func errors() {
        let registry = self.registry()
        let resource = ResourceObservation(serviceName: "checkout", itemCount: 4)
        registry.refused(signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [resource, resource])
        #expect(registry.snapshot()[0].errors == 1)
        #expect(registry.snapshot()[0].spans == 0)
    }

    @Test("services past the cap are counted together as other")
    func cap() {
        let registry = self.registry(maxServices: 2)
        for name in ["a", "b", "c", "d"] {
            registry.accepted(signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [ResourceObservation(serviceName: name, itemCount: 1)])
        }
        let entries = registry.snapshot()
        #expect(entries.map(\.name) == ["a", "b", "other"])
        #expect(entries[2].spans == 2)
    }

    @Test("duplicates are counted, with one warning per service per minute")
    func duplicates() {
        let registry = self.registry()
        for _ in 0..<3 {
            registry.accepted(
                signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [ResourceObservation(serviceName: "checkout", itemCount: 4, duplicateSpans: 4)])
        }
        registry.accepted(signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [ResourceObservation(serviceName: "billing", itemCount: 1, duplicateSpans: 1)])
        #expect(registry.snapshot().first { $0.name == "checkout" }?.duplicateSpans == 12)
        let warnings = self.logs.all.filter { $0.message.contains("sent spans again") }
        #expect(warnings.map { $0.metadata["service"] } == ["checkout", "billing"])
        #expect(warnings.allSatisfy { $0.level == .warning })
    }

    @Test("the table: a header, one aligned line per service, greppable by name")
    func table() {
        let registry = self.registry()
        #expect(registry.table().contains("(no data received yet)"))
        registry.accepted(
            signal: .traces, via: .grpc, port: 4317, wrongPort: true,
            resources: [ResourceObservation(serviceName: "checkout-service", sdkLanguage: "python", sdkVersion: "1.45.2", itemCount: 12)])
        registry.accepted(signal: .logs, via: .httpJSON, port: 4318, wrongPort: false, resources: [ResourceObservation(serviceName: "db", itemCount: 3)])
        let lines = registry.table(now: Timestamp.nowNanoseconds() + 5_000_000_000).split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("SERVICE"))
        let checkout = lines.first { $0.hasPrefix("checkout-service") }!
        #expect(checkout.contains("python 1.45.2") && checkout.contains("grpc (wrong port)") && checkout.contains("5s ago"))
        // Every column starts at the same offset on every line.
        let column = lines[0].range(of: "SPANS")!.lowerBound.utf16Offset(in: lines[0])
        for line in lines.dropFirst() {
            let index = line.index(line.startIndex, offsetBy: column)
            #expect(line[line.index(before: index)] == " " && line[index] != " ")
        }
    }

    @Test("JSON: every field, strings escaped")
    func json() {
        let registry = self.registry()
        registry.accepted(signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [ResourceObservation(serviceName: "a\"b", itemCount: 1)])
        let json = registry.json()
        #expect(json.contains("\"name\":\"a\\\"b\""))
        #expect(json.contains("\"spans\":1,\"metricPoints\":0,\"logRecords\":0"))
        #expect(json.contains("\"protocols\":[\"grpc\"],\"ports\":[4317],\"wrongPort\":false,\"instances\":0,\"duplicateSpans\":0,\"errors\":0"))
        #expect(json.hasSuffix("\"tracked\":1,\"maxServices\":1000}"))
    }
}

/// The status page's feed: rates over the last minute and ten minutes of history per service.
struct ServiceActivityFeedTests {
    func feed(_ registry: ServiceRegistry, at now: Int64) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(registry.json(now: now).utf8)) as? [String: Any]
        let services = try #require(object?["services"] as? [[String: Any]])
        #expect(object?["historySlotSeconds"] as? Int == 10)
        return try #require(services.first)
    }

    @Test("items per second over the last minute, and 60 slots of 10 s that age out")
    func ratesAndHistory() throws {
        let registry = ServiceRegistry(logger: Logger(label: "test"))
        registry.accepted(signal: .traces, via: .grpc, port: 4317, wrongPort: false, resources: [ResourceObservation(serviceName: "checkout", itemCount: 600)])
        registry.accepted(signal: .logs, via: .grpc, port: 4317, wrongPort: false, resources: [ResourceObservation(serviceName: "checkout", itemCount: 30)])
        let now = Timestamp.nowNanoseconds()
        // Seen for 20 s: its rate is over those 20 s, not over a whole minute.
        let fresh = try self.feed(registry, at: now + 20_000_000_000)
        let rate = try #require(fresh["perSecond"] as? [String: Double])
        #expect(rate == ["spans": 30.0, "metricPoints": 0.0, "logRecords": 1.5])
        let history = try #require(fresh["history"] as? [Int])
        #expect(history.count == 60 && history.reduce(0, +) == 630 && history.suffix(4).reduce(0, +) == 630, "in one of the newest slots")
        let laterMinute = try self.feed(registry, at: now + 65_000_000_000)
        #expect((laterMinute["perSecond"] as? [String: Double])?["spans"] == 0.0, "out of the last minute")
        #expect((laterMinute["history"] as? [Int])?.reduce(0, +) == 630, "still in the ten minutes")
        let muchLater = try self.feed(registry, at: now + 11 * 60_000_000_000)
        #expect((muchLater["history"] as? [Int])?.reduce(0, +) == 0, "aged out")
    }

    @Test("a service sending for long has its rate over the last minute: six slots over the time they cover")
    func steadyRate() {
        var history = ActivityHistory()
        let start: Int64 = 1_000_000 * ActivityHistory.slotNanoseconds
        // 100 spans a second for five minutes, one add a second.
        for second in 0..<300 { history.add(.traces, 100, at: start + Int64(second) * 1_000_000_000) }
        let now = start + 299 * 1_000_000_000 + 500_000_000
        let rate = history.perSecond(at: now).x
        #expect(abs(rate - 100) < 3, "\(rate)")
    }
}
