import OTLPDCore

/// `processors.batch`, with the Collector's defaults.
public struct BatchProcessorConfiguration: Sendable, Equatable {
    /// Send a partial batch after this long; 0: send every request at once.
    public var timeout: Duration = .milliseconds(200)
    /// Send once this many items (spans, data points, log records) are held.
    public var sendBatchSize = 8192
    /// Split larger batches; 0: no upper bound.
    public var sendBatchMaxSize = 0
    /// Send a partial batch as soon as no other request is on its way to it
    /// (group commit); false: only at `sendBatchSize` or `timeout`.
    public var earlySend = true
    /// How many sends may be under way when a partial batch goes early.
    public var numConsumers = 1

    public init() {}

    static func decode(_ reader: ConfigReader) -> BatchProcessorConfiguration {
        defer { reader.finish() }
        var configuration = BatchProcessorConfiguration()
        configuration.timeout = reader.duration("timeout", default: configuration.timeout)
        configuration.sendBatchSize = reader.int("send_batch_size", default: 8192, in: 0...100_000_000)
        configuration.sendBatchMaxSize = reader.int("send_batch_max_size", default: 0, in: 0...100_000_000)
        configuration.earlySend = reader.bool("early_send", default: true)
        configuration.numConsumers = reader.int("num_consumers", default: 1, in: 1...1024)
        if configuration.sendBatchMaxSize > 0 && configuration.sendBatchMaxSize < configuration.sendBatchSize {
            reader.error("send_batch_max_size", "must be 0 or at least send_batch_size (\(configuration.sendBatchSize))")
        }
        reader.refuse("metadata_keys", because: "batching by client metadata is not supported by this build")
        reader.refuse("metadata_cardinality_limit", because: "batching by client metadata is not supported by this build")
        return configuration
    }
}
