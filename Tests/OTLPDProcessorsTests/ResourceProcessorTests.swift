import Foundation
import NIOCore
import OTLPDCore
import OTLPDProcessors
import OTLPDTestSupport
import OTLPDWire
import Testing

// The resource processor: the same actions, once per resource, on the
// resource's attributes; everything under the resource stays as it was.

struct ResourceProcessorTests {
    static let readme = """
        attributes:
          - key: cloud.availability_zone
            value: zone-1
            action: upsert
          - key: k8s.cluster.name
            from_attribute: k8s-cluster
            action: insert
          - key: redundant-attribute
            action: delete
        """

    /// One resource per attribute list, each with a scope of two items carrying their own attributes.
    func request(_ signal: Signal, _ resources: [Attrs?]) -> [TestResource] {
        resources.enumerated().map { index, attributes in
            let items: [String] =
                switch signal {
                case .traces: [OTLP.span("s\(index)", ["redundant-attribute": 1]), OTLP.span(["k8s-cluster": "item"])]
                case .logs: [OTLP.log(body: "b", ["redundant-attribute": 1]), OTLP.log()]
                case .metrics: [OTLP.metric("m\(index)", .histogram, [["redundant-attribute": 1], ["k8s-cluster": "item"]])]
                }
            return TestResource(attributes, [TestScope(name: "lib", version: "1", items)], schemaURL: "https://example.com/\(index)")
        }
    }

