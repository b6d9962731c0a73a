import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDWire

/// Per second, the first `initial` records, then one in `thereafter`;
/// `initial: 0` turns sampling off (every record is printed).
public struct DebugSampling: Sendable, Equatable {
    public var initial: Int
    public var thereafter: Int

    public init(initial: Int, thereafter: Int) {
        self.initial = initial
        self.thereafter = thereafter
    }

    /// `sampling_initial` and `sampling_thereafter` of a debug component.
    public static func decode(_ reader: ConfigReader) -> DebugSampling {
        DebugSampling(
            initial: reader.int("sampling_initial", default: 0, in: 0...1_000_000_000),
            thereafter: reader.int("sampling_thereafter", default: 1, in: 1...1_000_000_000))
    }
}

/// Where debug lines go.
public enum DebugOutput: String, Sendable, CaseIterable {
    case stdout
    case stderr

    var descriptor: Int32 { self == .stdout ? 1 : 2 }
}

/// Prints the debug lines of batches (the `debug` exporter and the
/// `debuglog` processor). The lines are a view of the data, not a copy kept
/// for later: when the stream cannot be written (a closed pipe), they are
/// dropped with one warning instead of failing requests.
public final class DebugLinePrinter: Sendable {
    let verbosity: DebugVerbosity
    let sampling: DebugSampling
    let logger: Logger
    private let output: FileAppender
    private let samples = NIOLockedValueBox((second: Int64(0), count: 0))
    private let failed = NIOLockedValueBox(false)

    /// systemd's journal stamps every line itself (`JOURNAL_STREAM` is set for a service's stdout and stderr).
    static let underJournal = ProcessEnvironment.value("JOURNAL_STREAM") != nil

    public init(verbosity: DebugVerbosity, sampling: DebugSampling, output: DebugOutput, logger: Logger) {
        self.verbosity = verbosity
        self.sampling = sampling
        self.logger = logger
        self.output = FileAppender(standardStream: output.descriptor, logger: logger)
    }

    public func print(_ batch: TelemetryBatch) async {
        var sink = ByteSink(capacity: 256 + batch.itemCount * 160)
        let time = Self.underJournal ? "" : Timestamp.iso8601()
        for part in batch.parts {
            DebugFormatter.appendLines(part, signal: batch.signal, verbosity: self.verbosity, time: time, to: &sink, sample: { keep in keep = self.keep() })
        }
        guard sink.byteCount > 0 else { return }
        do {
            try await self.output.append(sink.byteBuffer())
        } catch {
            let first = self.failed.withLockedValue { failed -> Bool in
                defer { failed = true }
                return !failed
            }
            if first {
                self.logger.warning("cannot write debug lines; dropping them from now on", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Sampling: per second, the first `initial` records, then one in `thereafter`.
    func keep() -> Bool {
        guard self.sampling.initial > 0 else { return true }
        let second = Timestamp.nowNanoseconds() / 1_000_000_000
        return self.samples.withLockedValue { state in
            if state.second != second { state = (second, 0) }
            state.count += 1
            if state.count <= self.sampling.initial { return true }
            return (state.count - self.sampling.initial) % self.sampling.thereafter == 0
        }
    }

    public func close() async {
        await self.output.close()
    }
}
