import NIOConcurrencyHelpers
import NIOCore
import OTLPDSystem

#if canImport(Glibc)
import Glibc
#endif

/// Cuts bytes into the pieces a socket might deliver them in, so that the
/// handlers' partial reads are exercised. The pieces' sizes come from one
/// byte of the input itself: 0 is one piece; n > 0 gives sizes from 1 to 4n
/// bytes, from a small generator seeded with n (the same input, the same pieces).
enum Chunking {
    static func pieces(of bytes: ArraySlice<UInt8>, pattern: UInt8) -> [ByteBuffer] {
        guard pattern != 0 else { return [ByteBuffer(bytes: bytes)] }
        var state = UInt32(pattern)
        let largest = UInt32(pattern) * 4
        var pieces: [ByteBuffer] = []
        var rest = bytes
        while !rest.isEmpty {
            state = state &* 1_103_515_245 &+ 12_345
            let size = 1 + Int((state >> 16) % largest)
            pieces.append(ByteBuffer(bytes: rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return pieces
    }
}

/// A folder of this process's own for harnesses that work with files: in
/// /dev/shm where there is one, so that the fsyncs the product code does
/// cost nothing. Made once, emptied before each input, removed at exit.
final class ScratchDirectory: Sendable {
    let path: String

    init(_ name: String) {
        let base = FileOperations.isDirectory("/dev/shm") ? "/dev/shm" : "/tmp"
        self.path = "\(base)/otlpd-fuzz-\(getpid())-\(name)"
        do {
            try FileOperations.makeDirectories(forFile: self.path + "/x")
        } catch {
            fatalError("cannot make the scratch folder \(self.path): \(error)")
        }
        ScratchDirectory.made.withLockedValue { $0.append(self.path) }
    }

    /// Removes what the last input left (files only: the harnesses make no folders inside).
    func clear() {
        for name in (try? FileOperations.list(self.path)) ?? [] { try? FileOperations.remove(self.path + "/" + name) }
    }

    /// Writes `bytes` as file `name` in the folder, with no fsync.
    func write(_ name: String, _ bytes: some Collection<UInt8>) -> String {
        let path = self.path + "/" + name
        try? FileOperations.remove(path)
        do {
            let file = try AppendOnlyFile(path: path)
            try file.write(ByteBuffer(bytes: bytes))
            file.close()
        } catch {
            fatalError("cannot write \(path): \(error)")
        }
        return path
    }

    private static let made = NIOLockedValueBox<[String]>([])

    /// Removes every scratch folder this process made.
    static func removeAll() {
        for path in Self.made.withLockedValue({ $0 }) {
            for name in (try? FileOperations.list(path)) ?? [] { try? FileOperations.remove(path + "/" + name) }
            rmdir(path)
        }
    }
}