    @Test("the README example on every signal; items untouched byte for byte", arguments: Signal.allCases)
    func readmeExample(signal: Signal) async throws {
        let harness = try Harness.resource(Self.readme, signal)
        let input = try OTLP.encode(
            OTLP.request(
                signal,
                self.request(signal, [
                    ["service.name": "a", "redundant-attribute": true, "k8s-cluster": "c1", "cloud.availability_zone": "old"],
                    ["service.name": "b"],
                    [:],
                    nil,
                ])), signal)
        let before = try Output(input, signal: signal)
        let output = try await harness.run(input, itemCount: try WireValidator.validate(input, signal: signal).itemCount)
        #expect(
            try output.resources == [
                ["service.name": "a", "k8s-cluster": "c1", "cloud.availability_zone": "zone-1", "k8s.cluster.name": "c1"],
                ["service.name": "b", "cloud.availability_zone": "zone-1"],
                ["cloud.availability_zone": "zone-1"],
                // No resource at all: one is added.
                ["cloud.availability_zone": "zone-1"],
            ])
        #expect(try output.items == before.items)
        // Everything of each ResourceX but the resource is the same bytes.
        let inputResources = try protobufFields(input.bytes)
        let outputResources = try protobufFields(output.payload.bytes)
        #expect(inputResources.count == outputResources.count)
        for (original, rewritten) in zip(inputResources, outputResources) {
            let kept = { (fields: [(number: UInt64, wireType: UInt8, content: [UInt8], whole: [UInt8])]) in fields.filter { $0.number != 1 }.map(\.whole) }
            #expect(kept(try protobufFields(original.content)) == kept(try protobufFields(rewritten.content)))
        }
    }

    @Test("insert, update, upsert, delete, hash, extract and convert on resource attributes")
    func everyAction() async throws {
        let yaml = """
            attributes:
              - {key: host.name, action: hash}
              - {key: region, pattern: '^(?P<cloud_region>[a-z]+-[a-z]+)-(?P<zone>\\d)$', action: extract}
              - {key: port, action: convert, converted_type: int}
              - {key: env, value: prod, action: update}
              - {key: team, value: core, action: insert}
              - {pattern: '^tmp\\.', action: delete}
            """
        let harness = try Harness.resource(yaml)
        let output = try await harness.run([
            TestResource(
                ["host.name": "foo", "tmp.a": 1, "region": "eu-west-1", "port": "8080", "env": "dev", "team": "old", "tmp.b": 2], [TestScope([OTLP.span(["host.name": "foo"])])])
        ])
        #expect(
            try output.resources == [
                [
                    "host.name": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "region": "eu-west-1", "port": 8080, "env": "prod", "team": "old",
                    "cloud_region": "eu-west", "zone": "1",
                ]
            ])
        // The span keeps its own host.name.
        #expect(try output.items == [["host.name": "foo"]])
    }

    @Test("each resource is edited on its own, and a resource the actions do not change keeps its bytes")
    func severalResources() async throws {
        let harness = try Harness.resource("attributes: [{key: env, value: prod, action: update}]")
        let input = try OTLP.encode(
            OTLP.request(.traces, [TestResource(["env": "dev"], [TestScope([OTLP.span()])]), TestResource(["other": 1], [TestScope([OTLP.span()])])]), .traces)
        let output = try await harness.run(input, itemCount: 2)
        #expect(try output.resources == [["env": "prod"], ["other": 1]])
        #expect(try protobufFields(input.bytes)[1].whole == protobufFields(output.payload.bytes)[1].whole)
    }

    @Test("nothing changed: the very same payload goes on")
    func unchanged() async throws {
        let harness = try Harness.resource("attributes: [{key: missing, action: delete}, {key: x, from_attribute: nothing, action: insert}]")
        let input = try OTLP.encode(OTLP.request(.logs, [TestResource(["a": 1], [TestScope([OTLP.log(body: "b")])]), TestResource(nil, [TestScope([OTLP.log()])])]), .logs)
        try await harness.processor.consume(TelemetryBatch(signal: .logs, payload: input, itemCount: 2))
        let passed = try #require(harness.next.batches.first)
        #expect(passed.payload == input)
        #expect(sameStorage(passed.payload, input))
    }

    @Test("a resource that grows past 127 bytes, and a 16 KB value")
    func growth() async throws {
        let big = String(repeating: "y", count: 16384)
        let harness = try Harness.resource("attributes: [{key: big, value: '\(big)', action: upsert}]", .metrics)
        let output = try await harness.run([TestResource(["a": .string(String(repeating: "z", count: 100))], [TestScope([OTLP.metric("m", .sum, [["p": 1]])])])])
        #expect(try output.resources == [["a": .string(String(repeating: "z", count: 100)), "big": .string(big)]])
        #expect(try output.items == [["p": 1]])
    }

    @Test("the resource's other fields stay, whether its attributes are rewritten or added to")
    func resourceFields() async throws {
        let request = #"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"intValue":"1"}},{"key":"b","value":{"boolValue":true}}],"droppedAttributesCount":7},"scopeSpans":[{"spans":[]}],"schemaUrl":"s"}]}"#
        let input = try OTLP.encode(request, .traces)
        for (yaml, expected) in [
            ("attributes: [{key: a, action: delete}]", ["b": true] as Attrs), ("attributes: [{key: c, value: x, action: insert}]", ["a": 1, "b": true, "c": "x"]),
        ] {
            let output = try await Harness.resource(yaml).run(input, itemCount: 0)
            #expect(try output.resources == [expected])
            let resource = try #require(output.resourceObjects.first?["resource"] as? [String: Any])
            #expect((resource["droppedAttributesCount"] as? NSNumber)?.intValue == 7)
            #expect(output.resourceObjects.first?["schemaUrl"] as? String == "s")
        }
    }

    @Test("config: attributes is required, with at least one action; include and exclude are not keys here")
    func configErrors() throws {
        for (yaml, keyPath, word) in [
            ("{}", "processors.resource.attributes", "action"),
            ("attributes: []", "processors.resource.attributes", "at least one"),
            ("attributes:", "processors.resource.attributes", "action"),
            ("actions: [{key: a, action: delete}]", "processors.resource.attributes", "action"),
            ("attributes: [{key: a, action: upsert}]", "processors.resource.attributes[0].action", "value"),
            ("attributes: [{key: a, from_context: auth.subject, action: insert}]", "processors.resource.attributes[0].from_context", "not supported"),
            ("attributes: [{key: a, action: delete}]\ninclude: {match_type: strict, services: [a]}", "processors.resource.include", "unknown key"),
        ] {
            let errors = try Config.resourceErrors(yaml)
            #expect(errors.first?.keyPath == keyPath, "\(yaml): \(errors)")
            #expect(errors.first?.message.contains(word) == true, "\(yaml): \(errors)")
        }
        // `actions:` is the attributes processor's key, not this one's.
        #expect(try Config.resourceErrors("actions: [{key: a, action: delete}]").map(\.keyPath).sorted() == ["processors.resource.actions", "processors.resource.attributes"])
    }
}
