import NIOCore
import OTLPDCore
import OTLPDProcessors
import OTLPDWire
import Testing

// include / exclude, as the Collector's filter tests and documented
// examples use them. Each item processed gets `processed: true`, so the
// result is which items were selected, in request order.

/// Which spans of the request `rules` select.
func selection(_ rules: String, _ resources: [TestResource], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Bool] {
    try await selection(rules, .traces, resources, sourceLocation: sourceLocation)
}

/// Which items of the request `rules` select.
func selection(_ rules: String, _ signal: Signal, _ resources: [TestResource], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Bool] {
    let harness = try Harness.attributes("actions: [{key: processed, value: true, action: insert}]\n" + rules, signal, sourceLocation: sourceLocation)
    return try await harness.run(resources).items.map { $0["processed"] != nil }
}

/// One resource per service, each with one span holding `attributes`.
func spans(_ services: [(String?, Attrs)]) -> [TestResource] {
    services.map { TestResource.service($0.0, [OTLP.span($0.1)]) }
}

/// One span per name (and kind), under one service.
func named(_ names: [String], kinds: [Int?]? = nil, service: String = "svc") -> [TestResource] {
    [TestResource.service(service, names.enumerated().map { OTLP.span($0.element, kind: kinds?[$0.offset]) })]
}

struct SpanMatchTests {
    @Test("services and an attribute exclude: the FilterSpans table")
    func filterSpans() async throws {
        let rules = """
            include: {match_type: regexp, services: [svcA, "svcB.*"]}
            exclude: {match_type: strict, attributes: [{key: NoModification, value: true}]}
            """
        let result = try await selection(
            rules,
            spans([("svcB", [:]), ("svcB", ["NoModification": false]), ("noname", [:]), ("svcB", ["NoModification": true]), ("svcA", [:]), ("xsvcB2", [:])]))
        // The regexp searches: xsvcB2 matches svcB.* too.
        #expect(result == [true, true, false, false, true, true])
    }

    @Test("span names, strict: the ByNameStrict table")
    func byNameStrict() async throws {
        let rules = """
            include: {match_type: strict, span_names: [apply, dont_apply]}
            exclude: {match_type: strict, span_names: [dont_apply]}
            """
        let result = try await selection(rules, named(["apply", "incorrect_span_name", "dont_apply", "incorrect_span_name_with_attr", "apply2"]))
        #expect(result == [true, false, false, false, false])
    }

    @Test("span names, regexp: the ByNameRegexp table")
    func byNameRegexp() async throws {
        let rules = """
            include: {match_type: regexp, span_names: ['^apply.*']}
            exclude: {match_type: regexp, span_names: ['.*dont_apply$']}
            """
        let result = try await selection(rules, named(["apply_to_span_with_no_attrs", "apply_to_span_with_attr", "apply_dont_apply", "incorrect_span_name"]))
        #expect(result == [true, true, false, false])
    }

    @Test("services: strict is exact, and a resource without service.name is <nil-service-name>")
    func services() async throws {
        let resources = [
            TestResource.service("svcA", [OTLP.span()]), TestResource.service("svcA2", [OTLP.span()]), TestResource.service(nil, [OTLP.span()]),
            TestResource(nil, [TestScope([OTLP.span()])]), TestResource(["service.name": 5], [TestScope([OTLP.span()])]),
            TestResource.service("", [OTLP.span()]),
        ]
        #expect(try await selection("include: {match_type: strict, services: [svcA]}", resources) == [true, false, false, false, false, false])
        #expect(try await selection("include: {match_type: regexp, services: ['.*']}", resources) == [true, true, true, true, true, true])
        #expect(try await selection("include: {match_type: strict, services: [<nil-service-name>]}", resources) == [false, false, true, true, false, false])
        // A service.name that is not a string is matched as its text.
        #expect(try await selection("include: {match_type: strict, services: ['5']}", resources) == [false, false, false, false, true, false])
        #expect(try await selection("include: {match_type: regexp, services: ['^$']}", resources) == [false, false, false, false, false, true])
        #expect(try await selection("exclude: {match_type: regexp, services: [A]}", resources) == [false, false, true, true, true, true])
    }

