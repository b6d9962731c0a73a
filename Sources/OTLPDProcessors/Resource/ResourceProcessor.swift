import NIOCore
import OTLPDCore
import OTLPDStringOps
import OTLPDWire

/// `processors.resource`: the attribute actions, on resource attributes.
public struct ResourceProcessorConfiguration: Sendable {
    var actions = AttributeActions()

    static func decode(_ reader: ConfigReader) -> ResourceProcessorConfiguration {
        defer { reader.finish() }
        return ResourceProcessorConfiguration(actions: AttributeActions.decode(reader, key: "attributes"))
    }
}

/// The `resource` processor: runs its actions once per resource, on the
/// resource's attributes; spans, log records and data points are copied
/// as they are.
public final class ResourceProcessor: Processor {
    let configuration: ResourceProcessorConfiguration
    let next: any Consumer
    let captureGroups: Int

    init(configuration: ResourceProcessorConfiguration, next: any Consumer) {
        self.configuration = configuration
        self.next = next
        self.captureGroups = max(configuration.actions.captureGroups, 1)
    }

    public func start() async throws {}
    public func shutdown() async {}

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        let editor = Editor(actions: self.configuration.actions, scratch: RegexScratch(groups: self.captureGroups))
        let rewritten: TelemetryBatch?
        do {
            rewritten = try AttributeRewriter.rewrite(batch, editor: editor)
        } catch {
            throw .permanent("the resource processor could not read the request: \(error)")
        }
        if let rewritten {
            // The original's bytes are freed now, not when the whole pipeline is done.
            _ = consume batch
            return try await self.next.consume(rewritten)
        } else {
            return try await self.next.consume(batch)
        }
    }

    struct Editor: AttributeEditor {
        let actions: AttributeActions
        let scratch: RegexScratch

        func editResource(_ attributes: inout AttributeList, resource: ResourceContext) -> Bool {
            self.actions.apply(to: &attributes, scratch: self.scratch)
            return false
        }

        func editItem(_ attributes: inout AttributeList, context: ItemContext) {}
    }
}

public struct ResourceProcessorFactory: ProcessorFactory {
    public let type = "resource"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        ResourceProcessorConfiguration.decode(reader)
    }

    public func makeProcessor(_ configuration: ComponentConfiguration, signal: Signal, next: any Consumer, settings: ComponentSettings) throws -> any Processor {
        ResourceProcessor(configuration: configuration as! ResourceProcessorConfiguration, next: next)
    }
}
