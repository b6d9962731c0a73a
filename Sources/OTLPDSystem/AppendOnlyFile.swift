import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A POSIX error with the operation and path it happened on.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var code: Int32

    public init(_ operation: String, path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String {
        "\(self.operation) \(self.path): \(String(cString: strerror(self.code)))"
    }

    /// Out of disk space or quota: worth a retry later, not a bad request.
    public var isNoSpace: Bool { self.code == ENOSPC || self.code == EDQUOT }
}

/// A file opened for appending (O_APPEND: never truncated, never
/// overwritten). Its calls block: use it from a thread meant for that.
/// Not thread-safe: its owner serialises calls (under a lock).
public final class AppendOnlyFile: @unchecked Sendable {
    public let path: String
    private var descriptor: Int32
    /// Bytes in the file (at open, plus what was written since).
    public private(set) var size: Int

    /// Opens (creating it and its folders if needed) for appending.
    public init(path: String, permissions: mode_t = 0o644) throws(SystemError) {
        try FileOperations.makeDirectories(forFile: path)
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, permissions)
        guard descriptor >= 0 else { throw SystemError("open", path: path) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let error = SystemError("stat", path: path)
            Glibc.close(descriptor)
            throw error
        }
        self.path = path
        self.descriptor = descriptor
        self.size = Int(status.st_size)
    }

    /// A standard stream (1 or 2), not closed on `close()`.
    public init(standardStream descriptor: Int32, name: String) {
        self.path = name
        self.descriptor = descriptor
        self.size = 0
    }

    deinit {
        if self.descriptor > 2 { Glibc.close(self.descriptor) }
    }

    /// Writes every byte (retrying short writes and interrupts).
    public func write(_ buffer: ByteBuffer) throws(SystemError) {
        let outcome: SystemError? = buffer.withUnsafeReadableBytes { raw in self.writeAll(raw) }
        if let outcome { throw outcome }
    }

    /// Writes every byte of `bytes`.
    public func write(_ bytes: RawSpan) throws(SystemError) {
        let outcome: SystemError? = bytes.withUnsafeBytes { raw in self.writeAll(raw) }
        if let outcome { throw outcome }
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) -> SystemError? {
        var offset = 0
        while offset < raw.count {
            let written = Glibc.write(self.descriptor, raw.baseAddress! + offset, raw.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return SystemError("write", path: self.path)
            }
            offset += written
        }
        self.size += raw.count
        return nil
    }

    /// Asks the kernel to put the file's data on disk.
    public func sync() throws(SystemError) {
        guard self.descriptor > 2 else { return }
        if fdatasync(self.descriptor) != 0 && errno != EINVAL { throw SystemError("fsync", path: self.path) }
    }

    public func close() {
        if self.descriptor > 2 { Glibc.close(self.descriptor) }
        self.descriptor = -1
    }
}

/// The file operations rotation needs.
public enum FileOperations {
    public static func rename(_ from: String, to: String) throws(SystemError) {
        guard Glibc.rename(from, to) == 0 else { throw SystemError("rename", path: "\(from) -> \(to)") }
    }

