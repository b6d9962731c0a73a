internal import CLinuxShims

#if canImport(Glibc)
import Glibc
#endif

/// The process's memory as the kernel sees it, for the memory_limiter's
/// periodic check.
public enum ProcessMemory {
    /// Resident set size in bytes (`/proc/self/statm`), or nil where there is none.
    public static func residentBytes() -> Int? {
        guard let text = Self.read("/proc/self/statm") else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The memory this process may use: its cgroup's limit (v2, then v1)
    /// when it has one, else the machine's total.
    public static func availableBytes() -> Int? {
        if let text = Self.read("/sys/fs/cgroup/memory.max")?.trimmingNewline, text != "max", let bytes = Int(text) {
            return bytes
        }
        // cgroup v1 reports "no limit" as a huge number.
        if let text = Self.read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?.trimmingNewline, let bytes = Int(text), bytes < 1 << 60 {
            return bytes
        }
        guard let text = Self.read("/proc/meminfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kibibytes = Int(parts[1]) { return kibibytes * 1024 }
        }
        return nil
    }

    /// Gives memory that malloc holds free back to the kernel.
    public static func trimHeap() {
        _ = malloc_trim(0)
    }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    fileprivate var trimmingNewline: String {
        var text = self
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text
    }
}
