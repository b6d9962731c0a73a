import NIOPosix
import OTLPDCore
import OTLPDProcessors
import OTLPDTestSupport
import Testing

struct MemoryLimiterTests {
    func decode(_ entries: [(String, String)]) -> (MemoryLimiterConfiguration, [ConfigError]) {
        let diagnostics = ConfigDiagnostics()
        let node = ConfigNode.mapping(entries.map { ($0.0, ConfigNode.scalar($0.1)) })
        let configuration = MemoryLimiterProcessorFactory().decode(ConfigReader(node, path: "processors.memory_limiter", diagnostics: diagnostics))
        return (configuration as! MemoryLimiterConfiguration, diagnostics.errors)
    }

    @Test("limit_mib and spike_limit_mib give the hard and soft limits; the spike defaults to a fifth")
    func limits() {
        let (explicit, errors) = self.decode([("check_interval", "2s"), ("limit_mib", "512"), ("spike_limit_mib", "128")])
        #expect(errors.isEmpty)
        #expect(explicit.limits(available: nil) == MemoryGuard.Limits(hard: 512 << 20, soft: 384 << 20, retryAfter: .seconds(2)))
        let (defaulted, _) = self.decode([("limit_mib", "100")])
        #expect(defaulted.limits(available: nil)?.soft == 80 << 20)
        #expect(defaulted.checkInterval == .seconds(1))
    }

    @Test("percentages are of the memory the process may use")
    func percentages() {
        let (configuration, errors) = self.decode([("limit_percentage", "50"), ("spike_limit_percentage", "10")])
        #expect(errors.isEmpty)
        let limits = configuration.limits(available: 1000 << 20)
        #expect(limits?.hard == 500 << 20)
        #expect(limits?.soft == 400 << 20)
    }

    @Test("a limit is required, and the spike must be below it")
    func validation() {
        #expect(self.decode([("check_interval", "1s")]).1.map(\.keyPath) == ["processors.memory_limiter.limit_mib"])
        #expect(self.decode([("limit_mib", "100"), ("spike_limit_mib", "100")]).1.map(\.keyPath) == ["processors.memory_limiter.spike_limit_mib"])
        #expect(self.decode([("limit_mib", "100"), ("check_interval", "0s")]).1.map(\.keyPath) == ["processors.memory_limiter.check_interval"])
    }

    @Test("it sets the process's limits while it runs, and lets admitted requests through")
    func registersLimits() async throws {
        let memory = MemoryGuard()
        let next = RecordingConsumer()
        let (configuration, _) = self.decode([("limit_mib", "64"), ("spike_limit_mib", "16")])
        let processor = try MemoryLimiterProcessorFactory().makeProcessor(
            configuration, signal: .traces, next: next,
            settings: ComponentSettings(
                id: ComponentID(type: "memory_limiter"), logger: LogRecorder().logger(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                memoryGuard: memory))
        try await processor.start()
        #expect(memory.limits?.soft == 48 << 20)
        // Held bytes past the soft limit refuse new requests at the receivers, not those already admitted.
        memory.charge(60 << 20)
        #expect(memory.isRefusing)
        try await processor.consume(TestRequests.batch(spans: 2))
        #expect(next.batches.count == 1)
        memory.release(60 << 20)
        await processor.shutdown()
        #expect(memory.limits == nil)
    }
}
