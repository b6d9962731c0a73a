import OTLPDCore

/// `processors.attributes`: actions on span, log record and data point
/// attributes, for the items `include` and `exclude` select.
public struct AttributesProcessorConfiguration: Sendable {
    var actions = AttributeActions()
    var include: MatchRules?
    var exclude: MatchRules?

    static func decode(_ reader: ConfigReader) -> AttributesProcessorConfiguration {
        defer { reader.finish() }
        var configuration = AttributesProcessorConfiguration()
        configuration.actions = AttributeActions.decode(reader, key: "actions")
        configuration.include = reader.child("include").map { MatchRules.decode($0) }
        configuration.exclude = reader.child("exclude").map { MatchRules.decode($0) }
        return configuration
    }

    /// Include and exclude rules that cannot apply to `signal`'s items.
    func problems(for signal: Signal) -> [String] {
        (self.include?.problems(for: signal, block: "include") ?? []) + (self.exclude?.problems(for: signal, block: "exclude") ?? [])
    }
}