    public static func remove(_ path: String) throws(SystemError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw SystemError("unlink", path: path) }
    }

    /// The names in a folder (not . or ..).
    public static func list(_ directory: String) throws(SystemError) -> [String] {
        guard let handle = opendir(directory) else { throw SystemError("opendir", path: directory) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates the folders above `path` that do not exist.
    public static func makeDirectories(forFile path: String) throws(SystemError) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        var current = path.hasPrefix("/") ? "" : "."
        for part in parts where !part.isEmpty {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw SystemError("mkdir", path: current)
            }
        }
    }

    /// The whole content of a file.
    public static func readAll(_ path: String) throws(SystemError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SystemError("open", path: path) }
        defer { Glibc.close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path)
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Cuts a file to `size` bytes.
    public static func truncate(_ path: String, to size: Int) throws(SystemError) {
        guard Glibc.truncate(path, off_t(size)) == 0 else { throw SystemError("truncate", path: path) }
    }

    /// The size of a file in bytes, or nil if it does not exist.
    public static func size(_ path: String) -> Int? {
        var status = stat()
        return stat(path, &status) == 0 ? Int(status.st_size) : nil
    }

    /// Replaces a file's content all at once: written beside it, put on
    /// disk, renamed over it, and the rename put on disk too. A crash leaves
    /// the old content or the new one, never a mix.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(SystemError) {
        let temporary = path + ".new"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw SystemError("open", path: temporary) }
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fdatasync(descriptor) == 0
        Glibc.close(descriptor)
        guard written == bytes.count else { throw SystemError("write", path: temporary) }
        guard synced else { throw SystemError("fsync", path: temporary) }
        try Self.rename(temporary, to: path)
        try Self.syncDirectory(Self.directory(of: path))
    }

    /// Puts a folder's entries (creations, renames, removals) on disk.
    public static func syncDirectory(_ directory: String) throws(SystemError) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SystemError("open", path: directory) }
        defer { Glibc.close(descriptor) }
        guard fsync(descriptor) == 0 else { throw SystemError("fsync", path: directory) }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Whether a file can be created or appended to at `path`, without writing to it.
    public static func checkWritable(_ path: String) -> SystemError? {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var existing = directory.isEmpty ? "/" : directory
        // The nearest folder that exists must be writable (the rest will be created).
        while !Self.exists(existing) {
            guard let slash = existing.lastIndex(of: "/") else {
                existing = "."
                break
            }
            existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
        }
        if Self.exists(path) {
            return access(path, W_OK) == 0 ? nil : SystemError("open", path: path)
        }
        guard Self.isDirectory(existing) else { return SystemError("create", path: path, code: ENOTDIR) }
        return access(existing, W_OK) == 0 ? nil : SystemError("create", path: path)
    }
}

/// An exclusive claim on a folder for as long as the process lives (or until
/// released): a second process asking for the same folder is refused, so two
/// otlpd never write one queue. The kernel drops the claim when the process
/// dies, even by `kill -9`.
public final class DirectoryLock: @unchecked Sendable {
    public let path: String
    private var descriptor: Int32

    /// Claims `directory` (its `.lock` file); throws EWOULDBLOCK when another process holds it.
    public init(directory: String) throws(SystemError) {
        let path = directory + "/.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw SystemError("open", path: path) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = SystemError("lock", path: path)
            Glibc.close(descriptor)
            throw error
        }
        // Who holds it, for the error the next claimant reports.
        let holder = Array("\(getpid())\n".utf8)
        if ftruncate(descriptor, 0) == 0 { _ = holder.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) } }
        self.path = path
        self.descriptor = descriptor
    }

    public func release() {
        if self.descriptor >= 0 { Glibc.close(self.descriptor) }
        self.descriptor = -1
    }

    deinit {
        self.release()
    }
}

/// A file opened for reading at any offset (pread): the persistent queue
/// reads its records where they are, not whole segments.
public final class ReadOnlyFile: @unchecked Sendable {
    public let path: String
    private let descriptor: Int32

    public init(path: String) throws(SystemError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SystemError("open", path: path) }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        Glibc.close(self.descriptor)
    }

    /// Up to `count` bytes from `offset` into a buffer of their own (one copy: the kernel's); fewer at the end of the file.
    public func readBuffer(at offset: Int, count: Int) throws(SystemError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        while buffer.readableBytes < count {
            let filled = buffer.readableBytes
            var result = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count - filled) { raw in
                result = pread(self.descriptor, raw.baseAddress!, count - filled, off_t(offset + filled))
                return max(0, result)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: self.path)
            }
            if result == 0 { break }
        }
        return buffer
    }

    /// Up to `count` bytes from `offset`; fewer at the end of the file.
    public func read(at offset: Int, count: Int) throws(SystemError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = bytes.withUnsafeMutableBytes { raw in
                pread(self.descriptor, raw.baseAddress! + filled, count - filled, off_t(offset + filled))
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: self.path)
            }
            if got == 0 { break }
            filled += got
        }
        bytes.removeLast(count - filled)
        return bytes
    }
}
