import OTLPDCore
import OTLPDSystem

/// `sending_queue`: how many batches an exporter holds at once (waiting
/// or being sent) and how many it sends at the same time; with `storage`,
/// held on disk by that `file_storage` extension instead of in memory.
public struct SendingQueueSettings: Sendable, Equatable {
    public var enabled = true
    public var queueSize = 1000
    public var numConsumers = 10
    /// The `file_storage` extension that keeps the queue on disk; nil: in memory.
    public var storage: ComponentID?
    public var deadLetter = DeadLetterSettings()

    public init() {}

    /// On disk the bound that matters is the storage's `max_size`: without
    /// an explicit `queue_size`, requests are not counted against one.
    static let persistentQueueSize = 1_000_000
}

/// Where a persistent queue keeps what the upstream refused for good.
public struct DeadLetterSettings: Sendable, Equatable {
    /// nil: `dead-letter.jsonl` in the exporter's folder of the storage.
    public var path: String?
    public var maxSize = 64 << 20

    public init() {}
}

/// What the Collector's exporterhelper reads for a forwarding exporter:
/// `timeout`, `retry_on_failure` and `sending_queue`.
public struct ExporterHelperConfiguration: Sendable, Equatable {
    /// One attempt's limit, and the whole delivery's when the client set no deadline.
    public var timeout: Duration
    public var retry = RetryPolicy()
    public var queue = SendingQueueSettings()

    public init(timeout: Duration) {
        self.timeout = timeout
    }

    static func decode(_ reader: ConfigReader, defaultTimeout: Duration) -> ExporterHelperConfiguration {
        var helper = ExporterHelperConfiguration(timeout: reader.duration("timeout", default: defaultTimeout, allowZero: false))
        if let retry = reader.child("retry_on_failure") {
            var policy = RetryPolicy()
            policy.enabled = retry.bool("enabled", default: true)
            policy.initialInterval = retry.duration("initial_interval", default: policy.initialInterval, allowZero: false)
            policy.multiplier = retry.double("multiplier", default: policy.multiplier)
            if policy.multiplier < 1 { retry.error("multiplier", "must be at least 1") }
            policy.randomizationFactor = retry.double("randomization_factor", default: policy.randomizationFactor)
            if !(0...1).contains(policy.randomizationFactor) { retry.error("randomization_factor", "must be between 0 and 1") }
            policy.maxInterval = retry.duration("max_interval", default: policy.maxInterval, allowZero: false)
            policy.maxElapsedTime = retry.duration("max_elapsed_time", default: policy.maxElapsedTime)
            retry.finish()
            helper.retry = policy
        }
        if let queue = reader.child("sending_queue") {
            var settings = SendingQueueSettings()
            settings.enabled = queue.bool("enabled", default: true)
            settings.queueSize = queue.int("queue_size", default: settings.queueSize, in: 1...1_000_000)
            settings.numConsumers = queue.int("num_consumers", default: settings.numConsumers, in: 1...10_000)
            if let name = queue.string("storage") {
                if let id = ComponentID(parsing: name) {
                    settings.storage = id
                    if !queue.contains("queue_size") { settings.queueSize = SendingQueueSettings.persistentQueueSize }
                } else {
                    queue.error("storage", "'\(name)' is not an extension id: write file_storage or file_storage/NAME")
                }
            }
            if settings.storage != nil && !settings.enabled {
                queue.error("storage", "a persistent queue needs the sending queue: remove 'enabled: false' or 'storage'")
            }
            if let deadLetter = queue.child("dead_letter") {
                if settings.storage == nil { queue.error("dead_letter", "applies to a persistent queue: set storage as well") }
                if let path = deadLetter.string("path") {
                    if let problem = FileOperations.checkWritable(path) { deadLetter.error("path", "\(problem)") }
                    settings.deadLetter.path = path
                }
                settings.deadLetter.maxSize = deadLetter.byteSize("max_size", default: settings.deadLetter.maxSize)
                deadLetter.finish()
            }
            queue.accept("blocking", "sizer")
            if queue.contains("blocking"), !queue.bool("blocking", default: true) {
                queue.error("blocking", "otlpd's queue always answers a client only once its data is delivered; remove 'blocking: false'")
            }
            if let sizer = queue.string("sizer"), sizer != "requests" {
                queue.error("sizer", "otlpd counts its queue in requests; remove 'sizer' or set it to requests")
            }
            queue.finish()
            helper.queue = settings
        }
        return helper
    }
}
