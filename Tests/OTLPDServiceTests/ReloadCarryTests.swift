import Foundation
import OTLPDConfig
import OTLPDCore
import OTLPDService
import Testing

/// A reload keeps a component running when its config says the same:
/// judged by the config's text without where it was written.
struct ReloadCarryTests {
    func configuration(_ yaml: String) throws -> CollectorConfiguration {
        let path = NSTemporaryDirectory() + "otlpd-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try ConfigLoader.load(files: [path], sets: [], environment: [:])
        return try CollectorConfiguration.decode(loaded.root)
    }

    func config(receiver: String, exporter: String = "{}") -> String {
        """
        receivers:
          otlp:
            protocols: \(receiver)
        exporters:
          nop: \(exporter)
        service:
          pipelines:
            traces: { receivers: [otlp], exporters: [nop] }
        """
    }

    @Test("the same settings written another way (flow or block style, other lines) have the same source")
    func sameSettingsSameSource() throws {
        let flow = try self.configuration(self.config(receiver: "{ grpc: { endpoint: 127.0.0.1:4317 } }"))
        let block = try self.configuration("# a comment moves every line\n" + self.config(receiver: "\n      grpc:\n        endpoint: 127.0.0.1:4317"))
        let otlp = ComponentID(type: "otlp")
        #expect(flow.receivers[otlp]?.source == block.receivers[otlp]?.source)
        #expect(flow.receivers[otlp]?.source.isEmpty == false)
    }

    @Test("a changed value, a quoted string for a number, or an added key changes the source")
    func changedSettingsChangeSource() throws {
        let otlp = ComponentID(type: "otlp")
        let base = try self.configuration(self.config(receiver: "{ grpc: { endpoint: 127.0.0.1:4317 } }")).receivers[otlp]?.source
        for variant in [
            "{ grpc: { endpoint: 127.0.0.1:4318 } }",
            "{ grpc: { endpoint: \"127.0.0.1:4317\" } }",
            "{ grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size_mib: 8 } }",
        ] {
            let changed = try self.configuration(self.config(receiver: variant)).receivers[otlp]?.source
            #expect(changed != base, "\(variant)")
        }
    }
}
