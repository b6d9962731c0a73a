import OTLPDCore

/// Builds `otlp` receivers.
public struct OTLPReceiverFactory: ReceiverFactory {
    public let type = "otlp"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        OTLPReceiverConfiguration.decode(reader)
    }

    public func extensionsUsed(_ configuration: ComponentConfiguration) -> [ExtensionUse] {
        (configuration as! OTLPReceiverConfiguration).extensionsUsed
    }

    public func makeReceiver(
        _ configuration: ComponentConfiguration,
        consumers: [Signal: any Consumer],
        settings: ComponentSettings
    ) throws -> any Receiver {
        let configuration = configuration as! OTLPReceiverConfiguration
        func find(_ id: ComponentID?) throws -> (any ServerAuthenticator)? {
            guard let id else { return nil }
            guard let authenticator = settings.extensions[id] as? any ServerAuthenticator else {
                throw OTLPReceiverError(description: "receiver \(settings.id): auth.authenticator names '\(id)', which is not a running authenticator extension")
            }
            return authenticator
        }
        let authenticators = ReceiverAuthenticators(grpc: try find(configuration.grpc?.authenticator), http: try find(configuration.http?.authenticator))
        return OTLPReceiver(configuration: configuration, consumers: consumers, settings: settings, authenticators: authenticators)
    }
}

struct OTLPReceiverError: Error, CustomStringConvertible {
    var description: String
}

/// Who checks requests: a protocol's own section's authenticator, else the
/// other section's, so a request cannot skip the check by using the other
/// port (either protocol is served on either).
package struct ReceiverAuthenticators: Sendable {
    package var grpc: (any ServerAuthenticator)?
    package var http: (any ServerAuthenticator)?

    package init(grpc: (any ServerAuthenticator)? = nil, http: (any ServerAuthenticator)? = nil) {
        self.grpc = grpc
        self.http = http
    }

    package func authenticator(forGRPC isGRPC: Bool) -> (any ServerAuthenticator)? {
        isGRPC ? (self.grpc ?? self.http) : (self.http ?? self.grpc)
    }
}
