import Foundation
import NIOCore
import OTLPDCore
import OTLPDProcessors
import OTLPDTestSupport
import OTLPDWire
import Testing

// The Collector's attraction test tables, run on a span, a log record and a
// gauge data point each (`expectActions`). Where the Collector's expected
// result is a map, the order here is ours: kept keys stay where they were
// and new keys are appended.

struct AttributeActionTests {
    @Test("insert value")
    func insertValue() async throws {
        let yaml = "actions: [{key: attribute1, action: insert, value: 123}]"
        try await expectActions(yaml, [:], ["attribute1": 123])
        try await expectActions(yaml, ["anotherkey": "bob"], ["anotherkey": "bob", "attribute1": 123])
        try await expectActions(yaml, ["attribute1": "bob"], ["attribute1": "bob"])
    }

    @Test("insert from_attribute")
    func insertFromAttribute() async throws {
        let yaml = #"actions: [{key: "string key", action: insert, from_attribute: anotherkey}]"#
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["bob": 1], ["bob": 1])
        try await expectActions(yaml, ["anotherkey": 8_892_342], ["anotherkey": 8_892_342, "string key": 8_892_342])
        try await expectActions(yaml, ["anotherkey": 8_892_342, "string key": "here"], ["anotherkey": 8_892_342, "string key": "here"])
    }

    @Test("update value")
    func updateValue() async throws {
        let yaml = "actions: [{key: db.secret, action: update, value: redacted}]"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "foo"], ["boo": "foo"])
        try await expectActions(yaml, ["db.secret": "password1234"], ["db.secret": "redacted"])
        // The type changes with the value.
        try await expectActions(yaml, ["db.secret": 1234, "x": true], ["db.secret": "redacted", "x": true])
    }

    @Test("update from_attribute")
    func updateFromAttribute() async throws {
        let yaml = "actions: [{key: boo, action: update, from_attribute: foo}]"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "bob"], ["boo": "bob"])
        try await expectActions(yaml, ["foo": "over there"], ["foo": "over there"])
        try await expectActions(
            yaml, ["foo": "there is a party over here", "boo": "not here"], ["foo": "there is a party over here", "boo": "there is a party over here"])
        // Any type is copied as it is, lists and maps included.
        try await expectActions(yaml, ["boo": 1, "foo": .array([1, "a"])], ["boo": .array([1, "a"]), "foo": .array([1, "a"])])
    }

    @Test("upsert value")
    func upsertValue() async throws {
        let yaml = "actions: [{key: region, action: upsert, value: planet-earth}]"
        try await expectActions(yaml, [:], ["region": "planet-earth"])
        try await expectActions(yaml, ["mission": "to mars"], ["mission": "to mars", "region": "planet-earth"])
        try await expectActions(yaml, ["mission": "to mars", "region": "solar system"], ["mission": "to mars", "region": "planet-earth"])
    }

    @Test("upsert from_attribute")
    func upsertFromAttribute() async throws {
        let yaml = "actions: [{key: new_user_key, action: upsert, from_attribute: user_key}]"
        let foo: Value = "casper the friendly ghost"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "ghosts are scary"], ["boo": "ghosts are scary"])
        try await expectActions(yaml, ["user_key": 2245, "foo": foo], ["user_key": 2245, "foo": foo, "new_user_key": 2245])
        try await expectActions(yaml, ["user_key": 2245, "new_user_key": 5422, "foo": foo], ["user_key": 2245, "new_user_key": 2245, "foo": foo])
    }

    @Test("value types from YAML: int, double, bool, quoted string, map and list")
    func valueTypes() async throws {
        let yaml = """
            actions:
              - {key: i, value: 2245, action: insert}
              - {key: d, value: 3.14, action: insert}
              - {key: b, value: true, action: insert}
              - {key: s, value: "2245", action: insert}
              - {key: m, value: {a: 1, b: [x, 2.5]}, action: insert}
              - {key: l, value: [1, "two", false], action: insert}
            """
        try await expectActions(
            yaml, [:],
            [
                "i": 2245, "d": 3.14, "b": true, "s": "2245", "m": .map(["a": 1, "b": .array(["x", 2.5])]),
                "l": .array([1, "two", false]),
            ])
    }

    @Test("from_attribute naming the key itself changes nothing")
    func fromAttributeSameKey() async throws {
        for action in ["insert", "update", "upsert"] {
            try await expectActions("actions: [{key: boo, action: \(action), from_attribute: boo}]", ["boo": "ghosts are scary"], ["boo": "ghosts are scary"])
        }
    }

    @Test("action names are case-insensitive")
    func caseInsensitiveActions() async throws {
        let yaml = #"""
            actions:
              - {key: one, action: Delete}
              - {key: two, value: 123, action: INSERT}
              - {key: three, from_attribute: two, action: upDaTE}
              - {key: five, from_attribute: two, action: upsert}
              - {key: path, pattern: '^/api/v1/document/(?P<documentId>.*)/update$', action: EXTRact}
            """#
        try await expectActions(
            yaml, ["one": 1, "three": 3, "path": "/api/v1/document/42/update"],
            ["three": 123, "path": "/api/v1/document/42/update", "two": 123, "five": 123, "documentId": "42"])
    }

    // MARK: delete

    @Test("delete by key and pattern")
    func deleteKeyAndPattern() async throws {
        let yaml = "actions: [{key: duplicate_key, pattern: '^duplicate_key_.', action: delete}]"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "ghosts are scary"], ["boo": "ghosts are scary"])
        try await expectActions(yaml, ["duplicate_key": 3245.6, "original_key": 3245.6], ["original_key": 3245.6])
        // `^` anchors the search, so not_duplicate_key stays.
        try await expectActions(
            yaml,
            [
                "duplicate_key_a": 3245.6, "duplicate_key_b": 3245.6, "duplicate_key_c": 3245.6, "original_key": 3245.6,
                "not_duplicate_key": 3246.6,
            ],
            ["original_key": 3245.6, "not_duplicate_key": 3246.6])
    }

    @Test("delete by pattern only: an unanchored search")
    func deletePatternOnly() async throws {
        let yaml = "actions: [{pattern: 'duplicate.*', action: delete}]"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "ghosts are scary"], ["boo": "ghosts are scary"])
        try await expectActions(yaml, ["duplicate_key": 3245.6, "original_key": 3245.6], ["original_key": 3245.6])
        try await expectActions(yaml, ["a": 1, "not_duplicate": 2, "b": 3], ["a": 1, "b": 3])
    }

    @Test("delete by key only; a missing key is no change")
    func deleteKey() async throws {
        let yaml = "actions: [{key: credit_card, action: delete}, {key: duplicate_key, action: delete}]"
        // The remaining keys keep their order (the Collector's map moves its last entry into the gap instead).
        try await expectActions(
            yaml, ["a": 1, "credit_card": "1234", "b": 2, "duplicate_key": true, "c": 3], ["a": 1, "b": 2, "c": 3])
        try await expectActions(yaml, ["a": 1], ["a": 1])
        try await expectActions(yaml, ["credit_card": "1234"], [:])
    }

    // MARK: hash

    @Test("hash by key and pattern: SHA-256 hex of a string's bytes, a bool's byte, a number's 8 bytes")
    func hashTable() async throws {
        let yaml = "actions: [{key: updateme, pattern: '^updatemeby.*', action: hash}]"
        let falseDigest: Value = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "foo"], ["boo": "foo"])
        try await expectActions(yaml, ["updateme": "foo"], ["updateme": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"])
        try await expectActions(yaml, ["updateme": 24], ["updateme": "cbb032642036ec7043fa4529f06c9c9d8b12fa70ea6799a19ca8321a808d86fa"])
        try await expectActions(yaml, ["updateme": 2.4], ["updateme": "df3022be03461368aa299f2f30d440fd3ca45c9b62af40733f10296a53d42859"])
        try await expectActions(yaml, ["updateme": true], ["updateme": "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a"])
        try await expectActions(yaml, ["updateme": false], ["updateme": falseDigest])
        try await expectActions(
            yaml, ["updatemebyregexp": false, "donotupdatemebyregexp": false], ["updatemebyregexp": falseDigest, "donotupdatemebyregexp": false])
    }

    @Test("hash: the processor-level digests")
    func hashProcessorDigests() async throws {
        let yaml = """
            actions:
              - {key: user.email, action: hash}
              - {key: user.id, action: hash}
              - {key: user.balance, action: hash}
              - {key: user.authenticated, action: hash}
            """
        try await expectActions(
            yaml, ["user.email": "john.doe@example.com", "user.id": 10, "user.balance": 99.1, "user.authenticated": true],
            [
                "user.email": "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f",
                "user.id": "a111f275cc2e7588000001d300a31e76336d15b9d314cd1a1d8f3d3556975eed",
                "user.balance": "05fabd78b01be9692863cb0985f600c99da82979af18db5c55173c2a30adb924",
                "user.authenticated": "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a",
            ])
    }

    @Test("hash: negative ints, UTF-8, empty strings and values without bytes")
    func hashEdges() async throws {
        let yaml = "actions: [{pattern: '^h', action: hash}]"
        try await expectActions(yaml, ["h": -1], ["h": "12a3ae445661ce5dee78d0650d33362dec29c4f82af05e7e57fb595bbbacf0ca"])
        try await expectActions(yaml, ["h": "héllo"], ["h": "3c48591d8d098a4538f5e013dfcf406e948eac4d3277b10bf614e295d6068179"])
        // No bytes to hash: the value becomes the empty string.
        try await expectActions(yaml, ["h": ""], ["h": ""])
        try await expectActions(yaml, ["h1": .map(["a": 1]), "h2": .array([1]), "h3": .bytes([1, 2]), "h4": .empty], ["h1": "", "h2": "", "h3": "", "h4": ""])
    }

    @Test("hash: a key the pattern also matches is hashed twice")
    func hashTwice() async throws {
        let digestOfDigest: Value = "505221025f9701f8a05cc22cbafeec897598b2924a9d665cbc10f0073d66da20"
        try await expectActions("actions: [{key: updateme, pattern: '^update', action: hash}]", ["updateme": "foo"], ["updateme": digestOfDigest])
    }

    // MARK: extract

    @Test("extract: the Collector's table")
    func extractTable() async throws {
        let yaml = #"actions: [{key: user_key, pattern: '^\/api\/v1\/document\/(?P<new_user_key>.*)\/update\/(?P<version>.*)$', action: extract}]"#
        let foo: Value = "casper the friendly ghost"
        let path: Value = "/api/v1/document/12345678/update/v1"
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["boo": "ghosts are scary"], ["boo": "ghosts are scary"])
        try await expectActions(yaml, ["boo": "ghosts are scary", "user_key": 1234], ["boo": "ghosts are scary", "user_key": 1234])
        try await expectActions(yaml, ["user_key": "does not match", "boo": "x"], ["user_key": "does not match", "boo": "x"])
        try await expectActions(yaml, ["user_key": "/api/v1/document/12345678/update", "boo": "x"], ["user_key": "/api/v1/document/12345678/update", "boo": "x"])
        try await expectActions(yaml, ["user_key": path, "foo": foo], ["user_key": path, "foo": foo, "new_user_key": "12345678", "version": "v1"])
        try await expectActions(
            yaml, ["user_key": path, "new_user_key": "2321", "version": "na", "foo": foo],
            ["user_key": path, "new_user_key": "12345678", "version": "v1", "foo": foo])
        try await expectActions(
            yaml, ["user_key": path, "new_user_key": "2321", "foo": foo], ["user_key": path, "new_user_key": "12345678", "foo": foo, "version": "v1"])
    }

    @Test("extract: the regex_insert example (with its unnamed group made non-capturing)")
    func extractURL() async throws {
        let yaml = #"actions: [{key: http.url, pattern: '^(?P<http_protocol>.*):\/\/(?P<http_domain>.*)\/(?P<http_path>.*)(?:\?|\&)(?P<http_query_params>.*)', action: extract}]"#
        let url: Value = "http://example.com/path?queryParam1=value1,queryParam2=value2"
        try await expectActions(
            yaml, ["http.url": url],
            [
                "http.url": url, "http_protocol": "http", "http_domain": "example.com", "http_path": "path",
                "http_query_params": "queryParam1=value1,queryParam2=value2",
            ])
    }

    @Test("extract: a group that takes no part writes an empty string; a group may overwrite the source")
    func extractEdges() async throws {
        let optional = #"actions: [{key: u, pattern: '^(?P<scheme>https?)://(?P<host>[^/:]+)(?::(?P<port>\d+))?', action: extract}]"#
        try await expectActions(optional, ["u": "http://example.com/x"], ["u": "http://example.com/x", "scheme": "http", "host": "example.com", "port": ""])
        try await expectActions(
            optional, ["u": "https://example.com:8443/x", "port": 1], ["u": "https://example.com:8443/x", "port": "8443", "scheme": "https", "host": "example.com"])
        // Alternatives: the group of the branch not taken is "".
        try await expectActions("actions: [{key: k, pattern: '(?P<a>x)|(?P<b>y)', action: extract}]", ["k": "zx"], ["k": "zx", "a": "x", "b": ""])
        try await expectActions("actions: [{key: k, pattern: '^(?P<k>a)', action: extract}]", ["k": "abc"], ["k": "a"])
        // Only strings are matched: a number is not rendered as text first.
        try await expectActions("actions: [{key: k, pattern: '(?P<d>\\d)', action: extract}]", ["k": 5], ["k": 5])
    }

    // MARK: convert

    static let convert = """
        actions:
          - {key: to.int, action: convert, converted_type: int}
          - {key: to.double, action: convert, converted_type: double}
          - {key: to.string, action: convert, converted_type: string}
        """

    @Test("convert to int")
    func convertToInt() async throws {
        let yaml = Self.convert
        try await expectActions(yaml, ["to.int": 1], ["to.int": 1])
        try await expectActions(yaml, ["to.int": true], ["to.int": 1])
        try await expectActions(yaml, ["to.int": false], ["to.int": 0])
        try await expectActions(yaml, ["to.int": "123"], ["to.int": 123])
        try await expectActions(yaml, ["to.int": "-5"], ["to.int": -5])
        try await expectActions(yaml, ["to.int": "+7"], ["to.int": 7])
        try await expectActions(yaml, ["to.int": 2.9], ["to.int": 2])
        try await expectActions(yaml, ["to.int": -2.9], ["to.int": -2])
        // Not a decimal int64: unchanged.
        for text in ["int-10", "123.6", "1e3", " 1", "1 ", "1_000", "0x10", "", "9223372036854775808"] {
            try await expectActions(yaml, ["to.int": .string(text)], ["to.int": .string(text)])
        }
        try await expectActions(yaml, ["to.int": "9223372036854775807"], ["to.int": .int(.max)])
        for value: Value in [.map(["a": 1]), .array([1]), .bytes([1]), .empty] {
            try await expectActions(yaml, ["to.int": value], ["to.int": value])
        }
    }

    @Test("convert to double")
    func convertToDouble() async throws {
        let yaml = Self.convert
        try await expectActions(yaml, ["to.double": "123"], ["to.double": 123.0])
        try await expectActions(yaml, ["to.double": "123.6"], ["to.double": 123.6])
        try await expectActions(yaml, ["to.double": "3.141e2"], ["to.double": 314.1])
        try await expectActions(yaml, ["to.double": "0x1p-2"], ["to.double": 0.25])
        try await expectActions(yaml, ["to.double": "inf"], ["to.double": .double(.infinity)])
        try await expectActions(yaml, ["to.double": "-Infinity"], ["to.double": .double(-.infinity)])
        try await expectActions(yaml, ["to.double": "NaN"], ["to.double": .double(.nan)])
        try await expectActions(yaml, ["to.double": 5], ["to.double": 5.0])
        try await expectActions(yaml, ["to.double": true], ["to.double": 1.0])
        try await expectActions(yaml, ["to.double": false], ["to.double": 0.0])
        try await expectActions(yaml, ["to.double": 2.5], ["to.double": 2.5])
        // Not a float64 (or out of its range): unchanged.
        for text in ["int-10", "1e400", " 1.5", "", "1.5x"] {
            try await expectActions(yaml, ["to.double": .string(text)], ["to.double": .string(text)])
        }
        for value: Value in [.map(["a": 1]), .array([1]), .bytes([1]), .empty] {
            try await expectActions(yaml, ["to.double": value], ["to.double": value])
        }
    }

    @Test("convert to string: numbers as Go's JSON writes them, maps and lists as JSON with sorted keys")
    func convertToString() async throws {
        let yaml = Self.convert
        let cases: [(Value, String)] = [
            (99.1, "99.1"), (123.0, "123"), (3245.6, "3245.6"), (0.0000001, "1e-7"), (0.000001, "0.000001"), (1e21, "1e+21"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"), (-2.5, "-2.5"), (10, "10"), (-9_223_372_036_854_775_808, "-9223372036854775808"),
            (true, "true"), (false, "false"), (.bytes([0, 255, 16]), "AP8Q"), (.bytes([1]), "AQ=="), (.empty, ""),
            (.map(["b": "x", "a": 1]), #"{"a":1,"b":"x"}"#), (.array([1, "a", true]), #"[1,"a",true]"#),
            (.map(["z": .array([1.5, .empty, .bytes([255])]), "h": "<&>", "n": .map([:])]), #"{"h":"\u003c\u0026\u003e","n":{},"z":[1.5,null,"/w=="]}"#),
            (.array([]), "[]"), ("already", "already"),
        ]
        for (input, text) in cases {
            try await expectActions(yaml, ["to.string": input], ["to.string": .string(text)])
        }
    }

    @Test("convert to string: non-finite doubles read as Go's encoder error, and a map holding one as nothing")
    func convertNonFiniteToString() async throws {
        let yaml = Self.convert
        try await expectActions(yaml, ["to.string": .double(.nan)], ["to.string": "json: unsupported value: NaN"])
        try await expectActions(yaml, ["to.string": .double(.infinity)], ["to.string": "json: unsupported value: +Inf"])
        try await expectActions(yaml, ["to.string": .double(-.infinity)], ["to.string": "json: unsupported value: -Inf"])
        try await expectActions(yaml, ["to.string": .map(["a": .double(.nan)])], ["to.string": ""])
        try await expectActions(yaml, ["to.string": .array([1, .double(.infinity)])], ["to.string": ""])
    }

    @Test("convert of a missing key changes nothing")
    func convertMissing() async throws {
        try await expectActions(Self.convert, ["other": "1"], ["other": "1"])
        try await expectActions(Self.convert, ["to.int": "1", "to.double": "2", "to.string": 3], ["to.int": 1, "to.double": 2.0, "to.string": "3"])
    }

    // MARK: default_value

    @Test("default_value with insert")
    func defaultInsert() async throws {
        let yaml = #"actions: [{key: env, from_attribute: environment, default_value: "production", action: insert}]"#
        try await expectActions(yaml, [:], ["env": "production"])
        try await expectActions(yaml, ["environment": "staging"], ["environment": "staging", "env": "staging"])
        try await expectActions(yaml, ["env": "existing"], ["env": "existing"])
    }

    @Test("default_value with update")
    func defaultUpdate() async throws {
        let yaml = #"actions: [{key: service.namespace, from_attribute: namespace, default_value: "default", action: update}]"#
        try await expectActions(yaml, [:], [:])
        try await expectActions(yaml, ["service.namespace": "old"], ["service.namespace": "default"])
        try await expectActions(yaml, ["namespace": "custom", "service.namespace": "old"], ["namespace": "custom", "service.namespace": "custom"])
    }

    @Test("default_value with upsert")
    func defaultUpsert() async throws {
        let yaml = #"actions: [{key: region, from_attribute: cloud.region, default_value: "us-east-1", action: upsert}]"#
        try await expectActions(yaml, [:], ["region": "us-east-1"])
        try await expectActions(yaml, ["region": "old-value"], ["region": "us-east-1"])
        try await expectActions(yaml, ["cloud.region": "eu-west-1"], ["cloud.region": "eu-west-1", "region": "eu-west-1"])
        // value wins over default_value (and the two together are not "several sources").
        try await expectActions(#"actions: [{key: region, value: "us-west-2", default_value: "us-east-1", action: upsert}]"#, [:], ["region": "us-west-2"])
    }

    @Test("default_value keeps its YAML type")
    func defaultTypes() async throws {
        let cases: [(String, Value)] = [
            ("default_string", "default_string"), ("42", 42), ("true", true), ("3.14", 3.14), ("{a: 1}", .map(["a": 1])), ("[1, x]", .array([1, "x"])),
        ]
        for (yaml, value) in cases {
            try await expectActions("actions: [{key: k, from_attribute: missing, default_value: \(yaml), action: insert}]", [:], ["k": value])
        }
    }

    @Test("default_value across several actions")
    func defaultSeveral() async throws {
        let yaml = """
            actions:
              - {key: env, from_attribute: environment, default_value: prod, action: insert}
              - {key: region, from_attribute: cloud.region, default_value: us-east-1, action: insert}
              - {key: tier, value: frontend, action: insert}
            """
        try await expectActions(
            yaml, ["cloud.region": "eu-west-1"], ["cloud.region": "eu-west-1", "env": "prod", "region": "eu-west-1", "tier": "frontend"])
    }

    // MARK: Ordering

    @Test("each action sees what the ones before it did")
    func ordering() async throws {
        let yaml = """
            actions:
              - {key: operation, action: insert, value: default}
              - {key: svc.operation, action: upsert, from_attribute: operation}
              - {key: operation, action: delete}
            """
        let foo: Value = "casper the friendly ghost"
        try await expectActions(yaml, ["foo": foo], ["foo": foo, "svc.operation": "default"])
        try await expectActions(yaml, ["foo": foo, "operation": "arithmetic"], ["foo": foo, "svc.operation": "arithmetic"])
        try await expectActions(yaml, ["foo": foo, "svc.operation": "some value"], ["foo": foo, "svc.operation": "default"])
        try await expectActions(yaml, ["foo": foo, "operation": "arithmetic", "svc.operation": "add"], ["foo": foo, "svc.operation": "arithmetic"])
    }

    @Test("the attributes/complex example, span by span")
    func complexExample() async throws {
        let yaml = """
            actions:
              - {key: operation, value: default, action: insert}
              - {key: svc.operation, from_attribute: operation, action: upsert}
              - {key: operation, action: delete}
            """
        let harness = try Harness.attributes(yaml)
        let spans: [Attrs] = [
            ["timeout": 10, "svc.operation": "addition", "operation": "addition"],
            ["operation": "subtract", "math_value": 123],
            ["timeout": 10, "math_value": 4],
            ["svc.operation": "division", "timeout": 3],
        ]
        let output = try await harness.run([TestResource.service("svcA", spans.map { OTLP.span($0) })])
        #expect(
            try output.items == [
                ["timeout": 10, "svc.operation": "addition"],
                ["math_value": 123, "svc.operation": "subtract"],
                ["timeout": 10, "math_value": 4, "svc.operation": "default"],
                // Overwritten by the upsert, which copies the `default` just inserted.
                ["svc.operation": "default", "timeout": 3],
            ])
    }

    @Test("the README's action list")
    func readmeExample() async throws {
        let yaml = """
            actions:
              - key: db.table
                action: delete
              - key: redacted_span
                value: true
                action: upsert
              - key: copy_key
                from_attribute: key_original
                action: update
              - key: account_id
                value: 2245
                action: insert
              - key: account_password
                action: delete
              - key: account_email
                action: hash
              - key: http.status_code
                action: convert
                converted_type: int
              - key: region
                from_attribute: cloud.region
                default_value: "us-east-1"
                action: insert
            """
        try await expectActions(
            yaml,
            [
                "db.table": "users", "copy_key": "old", "key_original": "new", "account_password": "hunter2",
                "account_email": "john.doe@example.com", "http.status_code": "200",
            ],
            [
                "copy_key": "new", "key_original": "new", "account_email": "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f",
                "http.status_code": 200, "redacted_span": true, "account_id": 2245, "region": "us-east-1",
            ])
        // copy_key is only updated when both keys exist.
        try await expectActions(yaml, ["copy_key": "old", "cloud.region": "eu"], ["copy_key": "old", "cloud.region": "eu", "redacted_span": true, "account_id": 2245, "region": "eu"])
    }

    @Test("attributes of span events and links, resources and scopes are not touched")
    func onlyItemAttributes() async throws {
        let harness = try Harness.attributes("actions: [{key: k, action: delete}, {key: added, value: 1, action: insert}]")
        let event = #","events":[{"name":"e","timeUnixNano":"1","attributes":[{"key":"k","value":{"stringValue":"event"}}]}]"#
        let link = #","links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{"key":"k","value":{"intValue":"1"}}]}]"#
        let resource = TestResource(["k": "resource"], [TestScope(name: "lib", [OTLP.span("s", ["k": "span"], fieldsAfter: event + link)])])
        let output = try await harness.run([resource])
        #expect(try output.items == [["added": 1]])
        #expect(try output.resources == [["k": "resource"]])
        let span = try #require(output.itemObjects.first)
        let events = try #require(span["events"] as? [[String: Any]])
        #expect(try Attrs(json: events.first?["attributes"]) == ["k": "event"])
        let links = try #require(span["links"] as? [[String: Any]])
        #expect(try Attrs(json: links.first?["attributes"]) == ["k": 1])
    }
}

// MARK: Config errors

struct AttributesConfigTests {
    /// The single error `yaml` gives; its key path and message.
    func error(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ConfigError {
        let errors = try Config.attributesErrors(yaml)
        try #require(errors.count == 1, "expected one error, got \(errors)", sourceLocation: sourceLocation)
        return errors[0]
    }

    func expectError(_ yaml: String, at keyPath: String, saying words: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let error = try self.error(yaml, sourceLocation: sourceLocation)
        #expect(error.keyPath == keyPath, sourceLocation: sourceLocation)
        for word in words {
            #expect(error.message.contains(word), "'\(error.message)' does not say '\(word)'", sourceLocation: sourceLocation)
        }
    }

    let base = "processors.attributes"

    @Test("actions missing, empty or not a list")
    func noActions() throws {
        try self.expectError("include: {match_type: strict, services: [a]}", at: "\(base).actions", saying: ["action"])
        try self.expectError("actions: []", at: "\(base).actions", saying: ["at least one"])
        try self.expectError("actions: {key: a}", at: "\(base).actions", saying: ["list"])
    }

    @Test("an unknown action or none")
    func unknownAction() throws {
        try self.expectError("actions: [{key: invalid, action: invalid}]", at: "\(base).actions[0].action", saying: ["'invalid'", "insert", "convert"])
        try self.expectError("actions: [{key: a, value: 1}]", at: "\(base).actions[0].action", saying: ["action"])
    }

    @Test("a missing or empty key")
    func missingKey() throws {
        try self.expectError("actions: [{key: one, action: delete}, {value: 123, action: upsert}]", at: "\(base).actions[1].key", saying: ["key"])
        try self.expectError(#"actions: [{key: one, action: delete}, {key: "", value: 123, action: upsert}]"#, at: "\(base).actions[1].key", saying: ["key"])
        try self.expectError("actions: [{action: delete}]", at: "\(base).actions[0].key", saying: ["key", "pattern"])
        try self.expectError("actions: [{action: hash}]", at: "\(base).actions[0].key", saying: ["key", "pattern"])
        try self.expectError("actions: [{pattern: '(?P<a>.*)', action: extract}]", at: "\(base).actions[0].key", saying: ["key"])
        try self.expectError("actions: [{converted_type: int, action: convert}]", at: "\(base).actions[0].key", saying: ["key"])
    }

    @Test("insert, update and upsert need one value source")
    func valueSources() throws {
        for action in ["insert", "update", "upsert"] {
            try self.expectError("actions: [{key: MissingValueFromAttributes, action: \(action)}]", at: "\(base).actions[0].action", saying: ["value", "from_attribute"])
        }
        // An explicit null is no value.
        try self.expectError("actions: [{key: k, value: null, action: insert}]", at: "\(base).actions[0].action", saying: ["value"])
        try self.expectError("actions: [{key: BothSet, value: 123, from_attribute: aa, action: upsert}]", at: "\(base).actions[0].from_attribute", saying: ["not both"])
    }

    @Test("fields an action does not use")
    func unusedFields() throws {
        try self.expectError(
            "actions: [{key: key, pattern: '(?P<operation_website>.*?)$', from_attribute: aa, action: insert}]", at: "\(base).actions[0].pattern",
            saying: ["pattern", "insert"])
        try self.expectError("actions: [{key: k, value: v, action: delete}]", at: "\(base).actions[0].value", saying: ["delete"])
        try self.expectError("actions: [{key: k, from_attribute: v, action: hash}]", at: "\(base).actions[0].from_attribute", saying: ["hash"])
        try self.expectError(
            "actions: [{key: Key, pattern: '(?P<operation_website>.*?)$', value: value, action: extract}]", at: "\(base).actions[0].value", saying: ["extract"])
        try self.expectError(
            "actions: [{key: key, pattern: '(?P<operation_website>.*?)$', from_attribute: aa, action: extract}]", at: "\(base).actions[0].from_attribute",
            saying: ["extract"])
        try self.expectError("actions: [{key: k, default_value: d, action: convert, converted_type: int}]", at: "\(base).actions[0].default_value", saying: ["convert"])
        try self.expectError("actions: [{key: k, pattern: x, action: convert, converted_type: int}]", at: "\(base).actions[0].pattern", saying: ["convert"])
        try self.expectError("actions: [{key: k, value: 1, converted_type: int, action: upsert}]", at: "\(base).actions[0].converted_type", saying: ["convert"])
        try self.expectError("actions: [{key: k, action: delete, colour: red}]", at: "\(base).actions[0].colour", saying: ["unknown key"])
    }

    @Test("extract needs a pattern whose every group has a name")
    func extractPatterns() throws {
        try self.expectError("actions: [{key: aa, action: extract}]", at: "\(base).actions[0].pattern", saying: ["pattern"])
        try self.expectError("actions: [{key: aa, pattern: '.*$', action: extract}]", at: "\(base).actions[0].pattern", saying: ["no named groups"])
        try self.expectError(
            #"actions: [{key: aa, pattern: '^\/api\/v1\/document\/(?P<new_user_key>.*)\/update\/(.*)$', action: extract}]"#, at: "\(base).actions[0].pattern",
            saying: ["name"])
        // The README's regex_insert example has an unnamed group, (\?|\&).
        try self.expectError(
            #"actions: [{key: http.url, pattern: '^(?P<http_protocol>.*):\/\/(?P<http_domain>.*)\/(?P<http_path>.*)(\?|\&)(?P<http_query_params>.*)', action: extract}]"#,
            at: "\(base).actions[0].pattern", saying: ["name"])
    }

    @Test("a pattern that does not compile")
    func badPatterns() throws {
        try self.expectError("actions: [{key: aa, pattern: '(?P<invalid.regex>.*?)$', action: extract}]", at: "\(base).actions[0].pattern", saying: ["not a valid regular expression"])
        try self.expectError("actions: [{key: a, action: delete}, {pattern: '([a-z]', action: delete}]", at: "\(base).actions[1].pattern", saying: ["([a-z]"])
        try self.expectError("actions: [{pattern: '*', action: hash}]", at: "\(base).actions[0].pattern", saying: ["not a valid regular expression"])
    }

    @Test("convert needs a converted_type of int, double or string")
    func convertTypes() throws {
        try self.expectError("actions: [{key: k, action: convert}]", at: "\(base).actions[0].converted_type", saying: ["int", "double", "string"])
        try self.expectError("actions: [{key: k, action: convert, converted_type: array}]", at: "\(base).actions[0].converted_type", saying: ["'array'"])
        // As in the Collector, only `action` is case-insensitive.
        try self.expectError("actions: [{key: k, action: convert, converted_type: INT}]", at: "\(base).actions[0].converted_type", saying: ["'INT'"])
    }

    @Test("from_context is refused")
    func fromContext() throws {
        let refused = try Config.attributesErrors("actions: [{key: origin, from_context: metadata.origin, action: insert}]")
        #expect(refused.first?.keyPath == "\(base).actions[0].from_context")
        #expect(refused.first?.message.contains("not supported") == true)
        let errors = try Config.attributesErrors("actions: [{key: t, from_context: metadata.tenant, default_value: x, action: upsert}]")
        #expect(errors.map(\.keyPath) == ["\(base).actions[0].from_context"])
    }

    @Test("several mistakes are all reported, each at its action")
    func severalErrors() throws {
        let errors = try Config.attributesErrors("actions: [{key: a, action: nope}, {key: b, action: insert}, {key: c, action: convert, converted_type: x}]")
        #expect(errors.map(\.keyPath) == ["\(base).actions[0].action", "\(base).actions[1].action", "\(base).actions[2].converted_type"])
    }

    @Test("match_type missing or unknown")
    func matchType() throws {
        let actions = "actions: [{key: a, action: delete}]\n"
        try self.expectError(actions + "include: {services: [svcA]}", at: "\(base).include.match_type", saying: ["services", "match_type"])
        try self.expectError(actions + "exclude: {span_names: [a]}", at: "\(base).exclude.match_type", saying: ["span_names"])
        try self.expectError(actions + "include: {libraries: [{name: a}]}", at: "\(base).include.match_type", saying: ["libraries"])
        try self.expectError(actions + "include: {attributes: [{key: a, value: b}]}", at: "\(base).include.match_type", saying: ["attributes"])
        try self.expectError(actions + "include: {match_type: fuzzy, services: [a]}", at: "\(base).include.match_type", saying: ["'fuzzy'", "strict", "regexp"])
        // Key-only attributes and severity numbers need no match_type.
        #expect(try Config.attributesErrors(actions + "include: {attributes: [{key: a}]}").isEmpty)
        #expect(try Config.attributesErrors(actions + "include: {log_severity_number: {min: 9}}").isEmpty)
        // The regexp cache settings are accepted.
        #expect(try Config.attributesErrors(actions + "include: {match_type: regexp, regexp: {cacheenabled: true, cachemaxnumentries: 10}, services: [a]}").isEmpty)
    }

    @Test("strict span_kinds must be one of the five kinds")
    func strictSpanKinds() throws {
        let actions = "actions: [{key: a, action: delete}]\n"
        try self.expectError(actions + "include: {match_type: strict, span_kinds: [SPAN_KIND_SERVER, SPAN_KIND_UNSPECIFIED]}", at: "\(base).include.span_kinds[1]", saying: ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_CLIENT"])
        try self.expectError(actions + "include: {match_type: strict, span_kinds: [server]}", at: "\(base).include.span_kinds[0]", saying: ["'server'"])
        // Regexp kinds are not checked.
        #expect(try Config.attributesErrors(actions + "include: {match_type: regexp, span_kinds: [UNSPECIFIED, server]}").isEmpty)
    }

    @Test("bad entries in attributes, resources and libraries")
    func badEntries() throws {
        let actions = "actions: [{key: a, action: delete}]\n"
        try self.expectError(actions + "include: {match_type: regexp, attributes: [{key: a, value: 123}]}", at: "\(base).include.attributes[0].value", saying: ["string"])
        try self.expectError(actions + "include: {match_type: regexp, resources: [{key: a, value: true}]}", at: "\(base).include.resources[0].value", saying: ["string"])
        try self.expectError(actions + "include: {match_type: regexp, attributes: [{key: a, value: '(x'}]}", at: "\(base).include.attributes[0].value", saying: ["(x"])
        try self.expectError(actions + "include: {match_type: strict, attributes: [{value: 1}]}", at: "\(base).include.attributes[0].key", saying: ["key"])
        try self.expectError(actions + #"include: {match_type: strict, resources: [{key: ""}]}"#, at: "\(base).include.resources[0].key", saying: ["key"])
        try self.expectError(actions + "include: {match_type: strict, attributes: {key: a}}", at: "\(base).include.attributes", saying: ["list"])
        try self.expectError(actions + "include: {match_type: strict, libraries: [{version: 1}]}", at: "\(base).include.libraries[0].name", saying: ["name"])
        try self.expectError(actions + "include: {match_type: regexp, libraries: [{name: a, version: '[1'}]}", at: "\(base).include.libraries[0].version", saying: ["[1"])
        try self.expectError(actions + "include: {match_type: regexp, services: [a, '(b']}", at: "\(base).include.services[1]", saying: ["(b"])
        try self.expectError(actions + "exclude: {match_type: strict, services: [a], expressions: [x]}", at: "\(base).exclude.expressions", saying: ["unknown key"])
        try self.expectError(actions + "include: {log_severity_number: {min: 9, max: 12}}", at: "\(base).include.log_severity_number.max", saying: ["unknown key"])
        try self.expectError(actions + "include: {log_severity_number: {min: LOUD}}", at: "\(base).include.log_severity_number.min", saying: ["'LOUD'"])
    }

    @Test("include and exclude are checked against the pipeline's signal")
    func perSignal() throws {
        let actions = "actions: [{key: a, action: delete}]\n"
        func problems(_ rules: String, _ signal: Signal) throws -> [String] { try Config.attributesProblems(actions + rules, signal) }

        #expect(try problems("include: {match_type: strict, services: [a], span_names: [b], span_kinds: [SPAN_KIND_SERVER]}", .traces).isEmpty)
        #expect(try problems("include: {match_type: strict, log_bodies: [a], log_severity_texts: [b], log_severity_number: {min: 1}}", .logs).isEmpty)
        #expect(try problems("include: {match_type: strict, metric_names: [a]}", .metrics).isEmpty)
        #expect(try problems("include: {match_type: strict, resources: [{key: a}], libraries: [{name: b}], attributes: [{key: c}]}", .logs).isEmpty)
        #expect(try problems("include: {match_type: strict, resources: [{key: a}]}", .metrics).isEmpty)

        let spanNamesInLogs = try problems("include: {match_type: strict, span_names: [a]}", .logs)
        #expect(spanNamesInLogs.count == 1)
        #expect(spanNamesInLogs.first?.contains("include") == true && spanNamesInLogs.first?.contains("span_names") == true)

        for (rules, signal, word) in [
            ("exclude: {match_type: strict, log_bodies: [a]}", Signal.traces, "log_bodies"),
            ("include: {log_severity_number: {min: 1}}", .traces, "log_severity_number"),
            ("include: {match_type: strict, metric_names: [a]}", .traces, "metric_names"),
            ("include: {match_type: strict, metric_names: [a]}", .logs, "metric_names"),
            ("include: {match_type: strict, services: [a]}", .logs, "services"),
            ("include: {match_type: strict, attributes: [{key: a}]}", .metrics, "attributes"),
            ("include: {match_type: strict, libraries: [{name: a}]}", .metrics, "libraries"),
            ("include: {match_type: strict, span_names: [a]}", .metrics, "span_names"),
            ("exclude: {match_type: strict, log_severity_texts: [a]}", .metrics, "log_severity_texts"),
        ] {
            let found = try problems(rules, signal)
            #expect(found.count == 1 && found[0].contains(word), "\(rules) in \(signal): \(found)")
            #expect(found.first?.contains(rules.hasPrefix("include") ? "include" : "exclude") == true)
        }

        // A block with nothing to match by.
        for signal in Signal.allCases {
            let found = try problems("include: {match_type: strict}", signal)
            #expect(found.count == 1 && found[0].contains("at least one"), "\(signal): \(found)")
            let both = try problems("include: {match_type: regexp}\nexclude: {match_type: strict}", signal)
            #expect(both.count == 2)
        }
    }
}

// MARK: The request on the wire

struct AttributesWireTests {
    @Test("nothing changed: the very same payload goes on")
    func unchangedPassesThrough() async throws {
        let harness = try Harness.attributes("actions: [{key: missing, action: delete}, {key: k, from_attribute: nothing, action: upsert}]")
        let payload = try OTLP.encode(OTLP.request(.traces, [TestResource.service("a", [OTLP.span(["x": 1]), OTLP.span()])]), .traces)
        try await harness.processor.consume(TelemetryBatch(signal: .traces, payload: payload, itemCount: 2))
        let passed = try #require(harness.next.batches.first)
        #expect(passed.payload == payload)
        #expect(sameStorage(passed.payload, payload))

        // Excluded items are not touched either.
        let excluding = try Harness.attributes("actions: [{key: k, value: 1, action: insert}]\nexclude: {match_type: strict, services: [a]}")
        try await excluding.processor.consume(TelemetryBatch(signal: .traces, payload: payload, itemCount: 2))
        #expect(sameStorage(try #require(excluding.next.batches.first).payload, payload))
    }

    @Test("several resources and scopes, each item on its own")
    func severalResourcesAndScopes() async throws {
        let harness = try Harness.attributes(
            "actions: [{key: n, action: hash}, {key: added, value: yes, action: insert}]\ninclude: {match_type: regexp, services: ['^(a|c)$']}")
        let resources = ["a", "b", "c"].map { service in
            TestResource(
                ["service.name": .string(service), "n": "resource"],
                [
                    TestScope(name: "one", [OTLP.span("s1", ["n": "foo"]), OTLP.span("s2", [:])]),
                    TestScope(name: "two", [OTLP.span("s3", ["n": 24, "other": 1])]),
                ], schemaURL: "https://example.com/\(service)")
        }
        let output = try await harness.run(resources)
        let foo: Value = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        let twentyFour: Value = "cbb032642036ec7043fa4529f06c9c9d8b12fa70ea6799a19ca8321a808d86fa"
        let processed: [Attrs] = [["n": foo, "added": "yes"], ["added": "yes"], ["n": twentyFour, "other": 1, "added": "yes"]]
        let untouched: [Attrs] = [["n": "foo"], [:], ["n": 24, "other": 1]]
        #expect(try output.items == processed + untouched + processed)
        #expect(try output.resources.map { $0["n"] } == ["resource", "resource", "resource"])
        #expect(output.resourceObjects.map { $0["schemaUrl"] as? String ?? "" } == ["a", "b", "c"].map { "https://example.com/\($0)" })
        let scopeNames = output.resourceObjects.flatMap { ($0["scopeSpans"] as? [[String: Any]] ?? []).map { ($0["scope"] as? [String: Any])?["name"] as? String } }
        #expect(scopeNames == ["one", "two", "one", "two", "one", "two"])
    }

    @Test("the fields after a span's attributes are kept as they were")
    func fieldsAfterAttributes() async throws {
        let after = #","endTimeUnixNano":"1544712661300000000","events":[{"timeUnixNano":"1544712660500000000","name":"ev","attributes":[{"key":"a","value":{"stringValue":"b"}}]}],"status":{"code":2,"message":"boom"},"droppedAttributesCount":3,"flags":257"#
        for yaml in [
            "actions: [{key: a, action: delete}]", "actions: [{key: new, value: 1, action: insert}]", "actions: [{key: a, value: 2, action: update}]",
            "actions: [{key: a, action: hash}, {key: c, action: delete}, {key: new, value: 1, action: insert}]",
        ] {
            let harness = try Harness.attributes(yaml)
            let input = try OTLP.encode(OTLP.request(.traces, [TestResource.service("a", [OTLP.span("s", kind: 3, ["a": 1, "c": "d"], fieldsAfter: after)])]), .traces)
            let before = try Output(input, signal: .traces).itemObjects[0]
            let output = try await harness.run(input)
            var span = try #require(output.itemObjects.first)
            #expect(try Attrs(json: span["attributes"]) != Attrs(json: before["attributes"]), "\(yaml)")
            span["attributes"] = before["attributes"]
            #expect(sameJSON(span, before), "\(yaml): \(span)")
        }
    }

    @Test("the fields after a data point's attributes, exemplars included, are kept")
    func dataPointFields() async throws {
        let point = #"{"attributes":[{"key":"a","value":{"intValue":"1"}}],"startTimeUnixNano":"1","timeUnixNano":"2","asInt":"7","exemplars":[{"filteredAttributes":[{"key":"a","value":{"intValue":"9"}}],"timeUnixNano":"2","asDouble":1.5}],"flags":1}"#
        let metric = #"{"name":"m","description":"d","unit":"s","sum":{"dataPoints":["# + point + #"],"aggregationTemporality":1,"isMonotonic":true},"metadata":[{"key":"a","value":{"stringValue":"meta"}}]}"#
        let harness = try Harness.attributes("actions: [{key: a, action: delete}, {key: b, value: x, action: insert}]", .metrics)
        let input = try OTLP.encode(OTLP.request(.metrics, [TestResource(["a": 1], [TestScope(name: "s", [metric])])]), .metrics)
        let before = try Output(input, signal: .metrics)
        let output = try await harness.run(input)
        #expect(try output.items == [["b": "x"]])
        var dataPoint = try #require(output.itemObjects.first)
        dataPoint["attributes"] = before.itemObjects[0]["attributes"]
        #expect(sameJSON(dataPoint, before.itemObjects[0]))
        // The metric's own fields and metadata, and the resource, are as they were.
        #expect(try output.resources == [["a": 1]])
        let metricObject = try #require((output.resourceObjects[0]["scopeMetrics"] as? [[String: Any]])?[0]["metrics"] as? [[String: Any]])[0]
        #expect(metricObject["description"] as? String == "d")
        #expect(try Attrs(json: metricObject["metadata"]) == ["a": "meta"])
    }

    @Test("a span that grows past 127 bytes gets a longer length, and one that shrinks a shorter one")
    func lengthVarintGrowsAndShrinks() async throws {
        // Find a span just under 128 bytes, then add an attribute.
        var filler = ""
        var input = ByteBuffer()
        var spanLength = 0
        while true {
            input = try OTLP.encode(OTLP.request(.traces, [TestResource(nil, [TestScope([OTLP.span("s", ["f": .string(filler)])])])]), .traces)
            spanLength = try self.spanBytes(input).count
            if spanLength >= 118 { break }
            filler += "x"
        }
        #expect(spanLength < 128)
        let grow = try Harness.attributes("actions: [{key: added, value: 'a value of some length', action: insert}]")
        let grown = try await grow.run(input)
        #expect(try grown.items == [["f": .string(filler), "added": "a value of some length"]])
        #expect(try self.spanBytes(grown.payload).count > 127)
        #expect(try self.spanLengthVarint(grown.payload) == 2)

        // And back: deleting it again shrinks the span under 128 bytes.
        let shrink = try Harness.attributes("actions: [{key: added, action: delete}]")
        let shrunk = try await shrink.run(grown.payload)
        #expect(try shrunk.items == [["f": .string(filler)]])
        #expect(try self.spanLengthVarint(shrunk.payload) == 1)
        #expect(shrunk.payload == input)
    }

    @Test("a 16 KB value: inserted, copied, updated in the middle, and hashed away")
    func largeValues() async throws {
        let big = String(repeating: "x", count: 16384)
        let bigDigest: Value = "1536c422c31cc98834759d7085cda394a3510a03d78188248986a6b1a7207d03"
        let insert = try Harness.attributes("actions: [{key: big, value: '\(big)', action: insert}, {key: copy, from_attribute: big, action: upsert}]")
        let inserted = try await insert.run([TestResource.service("a", [OTLP.span(["a": 1]), OTLP.span(["b": 2])])])
        #expect(try inserted.items == [["a": 1, "big": .string(big), "copy": .string(big)], ["b": 2, "big": .string(big), "copy": .string(big)]])
        #expect(try self.spanLengthVarint(inserted.payload) == 3)

        let hash = try Harness.attributes("actions: [{key: big, action: hash}, {key: middle, value: 1, action: update}]")
        let hashed = try await hash.run([
            TestResource.service("a", [OTLP.span(["a": 1, "big": .string(big), "middle": .string(big), "z": true]), OTLP.span(["big": "foo"])])
        ])
        #expect(
            try hashed.items == [
                ["a": 1, "big": bigDigest, "middle": 1, "z": true], ["big": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
            ])
        #expect(hashed.payload.readableBytes < 400)
    }

    @Test("many items in one request, changed and unchanged mixed")
    func manyItems() async throws {
        let harness = try Harness.attributes("actions: [{key: i, action: convert, converted_type: string}]\ninclude: {match_type: regexp, span_names: ['[02468]$']}")
        let spans = (0..<500).map { OTLP.span("span\($0)", ["i": .int(Int64($0))]) }
        let output = try await harness.run([TestResource.service("a", spans)])
        let expected: [Attrs] = (0..<500).map { $0 % 2 == 0 ? ["i": .string(String($0))] : ["i": .int(Int64($0))] }
        #expect(try output.items == expected)
    }

    @Test("log records and every kind of data point get the actions")
    func allItemKinds() async throws {
        let yaml = "actions: [{key: a, action: delete}, {key: b, value: 2, action: upsert}]"
        let logs = try await Harness.attributes(yaml, .logs).run([
            TestResource(["a": 1], [TestScope([OTLP.log(body: "hello", ["a": 1, "c": 3]), OTLP.log()])])
        ])
        #expect(try logs.items == [["c": 3, "b": 2], ["b": 2]])
        #expect(try logs.resources == [["a": 1]])
        #expect(logs.itemObjects.first?["body"] as? [String: String] == ["stringValue": "hello"])

        let metrics = OTLP.MetricKind.allCases.map { OTLP.metric("m", $0, [["a": 1, "c": 3], [:]]) }
        let output = try await Harness.attributes(yaml, .metrics).run([TestResource(["a": 1], [TestScope(metrics)])])
        #expect(try output.items == Array(repeating: [["c": 3, "b": 2], ["b": 2]] as [Attrs], count: 5).flatMap { $0 })
        #expect(try output.resources == [["a": 1]])
    }

    @Test("attributes split around other fields: edits by key in place, other edits where the first one was; additions appended")
    func splitAttributes() async throws {
        func keyValue(_ key: String, _ value: String) -> [UInt8] {
            TestRequests.field(1, Array(key.utf8)) + TestRequests.field(2, TestRequests.field(1, Array(value.utf8)))
        }
        // Span: trace_id, span_id, attributes a, name, attributes b, kind = SERVER.
        let span =
            TestRequests.field(1, [UInt8](repeating: 0xAB, count: 16)) + TestRequests.field(2, [UInt8](repeating: 0xCD, count: 8))
            + TestRequests.field(9, keyValue("a", "1")) + TestRequests.field(5, Array("name".utf8)) + TestRequests.field(9, keyValue("b", "2")) + [0x30, 0x02]
        let input = ByteBuffer(bytes: TestRequests.field(1, TestRequests.field(2, TestRequests.field(2, span))))
        let cases: [(String, Attrs, [UInt64])] = [
            // Edits by key alone: applied while copying, each where its attribute was.
            ("actions: [{key: a, action: delete}]", ["b": "2"], [1, 2, 5, 9, 6]),
            ("actions: [{key: b, value: x, action: update}]", ["a": "1", "b": "x"], [1, 2, 9, 5, 9, 6]),
            ("actions: [{key: c, value: x, action: insert}]", ["a": "1", "b": "2", "c": "x"], [1, 2, 9, 5, 9, 6, 9]),
            ("actions: [{key: a, action: delete}, {key: b, action: delete}]", [:], [1, 2, 5, 6]),
            // Edits that read other attributes or match patterns: the list is rewritten where its first attribute was.
            ("actions: [{pattern: '^a$', action: delete}]", ["b": "2"], [1, 2, 9, 5, 6]),
            ("actions: [{key: b, from_attribute: a, action: update}]", ["a": "1", "b": "1"], [1, 2, 9, 9, 5, 6]),
            ("actions: [{key: c, from_attribute: a, action: insert}]", ["a": "1", "b": "2", "c": "1"], [1, 2, 9, 5, 9, 6, 9]),
        ]
        for (yaml, expected, fields) in cases {
            let output = try await Harness.attributes(yaml).run(input)
            #expect(try output.items == [expected], "\(yaml)")
            #expect(output.itemObjects.first?["name"] as? String == "name")
            #expect((output.itemObjects.first?["kind"] as? NSNumber)?.intValue == 2)
            #expect(try protobufFields(self.spanBytes(output.payload)).map(\.number) == fields, "\(yaml)")
        }
    }

    @Test("a repeated key: the first is the one found, as in the Collector")
    func repeatedKeys() async throws {
        try await expectActions("actions: [{key: a, action: delete}]", ["a": 1, "b": 2, "a": 3], ["b": 2, "a": 3])
        try await expectActions("actions: [{key: a, value: 9, action: upsert}]", ["a": 1, "a": 3], ["a": 9, "a": 3])
        try await expectActions("actions: [{key: c, from_attribute: a, action: insert}]", ["a": 1, "a": 3], ["a": 1, "a": 3, "c": 1])
        try await expectActions("actions: [{pattern: '^a$', action: delete}]", ["a": 1, "b": 2, "a": 3], ["b": 2])
    }

    @Test("16 KB captures and converted text")
    func largeDerivedValues() async throws {
        let big = String(repeating: "x", count: 16384)
        try await expectActions(
            "actions: [{key: k, pattern: '^(?P<head>x)(?P<rest>.*)$', action: extract}]", ["k": .string(big)],
            ["k": .string(big), "head": "x", "rest": .string(String(big.dropFirst()))])
        let list = Value.array(Array(repeating: "abcdefgh", count: 2000))
        let text = "[" + Array(repeating: "\"abcdefgh\"", count: 2000).joined(separator: ",") + "]"
        try await expectActions("actions: [{key: k, action: convert, converted_type: string}]", ["k": list], ["k": .string(text)])
    }

    /// The first span's bytes (its content) in a traces request.
    func spanBytes(_ payload: ByteBuffer) throws -> [UInt8] {
        let resourceSpans = try #require(try protobufFields(payload.bytes).first { $0.number == 1 })
        let scopeSpans = try #require(try protobufFields(resourceSpans.content).first { $0.number == 2 })
        return try #require(try protobufFields(scopeSpans.content).first { $0.number == 2 }).content
    }

    /// How many bytes the first span's length takes.
    func spanLengthVarint(_ payload: ByteBuffer) throws -> Int {
        let resourceSpans = try #require(try protobufFields(payload.bytes).first { $0.number == 1 })
        let scopeSpans = try #require(try protobufFields(resourceSpans.content).first { $0.number == 2 })
        let span = try #require(try protobufFields(scopeSpans.content).first { $0.number == 2 })
        return span.whole.count - span.content.count - 1
    }
}

/// Edits by key alone are applied while copying, without the attribute
/// list the other actions use: both must give the same attributes.
struct KeyedEditsTests {
    /// A small deterministic generator (xorshift), so a failure can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state ^= self.state << 13
            self.state ^= self.state >> 7
            self.state ^= self.state << 17
            return self.state
        }
    }

    @Test("random attribute lists and keyed actions: the same result as running the actions one by one")
    func sameAsTheGeneralPath() async throws {
        var random = Generator(state: 0x9E37_79B9_7F4A_7C15)
        // A key and values past 127 bytes take two-byte lengths: the field walk's general way.
        let keys = ["a", "b", "c", "d", String(repeating: "k", count: 130)]
        let operations = ["insert", "update", "upsert", "delete"]
        for round in 0..<150 {
            let signal = Signal.allCases[round % 3]
            // Duplicate keys on purpose: an action touches the first one only.
            let input = Attrs((0..<Int.random(in: 0...6, using: &random)).map { index in
                let long = Int.random(in: 0..<4, using: &random) == 0
                return Attrs.Entry(key: keys.randomElement(using: &random)!, value: .string(long ? String(repeating: "v", count: 200) : "v\(index)"))
            })
            let actions = keys.shuffled(using: &random).prefix(Int.random(in: 1...4, using: &random)).map { key in
                let operation = operations.randomElement(using: &random)!
                return operation == "delete" ? "{key: \(key), action: delete}" : "{key: \(key), value: n\(round), action: \(operation)}"
            }
            let yaml = "actions: [\(actions.joined(separator: ", "))]"
            // An include rule that selects every item sends the same actions down the general path.
            let rule =
                switch signal {
                case .traces: "span_names: ['.*']"
                case .logs: "log_bodies: ['.*']"
                case .metrics: "metric_names: ['.*']"
                }
            let general = try await applied(yaml + "\ninclude: {match_type: regexp, \(rule)}", to: input, signal)
            let keyed = try await applied(yaml, to: input, signal)
            #expect(keyed == general, "\(signal): \(yaml) on \(input)")
        }
    }

    @Test("keyed edits pass over fields with two-byte tags and lengths around the attributes")
    func keyedEditsAcrossLongFields() async throws {
        let harness = try Harness.attributes("actions: [{key: b, value: new, action: update}, {key: c, action: delete}, {key: z, value: 1, action: insert}]")
        let longName = String(repeating: "n", count: 300)
        // flags (field 16) has a two-byte tag; the name a two-byte length.
        let span = OTLP.span(longName, ["a": "1", "b": "2", "c": "3"], fieldsAfter: #","flags":257,"status":{"code":2,"message":"boom"}"#)
        let payload = try OTLP.encode(OTLP.request(.traces, [TestResource.service("svc", [span])]), .traces)
        let output = try await harness.run(payload)
        let items = try output.items
        #expect(items == [["a": "1", "b": "new", "z": 1]], "\(items)")
        let spans = try #require(output.resourceObjects.first?["scopeSpans"] as? [[String: Any]]).first?["spans"] as? [[String: Any]]
        #expect(spans?.first?["name"] as? String == longName)
        #expect(spans?.first?["flags"] as? Int == 257)
    }

}
