import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTLPDCore
import OTLPDSystem
import OTLPDWire

/// When an output file is rotated and how many old ones are kept, as the
/// Collector's file exporter (lumberjack) does.
public struct RotationPolicy: Sendable, Equatable {
    /// Rotate before a write would take the file past this size; 0: never.
    public var maxBytes: Int
    /// Delete backups older than this many days; 0: keep them.
    public var maxDays: Int
    /// Keep at most this many backups; 0: keep them all.
    public var maxBackups: Int
    /// Backup names in local time rather than UTC.
    public var localTime: Bool

    public init(maxBytes: Int = 100 << 20, maxDays: Int = 0, maxBackups: Int = 100, localTime: Bool = false) {
        self.maxBytes = maxBytes
        self.maxDays = maxDays
        self.maxBackups = maxBackups
        self.localTime = localTime
    }
}

/// What one caller adds to a file.
package enum FileRecord: Sendable {
    case bytes(ByteBuffer)
    /// Rendered by the writing thread into a reused buffer and written in
    /// pieces as it goes, so the kernel copies from cache and nothing is
    /// allocated per request. The renderer calls the boundary it is given
    /// where the output may be cut (line ends).
    case rendered(@Sendable (inout ByteSink, _ boundary: (inout ByteSink) -> Void) -> Void)
}

/// Appends to one file from many requests at once. Writes that arrive while
/// one is under way are gathered and written together by one pool thread
/// (group commit), and each caller resumes only once its bytes are with the
/// kernel: what a request is acknowledged for is in the file.
public final class FileAppender: Sendable {
    public let path: String
    private let rotation: RotationPolicy?
    private let logger: Logger
    private let threadPool: NIOThreadPool
    private let queue = NIOLockedValueBox(Queue())
    /// Used only by the one drain that runs at a time.
    private let renderBuffer = RenderBuffer()
    private let memory: MemoryGuard?
    /// Touched only by the one drain that runs at a time, and by `sync`.
    private let output = NIOLockedValueBox(Output(file: nil, unsynced: 0, standardStream: nil))
    private let syncs = NIOLockedValueBox(0)

    private struct Queue {
        var pending: [FileRecord] = []
        var waiters: [CheckedContinuation<Result<Void, ConsumeError>, Never>] = []
        var draining = false
    }

    private struct Output {
        var file: AppendOnlyFile?
        var unsynced = 0
        let standardStream: Int32?
    }

    /// An appender for `path` (opened at the first write, or by `open`).
    public init(path: String, rotation: RotationPolicy?, logger: Logger, threadPool: NIOThreadPool = .singleton, memory: MemoryGuard? = nil) {
        self.path = path
        self.rotation = rotation
        self.logger = logger
        self.threadPool = threadPool
        self.memory = memory
        self.output.withLockedValue { $0 = Output(file: nil, unsynced: 0, standardStream: nil) }
    }

    /// An appender for standard output or error (no rotation, no fsync).
    public init(standardStream descriptor: Int32, logger: Logger, threadPool: NIOThreadPool = .singleton) {
        self.path = descriptor == 1 ? "stdout" : "stderr"
        self.rotation = nil
        self.logger = logger
        self.threadPool = threadPool
        self.memory = nil
        self.output.withLockedValue {
            $0 = Output(file: AppendOnlyFile(standardStream: descriptor, name: descriptor == 1 ? "stdout" : "stderr"), unsynced: 0, standardStream: descriptor)
        }
    }

    /// Opens the file now, so that a start fails on an unwritable path.
    public func open() throws {
        try self.output.withLockedValue { output in
            if output.file == nil { output.file = try AppendOnlyFile(path: self.path) }
        }
    }

    /// Appends `bytes` and returns once they are written to the file.
    public func append(_ bytes: ByteBuffer) async throws(ConsumeError) {
        try await self.append(.bytes(bytes))
    }

