#if canImport(Glibc)
import Glibc
#endif

/// Reads the process environment without Foundation.
public enum ProcessEnvironment {
    public static func value(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

/// Small file reads for detection, without Foundation.
public enum FileProbe {
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// A small text file's contents (up to 64 KiB), or nil.
    public static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65_536 {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
