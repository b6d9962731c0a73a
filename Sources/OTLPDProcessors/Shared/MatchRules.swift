import OTLPDCore
import OTLPDStringOps
import OTLPDWire

/// One `include:` or `exclude:` block, as the Collector's attributes
/// processor reads it. Every property given must match (AND); a list of
/// names matches when any entry does (OR); every `attributes`,
/// `resources` and `libraries` entry must match. Regular expressions
/// search (they are not anchored unless they say `^` or `$`).
struct MatchRules: Sendable {
    enum MatchType: String, Sendable, CaseIterable {
        case strict, regexp
    }

    /// Names matched exactly or by any of several patterns.
    struct Names: Sendable {
        var exact: [WireText] = []
        var patterns: [RegexPattern] = []

        func matches(_ text: WireBytes, scratch: RegexScratch) -> Bool {
            if self.exact.contains(where: { $0.bytes == text }) { return true }
            return self.patterns.contains { $0.matches(text, scratch: scratch) }
        }

        func matches(_ text: String, scratch: RegexScratch) -> Bool {
            // `bytes` points into `wire`, which must outlive the match.
            let wire = WireText(text)
            return withExtendedLifetime(wire) { self.matches(wire.bytes, scratch: scratch) }
        }
    }

    /// `{key, value}`: the key must be there and, when a value is given, equal it (strict) or match it (regexp).
    struct AttributeRule: Sendable {
        enum Value: Sendable {
            case any
            case equal(AnyValueLiteral, WireText?)
            case pattern(RegexPattern)
        }

        var key: WireText
        var value: Value

        func matches(_ attributes: AttributeList, scratch: RegexScratch) -> Bool {
            guard let index = attributes.firstIndex(of: self.key.bytes) else { return false }
            switch self.value {
            case .any:
                return true
            case .equal(let literal, let string):
                guard let actual = attributes.value(at: index) else { return false }
                if let string, case .string(let text) = actual { return text == string.bytes }
                return MatchRules.equal(literal, actual)
            case .pattern(let pattern):
                // Strings, booleans and numbers are matched as text; lists, maps and bytes never match.
                switch attributes.value(at: index) {
                case .string(let text)?: return pattern.matches(text, scratch: scratch)
                case .bool(let flag)?: return pattern.matches(flag ? "true" : "false", scratch: scratch)
                case .int(let number)?: return pattern.matches(String(number), scratch: scratch)
                case .double(let number)?: return pattern.matches(GoNumberFormat.fixed(number), scratch: scratch)
                default: return false
                }
            }
        }
    }

    /// `{name, version}` of the instrumentation scope; no version matches any.
    struct LibraryRule: Sendable {
        var name: Names
        var version: Names?
    }

    var services: Names?
    var spanNames: Names?
    /// Strict kinds as numbers; regexp kinds as patterns over `SPAN_KIND_*` names.
    var spanKinds: Names?
    var logBodies: Names?
    var logSeverityTexts: Names?
    var logSeverityNumber: (minimum: Int64, matchUndefined: Bool)?
    var metricNames: Names?
    var attributes: [AttributeRule] = []
    var resources: [AttributeRule] = []
    var libraries: [LibraryRule] = []
    /// Which keys the block set, for the per-signal checks.
    var keysGiven: Set<String> = []

    static let spanKindNames = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
    static let spanKindTexts = spanKindNames.map { WireText($0) }
    static let nilServiceName = WireText("<nil-service-name>")

    // MARK: Config

