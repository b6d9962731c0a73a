import NIOCore
import OTLPDCore
import OTLPDStringOps
import OTLPDWire

/// The `attributes` processor: runs its actions on the attributes of every
/// span, log record or metric data point that `include` selects and
/// `exclude` does not, editing the request's bytes in one pass.
public final class AttributesProcessor: Processor {
    let configuration: AttributesProcessorConfiguration
    let signal: Signal
    let next: any Consumer
    let captureGroups: Int
    /// The actions as edits by key, when they are that simple and every item gets them.
    let keyedEdits: KeyedAttributeEdits?

    init(configuration: AttributesProcessorConfiguration, signal: Signal, next: any Consumer) {
        self.configuration = configuration
        self.signal = signal
        self.next = next
        self.captureGroups = max(configuration.actions.captureGroups, 1)
        let everyItem = configuration.include == nil && configuration.exclude == nil
        self.keyedEdits = everyItem ? configuration.actions.keyedEdits : nil
    }

    public func start() async throws {}
    public func shutdown() async {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        let editor = Editor(configuration: self.configuration, keyedEdits: self.keyedEdits, scratch: RegexScratch(groups: self.captureGroups))
        let rewritten: TelemetryBatch?
        do {
            rewritten = try AttributeRewriter.rewrite(batch, editor: editor)
        } catch {
            throw .permanent("the attributes processor could not read the request: \(error)")
        }
        if let rewritten {
            // The original's bytes are freed now, not when the whole pipeline is done.
            _ = consume batch
            return try await self.next.consume(rewritten)
        } else {
            return try await self.next.consume(batch)
        }
    }

    /// One request's walk: the rules, the actions and their scratch memory.
    final class Editor: AttributeEditor {
        let configuration: AttributesProcessorConfiguration
        let scratch: RegexScratch
        /// A metric's data points share its verdict: it is decided once per metric.
        var lastMetric: WireBytes?
        var lastVerdict = false

        let actions: AttributeActions
        let include: MatchRules?
        let exclude: MatchRules?
        let hasRules: Bool
        let keyedEdits: KeyedAttributeEdits?

        init(configuration: AttributesProcessorConfiguration, keyedEdits: KeyedAttributeEdits?, scratch: RegexScratch) {
            self.configuration = configuration
            self.keyedEdits = keyedEdits
            self.scratch = scratch
            self.actions = configuration.actions
            self.include = configuration.include
            self.exclude = configuration.exclude
            self.hasRules = configuration.include != nil || configuration.exclude != nil
        }

        func editResource(_ attributes: inout AttributeList, resource: ResourceContext) -> Bool {
            true
        }

        func editItem(_ attributes: inout AttributeList, context: ItemContext) {
            if self.hasRules && !self.selects(context, attributes) { return }
            self.actions.apply(to: &attributes, scratch: self.scratch)
        }

        func selects(_ context: ItemContext, _ attributes: AttributeList) -> Bool {
            if let metric = context.metric {
                if let last = self.lastMetric, last.isSameRange(as: metric) { return self.lastVerdict }
                self.lastMetric = metric
                self.lastVerdict = self.decide(context, attributes)
                return self.lastVerdict
            }
            return self.decide(context, attributes)
        }

        func decide(_ context: ItemContext, _ attributes: AttributeList) -> Bool {
            if let include = self.include, !include.matches(context, attributes: attributes, scratch: self.scratch) { return false }
            if let exclude = self.exclude, exclude.matches(context, attributes: attributes, scratch: self.scratch) { return false }
            return true
        }
    }
}

public struct AttributesProcessorFactory: ProcessorFactory {
    public let type = "attributes"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        AttributesProcessorConfiguration.decode(reader)
    }

    public func validate(_ configuration: ComponentConfiguration, signal: Signal) -> [String] {
        (configuration as! AttributesProcessorConfiguration).problems(for: signal)
    }

    public func makeProcessor(_ configuration: ComponentConfiguration, signal: Signal, next: any Consumer, settings: ComponentSettings) throws -> any Processor {
        AttributesProcessor(configuration: configuration as! AttributesProcessorConfiguration, signal: signal, next: next)
    }
}
