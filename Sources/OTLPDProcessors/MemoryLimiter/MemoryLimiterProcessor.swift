import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDSystem

/// `processors.memory_limiter`.
public struct MemoryLimiterConfiguration: Sendable, Equatable {
    /// How often the process's resident size is checked (the byte count is exact at every request).
    public var checkInterval: Duration = .seconds(1)
    public var limitMiB = 0
    public var spikeLimitMiB: Int?
    public var limitPercentage = 0
    public var spikeLimitPercentage: Int?

    /// The limits in bytes: hard (`limit`), and soft (`limit - spike`), above
    /// which new data is refused. Percentages are of the memory the process
    /// may use (its cgroup's limit, else the machine's).
    public func limits(available: Int?) -> MemoryGuard.Limits? {
        var hard = self.limitMiB << 20
        var spike = (self.spikeLimitMiB ?? self.limitMiB / 5) << 20
        if hard == 0, self.limitPercentage > 0, let available {
            hard = available / 100 * self.limitPercentage
            spike = available / 100 * (self.spikeLimitPercentage ?? self.limitPercentage / 5)
        }
        guard hard > 0 else { return nil }
        return MemoryGuard.Limits(hard: hard, soft: max(0, hard - spike), retryAfter: max(self.checkInterval, .seconds(1)))
    }

    static func decode(_ reader: ConfigReader) -> MemoryLimiterConfiguration {
        defer { reader.finish() }
        var configuration = MemoryLimiterConfiguration()
        configuration.checkInterval = reader.duration("check_interval", default: .seconds(1), allowZero: false)
        configuration.limitMiB = reader.int("limit_mib", default: 0, in: 0...(1 << 30))
        configuration.spikeLimitMiB = reader.contains("spike_limit_mib") ? reader.int("spike_limit_mib", default: 0, in: 0...(1 << 30)) : nil
        configuration.limitPercentage = reader.int("limit_percentage", default: 0, in: 0...100)
        configuration.spikeLimitPercentage = reader.contains("spike_limit_percentage") ? reader.int("spike_limit_percentage", default: 0, in: 0...100) : nil
        reader.accept("spike_limit_mib", "spike_limit_percentage")
        if configuration.limitMiB == 0 && configuration.limitPercentage == 0 {
            reader.error("limit_mib", "memory_limiter needs limit_mib (or limit_percentage) above 0")
        } else if configuration.limitMiB > 0, let spike = configuration.spikeLimitMiB, spike >= configuration.limitMiB {
            reader.error("spike_limit_mib", "must be less than limit_mib (\(configuration.limitMiB))")
        } else if configuration.limitMiB == 0, let spike = configuration.spikeLimitPercentage, spike >= configuration.limitPercentage {
            reader.error("spike_limit_percentage", "must be less than limit_percentage (\(configuration.limitPercentage))")
        }
        return configuration
    }
}

/// The `memory_limiter` processor: sets the limits that receivers admit
/// requests by (the bytes held are counted as they arrive, so a flood is
/// refused before it is read), and checks the process's resident size
/// every `check_interval` as a second line for memory nothing counted,
/// refusing data in its pipeline while that is over the limit.
public final class MemoryLimiterProcessor: Processor {
    let configuration: MemoryLimiterConfiguration
    let next: any Consumer
    let memory: MemoryGuard
    let logger: Logger
    let eventLoop: any EventLoop
    let limits: MemoryGuard.Limits?
    private let check = NIOLockedValueBox<RepeatedTask?>(nil)
    private let refusingLogged = NIOLockedValueBox(false)

    init(configuration: MemoryLimiterConfiguration, next: any Consumer, settings: ComponentSettings) {
        self.configuration = configuration
        self.next = next
        self.memory = settings.memoryGuard
        self.logger = settings.logger
        self.eventLoop = settings.eventLoopGroup.next()
        self.limits = configuration.limits(available: ProcessMemory.availableBytes())
    }

    public func start() async throws {
        guard let limits = self.limits else { return }
        HeapTuning.followHeldBytes()
        self.memory.register(self, limits)
        self.logger.info(
            "memory limits set",
            metadata: ["limit_mib": "\(limits.hard >> 20)", "soft_limit_mib": "\(limits.soft >> 20)", "check_interval": "\(self.configuration.checkInterval)"])
        let interval = TimeAmount.nanoseconds(Int64(self.configuration.checkInterval / .nanoseconds(1)))
        let task = self.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.checkResident()
        }
        self.check.withLockedValue { $0 = task }
    }

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        // The byte count is enforced where requests come in: a request that got
        // this far was admitted and its bytes are already counted, so only the
        // process-size check can turn it back here.
        if self.memory.isResidentOver {
            self.noteRefusing()
            throw .retryable(Self.message, after: self.memory.retryAfter)
        }
        return try await self.next.consume(batch)
    }

    public func shutdown() async {
        self.check.withLockedValue { $0?.cancel() }
        self.memory.unregister(self)
    }

    static let message = "otlpd is over its memory limit (memory_limiter); retry later"

    /// The resident size against the hard limit; over it, the heap is trimmed
    /// first, and data is refused only if that was not enough.
    func checkResident() {
        guard let limits = self.limits, var resident = ProcessMemory.residentBytes() else { return }
        if resident > limits.hard {
            ProcessMemory.trimHeap()
            resident = ProcessMemory.residentBytes() ?? resident
        }
        let over = resident > limits.hard
        self.memory.setResidentOver(over)
        if self.memory.isRefusing { self.noteRefusing() }
        if over {
            self.logger.warning(
                "resident memory over limit_mib: refusing data", metadata: ["resident_mib": "\(resident >> 20)", "held_mib": "\(self.memory.heldBytes >> 20)"])
        } else if !self.memory.isRefusing, self.refusingLogged.withLockedValue({ $0 }) {
            self.refusingLogged.withLockedValue { $0 = false }
            self.logger.info("memory back under the limit: accepting data again", metadata: ["resident_mib": "\(resident >> 20)"])
        }
    }

    /// One warning per episode of refusing, not one per request.
    func noteRefusing() {
        let first = self.refusingLogged.withLockedValue { logged in
            defer { logged = true }
            return !logged
        }
        if first {
            self.logger.warning(
                "memory limit reached: refusing data until it drops", metadata: ["held_mib": "\(self.memory.heldBytes >> 20)"])
        }
    }
}

public struct MemoryLimiterProcessorFactory: ProcessorFactory {
    public let type = "memory_limiter"
    public let signals: Set<Signal> = Set(Signal.allCases)

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        MemoryLimiterConfiguration.decode(reader)
    }

    public func makeProcessor(_ configuration: ComponentConfiguration, signal: Signal, next: any Consumer, settings: ComponentSettings) throws -> any Processor {
        MemoryLimiterProcessor(configuration: configuration as! MemoryLimiterConfiguration, next: next, settings: settings)
    }
}
