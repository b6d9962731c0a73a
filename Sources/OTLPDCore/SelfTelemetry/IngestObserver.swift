/// How a request arrived, as the per-service view shows it.
public enum IngestProtocol: String, Sendable, Hashable, CaseIterable {
    case grpc
    case httpProtobuf = "http/protobuf"
    case httpJSON = "http/json"
}

/// One resource of a received request, as the per-service view records it.
public struct ResourceObservation: Sendable, Equatable {
    public var serviceName: String?
    public var serviceInstanceID: String?
    public var sdkLanguage: String?
    public var sdkVersion: String?
    /// Spans, metric data points or log records.
    public var itemCount: Int
    /// Spans whose trace and span ids were seen again within the window.
    public var duplicateSpans: Int

    public init(
        serviceName: String? = nil,
        serviceInstanceID: String? = nil,
        sdkLanguage: String? = nil,
        sdkVersion: String? = nil,
        itemCount: Int = 0,
        duplicateSpans: Int = 0
    ) {
        self.serviceName = serviceName
        self.serviceInstanceID = serviceInstanceID
        self.sdkLanguage = sdkLanguage
        self.sdkVersion = sdkVersion
        self.itemCount = itemCount
        self.duplicateSpans = duplicateSpans
    }
}

/// What receivers tell the per-service view about every request they
/// decoded: who sent it, how, and what became of it.
public protocol IngestObserver: Sendable {
    /// Runs `body` with a check that records a span fingerprint and says
    /// whether it was seen recently (one lock for a whole request).
    func withDuplicateCheck<Result>(_ body: (_ seenBefore: (UInt64) -> Bool) -> Result) -> Result

    /// A request whose data the pipeline kept; `port` is the one it came in on.
    func accepted(signal: Signal, via: IngestProtocol, port: Int, wrongPort: Bool, resources: [ResourceObservation])

    /// A decoded request that was answered with an error.
    func refused(signal: Signal, via: IngestProtocol, port: Int, wrongPort: Bool, resources: [ResourceObservation])
}