    static func decode(_ reader: ConfigReader) -> MatchRules {
        defer { reader.finish() }
        var rules = MatchRules()
        reader.accept("regexp")  // the Collector's regexp result cache: a speed knob; patterns here are compiled once and need none
        rules.keysGiven = Set((reader.node.entries ?? []).map(\.key))
        let matchTypeText = reader.string("match_type")
        let matchType = matchTypeText.flatMap { MatchType(rawValue: $0.lowercased()) }
        if let matchTypeText, matchType == nil {
            reader.error("match_type", "'\(matchTypeText)' is not one of: strict, regexp")
        }
        func names(_ key: String) -> Names? {
            guard let list = reader.stringList(key), !list.isEmpty else { return nil }
            guard let matchType else {
                if matchTypeText == nil { reader.error("match_type", "'\(key)' needs a match_type: strict or regexp") }
                return nil
            }
            var names = Names()
            for (index, text) in list.enumerated() {
                switch matchType {
                case .strict: names.exact.append(WireText(text))
                case .regexp:
                    if let pattern = reader.compile(text, at: "\(key)[\(index)]") { names.patterns.append(pattern) }
                }
            }
            return names
        }
        rules.services = names("services")
        rules.spanNames = names("span_names")
        rules.logBodies = names("log_bodies")
        rules.logSeverityTexts = names("log_severity_texts")
        rules.metricNames = names("metric_names")
        if matchType == .strict, let kinds = reader.stringList("span_kinds") {
            let valid = Self.spanKindNames.dropFirst()
            for (index, kind) in kinds.enumerated() where !valid.contains(kind) {
                reader.diagnostics.add(
                    at: reader.node["span_kinds"], "\(reader.keyPath("span_kinds"))[\(index)]",
                    "'\(kind)' is not one of: \(valid.joined(separator: ", "))")
            }
        }
        rules.spanKinds = names("span_kinds")
        if let severity = reader.child("log_severity_number") {
            let minimum = Self.severity(severity)
            let matchUndefined = severity.bool("match_undefined", default: false)
            severity.finish()
            rules.logSeverityNumber = (minimum, matchUndefined)
        }
        rules.attributes = Self.attributeRules(reader, "attributes", matchType: matchType, matchTypeGiven: matchTypeText != nil)
        rules.resources = Self.attributeRules(reader, "resources", matchType: matchType, matchTypeGiven: matchTypeText != nil)
        if let libraries = reader.raw("libraries") {
            for (index, item) in (libraries.items ?? []).enumerated() {
                let library = ConfigReader(item, path: "\(reader.keyPath("libraries"))[\(index)]", diagnostics: reader.diagnostics)
                defer { library.finish() }
                library.accept("name", "version")  // known even when an earlier mistake stops the reading
                guard let matchType else {
                    if matchTypeText == nil { reader.error("match_type", "'libraries' needs a match_type: strict or regexp") }
                    continue
                }
                guard let name = library.string("name") else {
                    library.error("name", "a library needs a 'name'")
                    continue
                }
                func names(_ text: String, _ key: String) -> Names {
                    var names = Names()
                    switch matchType {
                    case .strict: names.exact.append(WireText(text))
                    case .regexp: if let pattern = library.compile(text, at: key) { names.patterns.append(pattern) }
                    }
                    return names
                }
                rules.libraries.append(LibraryRule(name: names(name, "name"), version: library.string("version").map { names($0, "version") }))
            }
            if libraries.items == nil { reader.error("libraries", "expected a list of {name, version}, found \(libraries.kindName)") }
        }
        return rules
    }

    /// `min` as a number (1...24) or a severity name such as INFO or WARN2.
    static func severity(_ reader: ConfigReader) -> Int64 {
        guard let text = reader.string("min") else { return 0 }
        if let number = Int64(text), (0...24).contains(number) { return number }
        let names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        let upper = text.uppercased()
        for (index, name) in names.enumerated() where upper.hasPrefix(name) {
            let suffix = upper.dropFirst(name.count)
            if suffix.isEmpty { return Int64(index * 4 + 1) }
            if let step = Int(suffix), (2...4).contains(step) { return Int64(index * 4 + step) }
        }
        reader.error("min", "'\(text)' is not a severity number (1-24) or name (TRACE, DEBUG, INFO, WARN, ERROR, FATAL, with 2-4 for the finer steps)")
        return 0
    }

    static func attributeRules(_ reader: ConfigReader, _ key: String, matchType: MatchType?, matchTypeGiven: Bool) -> [AttributeRule] {
        guard let node = reader.raw(key) else { return [] }
        guard let items = node.items else {
            reader.error(key, "expected a list of {key, value}, found \(node.kindName)")
            return []
        }
        var rules: [AttributeRule] = []
        for (index, item) in items.enumerated() {
            let entry = ConfigReader(item, path: "\(reader.keyPath(key))[\(index)]", diagnostics: reader.diagnostics)
            defer { entry.finish() }
            entry.accept("value")  // known even when a missing key stops the reading
            guard let name = entry.string("key"), !name.isEmpty else {
                entry.error("key", "each entry needs a non-empty 'key'")
                continue
            }
            guard let literal = entry.literal("value") else {
                rules.append(AttributeRule(key: WireText(name), value: .any))
                continue
            }
            switch matchType {
            case nil:
                if !matchTypeGiven { reader.error("match_type", "'\(key)' with values needs a match_type: strict or regexp") }
            case .strict:
                let string: WireText? = if case .string(let text) = literal { WireText(text) } else { nil }
                rules.append(AttributeRule(key: WireText(name), value: .equal(literal, string)))
            case .regexp:
                guard case .string(let text) = literal else {
                    entry.error("value", "with match_type regexp the value must be a string (a pattern)")
                    continue
                }
                if let pattern = entry.compile(text, at: "value") { rules.append(AttributeRule(key: WireText(name), value: .pattern(pattern))) }
            }
        }
        return rules
    }

