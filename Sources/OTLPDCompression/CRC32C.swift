internal import CISAL
import NIOCore

/// CRC-32C (Castagnoli), as iSCSI and ext4 use it, by ISA-L: the persistent
/// queue's check that a record on disk is the one written.
public enum CRC32C {
    /// The checksum of `parts` one after another.
    public static func checksum(_ parts: [ByteBuffer]) -> UInt32 {
        var crc: UInt32 = 0
        for part in parts { crc = Self.update(crc, part) }
        return crc
    }

    /// Continues `crc` (0 to start) over `bytes`.
    public static func update(_ crc: UInt32, _ bytes: ByteBuffer) -> UInt32 {
        bytes.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return crc }
            // ISA-L's crc32_iscsi takes and returns the register uninverted: invert around it.
            return ~crc32_iscsi(UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self)), Int32(raw.count), ~crc)
        }
    }
}