    @Test("span kinds: strict names, and regexp over SPAN_KIND_* (unset is UNSPECIFIED)")
    func spanKinds() async throws {
        let names = ["absent", "unspecified", "internal", "server", "client", "producer", "consumer"]
        let resources = named(names, kinds: [nil, 0, 1, 2, 3, 4, 5])
        #expect(
            try await selection("include: {match_type: strict, span_kinds: [SPAN_KIND_SERVER, SPAN_KIND_CLIENT]}", resources)
                == [false, false, false, true, true, false, false])
        #expect(try await selection("include: {match_type: regexp, span_kinds: [UNSPECIFIED]}", resources) == [true, true, false, false, false, false, false])
        #expect(try await selection("include: {match_type: regexp, span_kinds: ['PRODUCER|CONSUMER']}", resources) == [false, false, false, false, false, true, true])
        #expect(try await selection("exclude: {match_type: strict, span_kinds: [SPAN_KIND_INTERNAL]}", resources) == [true, true, false, true, true, true, true])
    }

    @Test("every property given must match: services and span_names and attributes")
    func andAcrossProperties() async throws {
        let rules = "include: {match_type: strict, services: [svcA], span_names: [get], attributes: [{key: ok}]}"
        let resources = [
            TestResource.service("svcA", [OTLP.span("get", ["ok": 1]), OTLP.span("get"), OTLP.span("put", ["ok": 1])]),
            TestResource.service("svcB", [OTLP.span("get", ["ok": 1])]),
        ]
        #expect(try await selection(rules, resources) == [true, false, false, false])
    }

    @Test("attributes, strict: type and value must both be equal")
    func strictAttributeValues() async throws {
        let values: [Value] = [123, "123", 123.0, 124, true, "true", false, .map(["x": 1]), .array([1])]
        let resources = spans(values.map { ("svc", ["a": $0]) } + [("svc", [:]), ("svc", ["b": 123])])
        func expect(_ value: String, _ selected: [Int], sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let result = try await selection("include: {match_type: strict, attributes: [{key: a, value: \(value)}]}", resources)
            #expect(result == (0..<resources.count).map { selected.contains($0) }, "value: \(value)", sourceLocation: sourceLocation)
        }
        try await expect("123", [0])
        try await expect("'123'", [1])
        try await expect("123.0", [2])
        try await expect("true", [4])
        try await expect("'true'", [5])
        try await expect("false", [6])
        try await expect("{x: 1}", [7])
        try await expect("[1]", [8])
    }

    @Test("attributes, strict: maps are compared deeply, in any order; lists in order")
    func strictNestedValues() async throws {
        let resources = spans([
            ("svc", ["a": .map(["y": .array(["q", 2.5]), "x": 1])]), ("svc", ["a": .map(["x": 1])]), ("svc", ["a": .map(["x": 1, "y": .array(["q", 2.5]), "z": 1])]),
            ("svc", ["a": .map(["x": "1", "y": .array(["q", 2.5])])]), ("svc", ["a": .array([1, "q"])]), ("svc", ["a": .array(["q", 1])]),
        ])
        #expect(try await selection("include: {match_type: strict, attributes: [{key: a, value: {x: 1, y: [q, 2.5]}}]}", resources) == [true, false, false, false, false, false])
        #expect(try await selection("include: {match_type: strict, attributes: [{key: a, value: [1, q]}]}", resources) == [false, false, false, false, true, false])
    }

    @Test("attributes, regexp: strings, and bools and numbers as text; lists, maps and bytes never")
    func regexpAttributeValues() async throws {
        let values: [Value] = ["12x", 123, 123.5, true, 1e21, 0.0000001, .map(["k": "12"]), .array(["12"]), .bytes([0x31, 0x32]), .empty, "other"]
        let resources = spans(values.map { ("svc", ["a": $0]) } + [("svc", [:])])
        func expect(_ pattern: String, _ selected: [Int], sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let result = try await selection("include: {match_type: regexp, attributes: [{key: a, value: '\(pattern)'}]}", resources)
            #expect(result == (0..<resources.count).map { selected.contains($0) }, "pattern: \(pattern)", sourceLocation: sourceLocation)
        }
        try await expect("^12", [0, 1, 2])
        try await expect("^tru", [3])
        // Doubles as plain decimals, never with an exponent.
        try await expect("^1000000000000000000000$", [4])
        try await expect(#"^0\.0000001$"#, [5])
        try await expect(".*", [0, 1, 2, 3, 4, 5, 10])
        try await expect("", [0, 1, 2, 3, 4, 5, 10])
        try await expect("^123$", [1])
    }

    @Test("attributes: a key without a value is an existence check, needing no match_type")
    func keyOnly() async throws {
        let resources = spans([("svc", ["a": "x"]), ("svc", ["a": 0]), ("svc", ["a": .map([:])]), ("svc", ["a": .empty]), ("svc", ["b": 1]), ("svc", [:])])
        #expect(try await selection("include: {attributes: [{key: a}]}", resources) == [true, true, true, true, false, false])
        #expect(try await selection("exclude: {match_type: regexp, attributes: [{key: a}]}", resources) == [false, false, false, false, true, true])
    }

    @Test("attributes: every entry must match")
    func attributesAnd() async throws {
        let resources = spans([("svc", ["a": 1, "b": "x"]), ("svc", ["a": 1]), ("svc", ["b": "x"]), ("svc", ["b": "x", "a": 2])])
        #expect(try await selection("include: {match_type: strict, attributes: [{key: a, value: 1}, {key: b}]}", resources) == [true, false, false, false])
    }

    @Test("resources: strict, regexp and key-only, every entry must match")
    func resources() async throws {
        let resources = [
            TestResource(["host.type": "n1-standard-1", "env": "prod"], [TestScope([OTLP.span()])]), TestResource(["host.type": "n1-standard-2"], [TestScope([OTLP.span()])]),
            TestResource(nil, [TestScope([OTLP.span()])]), TestResource(["env": "prod"], [TestScope([OTLP.span(), OTLP.span()])]),
        ]
        // attributes/excluderesources
        #expect(try await selection("exclude: {match_type: strict, resources: [{key: host.type, value: n1-standard-1}]}", resources) == [false, true, true, true, true])
        #expect(try await selection("include: {match_type: regexp, resources: [{key: host.type, value: '^n1-'}]}", resources) == [true, true, false, false, false])
        #expect(try await selection("include: {resources: [{key: env}]}", resources) == [true, false, false, true, true])
        #expect(try await selection("include: {match_type: strict, resources: [{key: env, value: prod}, {key: host.type}]}", resources) == [true, false, false, false, false])
        // Span attributes are not resource attributes.
        #expect(try await selection("include: {resources: [{key: a}]}", spans([("svc", ["a": 1])])) == [false])
    }

    @Test("libraries: names, and versions (absent matches any, empty only empty)")
    func libraries() async throws {
        let scopes = [
            TestScope(name: "mongo-java-driver", version: "3.8.0", [OTLP.span()]), TestScope(name: "mongo-java-driver", version: "3.9.0", [OTLP.span()]),
            TestScope(name: "mongo-java-driver", [OTLP.span()]), TestScope(name: "other", version: "3.8.0", [OTLP.span()]), TestScope([OTLP.span()]),
        ]
        let resources = [TestResource.service("svc", []).with(scopes)]
        // attributes/excludelibrary
        #expect(try await selection(#"exclude: {match_type: strict, libraries: [{name: mongo-java-driver, version: "3.8.0"}]}"#, resources) == [false, true, true, true, true])
        #expect(try await selection("include: {match_type: strict, libraries: [{name: mongo-java-driver}]}", resources) == [true, true, true, false, false])
        #expect(try await selection(#"include: {match_type: strict, libraries: [{name: mongo-java-driver, version: ""}]}"#, resources) == [false, false, true, false, false])
        #expect(try await selection("include: {match_type: regexp, libraries: [{name: '^mongo', version: '^3\\.9'}]}", resources) == [false, true, false, false, false])
        #expect(try await selection(#"include: {match_type: regexp, libraries: [{name: mongo, version: ""}]}"#, resources) == [true, true, true, false, false])
        // Every entry must match the one scope, so two names never do.
        #expect(try await selection("include: {match_type: strict, libraries: [{name: mongo-java-driver}, {name: other}]}", resources) == [false, false, false, false, false])
    }

    @Test("the Collector's version table for strict libraries")
    func libraryVersionTable() async throws {
        let resources = [TestResource.service("svc", []).with([TestScope(name: "lib", [OTLP.span()]), TestScope(name: "lib", version: "1", [OTLP.span()])])]
        #expect(try await selection("include: {match_type: strict, libraries: [{name: lib}]}", resources) == [true, true])
        #expect(try await selection(#"include: {match_type: strict, libraries: [{name: lib, version: ""}]}"#, resources) == [true, false])
        #expect(try await selection(#"include: {match_type: strict, libraries: [{name: lib, version: "1"}]}"#, resources) == [false, true])
    }

    @Test("the regexp cache settings change nothing")
    func regexpCache() async throws {
        let rules = "include: {match_type: regexp, regexp: {cacheenabled: true, cachemaxnumentries: 1}, span_names: ['^a']}"
        #expect(try await selection(rules, named(["a1", "b", "a2", "a1", "b"])) == [true, false, true, true, false])
    }
}