    /// What is wrong with this block for a pipeline of `signal`.
    func problems(for signal: Signal, block: String) -> [String] {
        let given = self.keysGiven.subtracting(["match_type", "regexp"])
        let allowed: Set<String>
        let required: Set<String>
        switch signal {
        case .traces:
            allowed = ["services", "span_names", "span_kinds", "attributes", "resources", "libraries"]
            required = allowed
        case .logs:
            allowed = ["attributes", "resources", "libraries", "log_bodies", "log_severity_texts", "log_severity_number"]
            required = allowed
        case .metrics:
            allowed = ["metric_names", "resources"]
            required = allowed
        }
        var problems: [String] = []
        let invalid = given.subtracting(allowed).sorted()
        if !invalid.isEmpty {
            problems.append("\(block): \(invalid.joined(separator: ", ")) cannot match \(Self.itemName(signal)); it may use \(allowed.sorted().joined(separator: ", "))")
        }
        if given.intersection(required).isEmpty && invalid.isEmpty {
            problems.append("\(block) needs at least one of \(required.sorted().joined(separator: ", ")) to match \(Self.itemName(signal))")
        }
        return problems
    }

    static func itemName(_ signal: Signal) -> String {
        switch signal {
        case .traces: "spans"
        case .logs: "log records"
        case .metrics: "metrics"
        }
    }

    // MARK: Matching

    func matches(_ context: ItemContext, attributes: AttributeList, scratch: RegexScratch) -> Bool {
        if let services = self.services {
            if let name = context.resource.serviceName {
                guard services.matches(name, scratch: scratch) else { return false }
            } else if let index = context.resource.attributes.firstIndex(of: AttributeRewriterKeys.serviceName.bytes),
                let value = context.resource.attributes.value(at: index)
            {
                guard services.matches(value.asString, scratch: scratch) else { return false }
            } else {
                guard services.matches(Self.nilServiceName.bytes, scratch: scratch) else { return false }
            }
        }
        if let spanNames = self.spanNames {
            guard spanNames.matches(context.spanName ?? .empty, scratch: scratch) else { return false }
        }
        if let spanKinds = self.spanKinds {
            let kind = Int(context.spanKind)
            let name = kind >= 0 && kind < Self.spanKindTexts.count ? Self.spanKindTexts[kind].bytes : Self.spanKindTexts[0].bytes
            guard spanKinds.matches(name, scratch: scratch) else { return false }
        }
        if let logBodies = self.logBodies {
            switch context.logBody {
            case .string(let text)?: guard logBodies.matches(text, scratch: scratch) else { return false }
            case let body?: guard logBodies.matches(body.asString, scratch: scratch) else { return false }
            case nil: guard logBodies.matches(WireBytes.empty, scratch: scratch) else { return false }
            }
        }
        if let texts = self.logSeverityTexts {
            guard texts.matches(context.severityText ?? .empty, scratch: scratch) else { return false }
        }
        if let severity = self.logSeverityNumber {
            let number = context.severityNumber
            if number == 0 {
                guard severity.matchUndefined else { return false }
            } else {
                guard number >= severity.minimum else { return false }
            }
        }
        if let metricNames = self.metricNames {
            guard metricNames.matches(context.metricName ?? .empty, scratch: scratch) else { return false }
        }
        for library in self.libraries {
            guard library.name.matches(context.scopeName ?? .empty, scratch: scratch) else { return false }
            if let version = library.version {
                guard version.matches(context.scopeVersion ?? .empty, scratch: scratch) else { return false }
            }
        }
        if !self.resources.isEmpty {
            guard self.resources.allSatisfy({ $0.matches(context.resource.attributes, scratch: scratch) }) else { return false }
        }
        return self.attributes.allSatisfy { $0.matches(attributes, scratch: scratch) }
    }

    /// Strict equality: the same type and the same value (lists and maps deeply).
    static func equal(_ literal: AnyValueLiteral, _ actual: AnyValueView) -> Bool {
        switch (literal, actual) {
        case (.empty, .empty): return true
        case (.string(let a), .string(let b)): return a == b.string
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.array(let a), .array(let content)):
            let elements = AnyValueView.elements(of: content)
            return a.count == elements.count && zip(a, elements).allSatisfy { Self.equal($0, AnyValueView.read($1) ?? .empty) }
        case (.map(let a), .keyValueList(let content)):
            var actual: [String: AnyValueView] = [:]
            for entry in AnyValueView.entries(of: content) { actual[entry.key.string] = entry.value.flatMap { AnyValueView.read($0) } ?? .empty }
            var expected: [String: AnyValueLiteral] = [:]
            for (key, value) in a { expected[key] = value }
            return expected.count == actual.count && expected.allSatisfy { key, value in actual[key].map { Self.equal(value, $0) } ?? false }
        default: return false
        }
    }
}

enum AttributeRewriterKeys {
    static let serviceName = WireText("service.name")
}