    /// Appends a record and returns once it is written to the file.
    package func append(_ record: FileRecord) async throws(ConsumeError) {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, ConsumeError>, Never>) in
            let startDrain = self.queue.withLockedValue { queue -> Bool in
                queue.pending.append(record)
                queue.waiters.append(continuation)
                if queue.draining { return false }
                queue.draining = true
                return true
            }
            if startDrain {
                self.threadPool.submit { _ in self.drain() }
            }
        }
        try result.get()
    }

    /// Writes everything queued, group by group, until the queue is empty.
    private func drain() {
        while true {
            let work = self.queue.withLockedValue { queue -> ([FileRecord], [CheckedContinuation<Result<Void, ConsumeError>, Never>])? in
                guard !queue.pending.isEmpty else {
                    queue.draining = false
                    return nil
                }
                defer {
                    queue.pending.removeAll(keepingCapacity: true)
                    queue.waiters.removeAll(keepingCapacity: true)
                }
                return (queue.pending, queue.waiters)
            }
            guard let (buffers, waiters) = work else { return }
            let result: Result<Void, ConsumeError>
            do {
                try self.write(buffers)
                result = .success(())
            } catch {
                self.logger.error("cannot write output file", metadata: ["path": "\(self.path)", "error": "\(error)"])
                let reason = error.isNoSpace ? "the disk is full" : "\(error)"
                result = .failure(.retryable("the file exporter cannot write \(self.path): \(reason)", after: .seconds(5)))
            }
            for waiter in waiters { waiter.resume(returning: result) }
        }
    }

    private func write(_ records: [FileRecord]) throws(SystemError) {
        let outcome = self.output.withLockedValue { (output: inout Output) -> Result<Void, SystemError> in
            do throws(SystemError) {
                if output.file == nil { output.file = try AppendOnlyFile(path: self.path) }
                // Renderings of consecutive records share pieces: a group of small requests is one write.
                func writePiece(_ bytes: RawSpan) throws(SystemError) {
                    // The rendering counts as held while it is written.
                    self.memory?.charge(bytes.byteCount)
                    defer { self.memory?.release(bytes.byteCount) }
                    try self.rotateIfNeeded(&output, adding: bytes.byteCount)
                    try output.file!.write(bytes)
                    output.unsynced += bytes.byteCount
                }
                for record in records {
                    switch record {
                    case .bytes(let buffer):
                        try self.renderBuffer.flush(then: writePiece)
                        try self.rotateIfNeeded(&output, adding: buffer.readableBytes)
                        try output.file!.write(buffer)
                        output.unsynced += buffer.readableBytes
                    case .rendered(let render):
                        try self.renderBuffer.render(render, then: writePiece)
                    }
                }
                try self.renderBuffer.flush(then: writePiece)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try outcome.get()
    }

    private func rotateIfNeeded(_ output: inout Output, adding count: Int) throws(SystemError) {
        if let rotation = self.rotation, rotation.maxBytes > 0, let file = output.file, file.size > 0, file.size + count > rotation.maxBytes {
            try self.rotate(&output, rotation)
        }
    }

    /// How many times written data was put on disk (for tests and diagnostics).
    public var syncCount: Int { self.syncs.withLockedValue { $0 } }

    /// Puts written data on disk if any was written since the last call.
    public func sync() {
        self.output.withLockedValue { output in
            guard output.unsynced > 0, output.standardStream == nil, let file = output.file else { return }
            do {
                try file.sync()
                output.unsynced = 0
                self.syncs.withLockedValue { $0 += 1 }
            } catch {
                self.logger.warning("cannot fsync output file", metadata: ["path": "\(self.path)", "error": "\(error)"])
            }
        }
    }

    /// Waits for queued writes, then syncs and closes the file.
    public func close() async {
        while self.queue.withLockedValue({ $0.draining || !$0.pending.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        self.sync()
        self.output.withLockedValue { output in
            if output.standardStream == nil {
                output.file?.close()
                output.file = nil
            }
        }
    }

    // MARK: Rotation

    /// `dir/name-2026-11-21T10-00-00.000.ext`, as lumberjack names backups.
    package static func backupPath(for path: String, nanoseconds: Int64, localTime: Bool) -> String {
        let (directory, base, ext) = Self.split(path)
        return directory + base + "-" + Timestamp.fileStamp(nanoseconds: nanoseconds, local: localTime) + ext
    }

    /// (directory with trailing slash or "", name without extension, extension with dot or "").
    package static func split(_ path: String) -> (String, String, String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (directory, name, "") }
        return (directory, String(name[..<dot]), String(name[dot...]))
    }

    private func rotate(_ output: inout Output, _ rotation: RotationPolicy) throws(SystemError) {
        try? output.file?.sync()
        output.file?.close()
        output.file = nil
        output.unsynced = 0
        var stamp = Timestamp.nowNanoseconds()
        var backup = Self.backupPath(for: self.path, nanoseconds: stamp, localTime: rotation.localTime)
        while FileOperations.exists(backup) {
            stamp += 1_000_000
            backup = Self.backupPath(for: self.path, nanoseconds: stamp, localTime: rotation.localTime)
        }
        try FileOperations.rename(self.path, to: backup)
        output.file = try AppendOnlyFile(path: self.path)
        self.logger.info("rotated output file", metadata: ["path": "\(self.path)", "backup": "\(backup)"])
        self.pruneBackups(rotation)
    }

    /// Removes backups beyond `maxBackups` and older than `maxDays`.
    package func pruneBackups(_ rotation: RotationPolicy) {
        let (directory, base, ext) = Self.split(self.path)
        guard let names = try? FileOperations.list(directory.isEmpty ? "." : directory) else { return }
        var backups: [(name: String, stamp: Int64)] = []
        for name in names where name.hasPrefix(base + "-") && name.hasSuffix(ext) {
            let stampText = name.dropFirst(base.count + 1).dropLast(ext.count)
            if let stamp = Timestamp.parseFileStamp(stampText, local: rotation.localTime) { backups.append((name, stamp)) }
        }
        backups.sort { $0.stamp > $1.stamp }
        let cutoff = Timestamp.nowNanoseconds() - Int64(rotation.maxDays) * 86_400 * 1_000_000_000
        for (index, backup) in backups.enumerated() {
            let tooMany = rotation.maxBackups > 0 && index >= rotation.maxBackups
            let tooOld = rotation.maxDays > 0 && backup.stamp < cutoff
            if tooMany || tooOld {
                try? FileOperations.remove(directory + backup.name)
            }
        }
    }
}