struct DocumentedExampleTests {
    @Test("attributes/excludemulti")
    func excludeMulti() async throws {
        let harness = try Harness.attributes(
            """
            actions: [{key: credit_card, action: delete}, {key: duplicate_key, action: delete}]
            exclude:
              match_type: strict
              services: [svcA, svcB]
              attributes:
                - {key: env, value: dev}
                - {key: test_request}
            """)
        let output = try await harness.run(
            spans([
                ("svcB", ["env": "dev", "test_request": 123, "credit_card": 1234]), ("svcA", ["env": "dev", "test_request": false]),
                ("svcB", ["env": 1, "test_request": "dev", "credit_card": 1234]), ("svcC", ["env": "dev", "test_request": false, "duplicate_key": 1]),
            ]))
        #expect(
            try output.items == [
                ["env": "dev", "test_request": 123, "credit_card": 1234], ["env": "dev", "test_request": false], ["env": 1, "test_request": "dev"],
                ["env": "dev", "test_request": false],
            ])
    }

    @Test("attributes/selectiveprocessing")
    func selectiveProcessing() async throws {
        let rules = """
            include: {match_type: strict, services: [svcA, svcB]}
            exclude: {match_type: strict, attributes: [{key: redact_trace, value: false}]}
            """
        let result = try await selection(
            rules,
            spans([
                // The string "false" is not the bool false: not excluded.
                ("svcB", ["env": "production", "test_request": 123, "credit_card": 1234, "redact_trace": "false"]),
                ("svcA", ["env": "staging", "test_request": false, "redact_trace": true]),
                ("svcB", ["env": "production", "test_request": 123, "credit_card": 1234, "redact_trace": false]),
                ("svcC", ["env": "staging", "test_request": false]),
            ]))
        #expect(result == [true, true, false, false])
    }

    @Test("attributes/regexp")
    func regexp() async throws {
        let harness = try Harness.attributes(
            """
            include: {match_type: regexp, services: ["auth.*"]}
            exclude: {match_type: regexp, span_names: ["login.*"]}
            actions:
              - {key: password, action: update, value: obfuscated}
              - {key: token, action: delete}
            """)
        let secrets: Attrs = ["password": "hunter2", "token": "t"]
        let output = try await harness.run([
            TestResource.service("auth-service", [OTLP.span("get_user", secrets), OTLP.span("login_user", secrets), OTLP.span("relogin", secrets)]),
            TestResource.service("billing", [OTLP.span("get_user", secrets)]), TestResource.service("xauth", [OTLP.span("get", ["token": 1])]),
        ])
        // Searches, not full matches: "relogin" is excluded and "xauth" included.
        #expect(try output.items == [["password": "obfuscated"], secrets, secrets, secrets, [:]])
    }

    @Test("attributes/regexp2")
    func regexp2() async throws {
        let harness = try Harness.attributes(
            #"""
            include:
              match_type: regexp
              attributes:
                - {key: db.statement, value: 'SELECT \* FROM USERS.*'}
            actions:
              - {key: db.statement, action: update, value: "SELECT * FROM USERS [obfuscated]"}
            """#)
        let output = try await harness.run(
            spans([
                ("svc", ["db.statement": "SELECT * FROM USERS WHERE id = 1"]), ("svc", ["db.statement": "SELECT * FROM ORDERS"]),
                ("svc", ["db.statement": "select * from users"]), ("svc", ["other": "SELECT * FROM USERS"]),
            ]))
        #expect(
            try output.items == [
                ["db.statement": "SELECT * FROM USERS [obfuscated]"], ["db.statement": "SELECT * FROM ORDERS"], ["db.statement": "select * from users"],
                ["other": "SELECT * FROM USERS"],
            ])
    }

    @Test("attributes/includeservices: the patterns decide, whatever the README's svcA/svcB say")
    func includeServices() async throws {
        let result = try await selection(
            "include: {match_type: regexp, services: [\"auth.*\", \"login.*\"]}", spans([("svcA", [:]), ("svcB", [:]), ("svcC", [:]), ("auth", [:]), ("login-svc", [:]), ("my-login", [:])]))
        #expect(result == [false, false, false, true, true, true])
    }
}

struct LogMatchTests {
    func logs(_ records: [String], resource: Attrs = ["service.name": "svc"]) -> [TestResource] {
        [TestResource(resource, [TestScope(records)])]
    }

    @Test("log bodies: strict and regexp, over the body as text")
    func bodies() async throws {
        let records = self.logs([
            OTLP.log(body: "AUTH token"), OTLP.log(body: "AUTH"), OTLP.log(body: "auth token"), OTLP.log(body: 5), OTLP.log(body: .map(["b": 1, "a": "x"])),
            OTLP.log(body: .bytes([1])), OTLP.log(),
        ])
        #expect(try await selection("include: {match_type: strict, log_bodies: [AUTH token]}", .logs, records) == [true, false, false, false, false, false, false])
        #expect(try await selection("include: {match_type: regexp, log_bodies: ['AUTH.*']}", .logs, records) == [true, true, false, false, false, false, false])
        #expect(try await selection("include: {match_type: strict, log_bodies: ['5']}", .logs, records) == [false, false, false, true, false, false, false])
        #expect(try await selection(#"include: {match_type: strict, log_bodies: ['{"a":"x","b":1}']}"#, .logs, records) == [false, false, false, false, true, false, false])
        #expect(try await selection("include: {match_type: strict, log_bodies: [AQ==]}", .logs, records) == [false, false, false, false, false, true, false])
        // No body reads as "".
        #expect(try await selection("include: {match_type: regexp, log_bodies: ['^$']}", .logs, records) == [false, false, false, false, false, false, true])
    }

    @Test("log severity texts")
    func severityTexts() async throws {
        let records = self.logs([OTLP.log(severityText: "debug2"), OTLP.log(severityText: "info"), OTLP.log(), OTLP.log(severityText: "DEBUG")])
        #expect(try await selection("include: {match_type: regexp, log_severity_texts: ['debug.*']}", .logs, records) == [true, false, false, false])
        #expect(try await selection("include: {match_type: strict, log_severity_texts: [info, DEBUG]}", .logs, records) == [false, true, false, true])
        #expect(try await selection("exclude: {match_type: strict, log_severity_texts: [info]}", .logs, records) == [true, false, true, true])
    }

    @Test("log severity number: at least min; unset is match_undefined")
    func severityNumber() async throws {
        let records = self.logs([OTLP.log(), OTLP.log(severityNumber: 0), OTLP.log(severityNumber: 8), OTLP.log(severityNumber: 9), OTLP.log(severityNumber: 24)])
        #expect(try await selection("include: {log_severity_number: {min: 9}}", .logs, records) == [false, false, false, true, true])
        #expect(try await selection("include: {log_severity_number: {min: 9, match_undefined: true}}", .logs, records) == [true, true, false, true, true])
        #expect(try await selection("include: {log_severity_number: {match_undefined: true}}", .logs, records) == [true, true, true, true, true])
        #expect(try await selection("exclude: {log_severity_number: {min: 9}}", .logs, records) == [true, true, true, false, false])
        // Names are read as their first number (INFO is 9, WARN2 is 14).
        #expect(try await selection("include: {log_severity_number: {min: INFO}}", .logs, records) == [false, false, false, true, true])
        #expect(try await selection("include: {log_severity_number: {min: WARN2}}", .logs, records) == [false, false, false, false, true])
    }

    @Test("log records: resources, libraries and attributes, as the Collector's log filter tests use them")
    func logFilterTables() async throws {
        func record(_ name: String, _ attributes: Attrs = [:]) -> TestResource {
            TestResource(["name": .string(name)], [TestScope(name: "lib", version: "1", [OTLP.log(body: "b", attributes)])])
        }
        let first = """
            include: {match_type: regexp, resources: [{key: name, value: '^[^i].*'}]}
            exclude: {match_type: strict, attributes: [{key: NoModification, value: true}]}
            """
        #expect(
            try await selection(
                first, .logs,
                [record("apply to log records"), record("incorrect name for include property"), record("apply dont apply", ["NoModification": true]), record("x", ["NoModification": false])])
                == [true, false, false, true])
        let strict = """
            include: {match_type: strict, resources: [{key: name, value: apply}]}
            exclude: {match_type: strict, resources: [{key: name, value: dont_apply}]}
            """
        #expect(try await selection(strict, .logs, [record("apply"), record("dont_apply"), record("other")]) == [true, false, false])
        let regexp = """
            include: {match_type: regexp, resources: [{key: name, value: '^apply.*'}]}
            exclude: {match_type: regexp, resources: [{key: name, value: '.*dont_apply$'}]}
            """
        #expect(try await selection(regexp, .logs, [record("apply_to_log"), record("apply_dont_apply"), record("x")]) == [true, false, false])
        #expect(try await selection(#"include: {match_type: strict, libraries: [{name: lib, version: "1"}]}"#, .logs, [record("a")]) == [true])
        #expect(try await selection(#"include: {match_type: strict, libraries: [{name: lib, version: "2"}]}"#, .logs, [record("a")]) == [false])
    }
}

struct MetricMatchTests {
    @Test("the actions reach the data points of every metric type")
    func everyType() async throws {
        let metrics = OTLP.MetricKind.allCases.map { OTLP.metric("m.\($0)", $0, [["k": 1], ["k": 2]]) }
        let result = try await selection("", .metrics, [TestResource(["service.name": "svc"], [TestScope(metrics)])])
        #expect(result == Array(repeating: true, count: 10))
    }

    @Test("metric names, strict and regexp; a metric's points share its verdict")
    func metricNames() async throws {
        let resources = [
            TestResource(
                ["service.name": "svc"],
                [
                    TestScope([OTLP.metric("http.requests", .sum, [[:], ["a": 1]]), OTLP.metric("http.latency", .histogram, [[:]])]),
                    TestScope([OTLP.metric("db.calls", .gauge, [[:], [:], [:]]), OTLP.metric("queue", .summary, [[:]])]),
                ])
        ]
        #expect(try await selection("include: {match_type: strict, metric_names: [http.requests, queue]}", .metrics, resources) == [true, true, false, false, false, false, true])
        #expect(try await selection("include: {match_type: regexp, metric_names: ['^http\\.']}", .metrics, resources) == [true, true, true, false, false, false, false])
        #expect(try await selection("exclude: {match_type: regexp, metric_names: [latency, calls]}", .metrics, resources) == [true, true, false, false, false, false, true])
        let both = """
            include: {match_type: regexp, metric_names: ['^http']}
            exclude: {match_type: strict, metric_names: [http.latency]}
            """
        #expect(try await selection(both, .metrics, resources) == [true, true, false, false, false, false, false])
    }

    @Test("resources select metrics too (the Collector validates but ignores them)")
    func resources() async throws {
        let resources = [
            TestResource(["env": "prod"], [TestScope([OTLP.metric("a", .gauge, [[:], [:]])])]), TestResource(["env": "dev"], [TestScope([OTLP.metric("a", .sum, [[:]])])]),
        ]
        #expect(try await selection("include: {match_type: strict, resources: [{key: env, value: prod}]}", .metrics, resources) == [true, true, false])
        #expect(try await selection("include: {match_type: strict, metric_names: [a], resources: [{key: env, value: dev}]}", .metrics, resources) == [false, false, true])
    }
}

extension TestResource {
    func with(_ scopes: [TestScope]) -> TestResource {
        TestResource(self.attributes, scopes, schemaURL: self.schemaURL)
    }
}
