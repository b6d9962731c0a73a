internal import CLibCrypto

/// SHA-256, from the system's libcrypto.
public enum SHA256 {
    public static let digestCount = 32

    /// Writes the digest of `data` to the first 32 bytes of `output`.
    public static func digest(_ data: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= Self.digestCount)
        let bytes = data.baseAddress?.assumingMemoryBound(to: UInt8.self)
        _ = CLibCrypto.SHA256(bytes, data.count, output.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    /// The digest of `data` as 64 lowercase hex digits.
    public static func hex(_ data: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: Self.digestCount)
        data.withUnsafeBytes { input in
            digest.withUnsafeMutableBytes { Self.digest(input, into: $0) }
        }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(2 * Self.digestCount)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
