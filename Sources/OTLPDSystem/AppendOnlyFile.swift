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
