internal import CZlib
import NIOCore

/// The thin wrapper over zlib: gzip and zlib ("deflate") streams, decoded
/// with an output limit and only when complete.
enum ZlibCodec {
    static var version: String { String(cString: zlibVersion()) }

    /// zlib's window bits: 15, plus 16 for a gzip header and trailer.
    static func windowBits(_ coding: ContentCoding) -> Int32 {
        coding == .gzip ? 15 + 16 : 15
    }

    static func compress(_ body: ByteBuffer, coding: ContentCoding) -> ByteBuffer {
        var stream = z_stream()
        precondition(otlpd_deflate_init(&stream, 6, Self.windowBits(coding)) == Z_OK, "zlib deflateInit failed")
        defer { deflateEnd(&stream) }
        return body.withUnsafeReadableBytes { input in
            let bound = Int(deflateBound(&stream, uLong(input.count))) + 32
            var output = ByteBufferAllocator().buffer(capacity: bound)
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(out.count)
                let result = deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "zlib deflate did not finish within deflateBound")
                return out.count - Int(stream.avail_out)
            }
            return output
        }
    }

    static func decompress(_ body: ByteBuffer, coding: ContentCoding, limit: Int) throws(DecompressionError) -> ByteBuffer {
        var stream = z_stream()
        guard otlpd_inflate_init(&stream, Self.windowBits(coding)) == Z_OK else { throw .corrupt(coding) }
        defer { inflateEnd(&stream) }
        let outcome: Result<ByteBuffer, DecompressionError> = body.withUnsafeReadableBytes { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            // OTLP payloads compress 2-10x: start at 4x, grow by doubling, never past the limit.
            var output = ByteBufferAllocator().buffer(capacity: min(max(input.count * 4, 4096), limit + 1))
            while true {
                if output.writableBytes == 0 {
                    guard output.readableBytes <= limit else { return .failure(.tooLarge(limit: limit)) }
                    output.reserveCapacity(minimumWritableBytes: min(output.readableBytes, limit + 1 - output.readableBytes))
                }
                var result: Int32 = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 1) { out in
                    stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.avail_out = uInt(out.count)
                    result = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                if output.readableBytes > limit { return .failure(.tooLarge(limit: limit)) }
                switch result {
                case Z_STREAM_END:
                    return .success(output)
                case Z_OK:
                    continue
                case Z_BUF_ERROR where stream.avail_in > 0 || output.writableBytes == 0:
                    continue
                default:
                    // Z_BUF_ERROR with all input consumed: the stream was cut short.
                    return .failure(.corrupt(coding))
                }
            }
        }
        return try outcome.get()
    }
}
