internal import CZstd
import NIOCore

/// The thin wrapper over libzstd: one-shot frame compression, and streaming
/// decompression with an output limit.
enum ZstdCodec {
    static var version: String { String(cString: ZSTD_versionString()) }

    static func compress(_ body: ByteBuffer) -> ByteBuffer {
        body.withUnsafeReadableBytes { input in
            let bound = ZSTD_compressBound(input.count)
            var output = ByteBufferAllocator().buffer(capacity: bound)
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                let written = ZSTD_compress(out.baseAddress, out.count, input.baseAddress, input.count, 3)
                precondition(ZSTD_isError(written) == 0, "zstd compression failed")
                return written
            }
            return output
        }
    }

    static func decompress(_ body: ByteBuffer, limit: Int) throws(DecompressionError) -> ByteBuffer {
        guard let stream = ZSTD_createDStream() else { throw .corrupt(.zstd) }
        defer { ZSTD_freeDStream(stream) }
        let outcome: Result<ByteBuffer, DecompressionError> = body.withUnsafeReadableBytes { input in
            // Frames that state their size get one exact allocation.
            let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
            if declared != ZSTD_CONTENTSIZE_ERROR && declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > UInt64(limit) {
                return .failure(.tooLarge(limit: limit))
            }
            var capacity = ZSTD_DStreamOutSize()
            if declared != ZSTD_CONTENTSIZE_ERROR && declared != ZSTD_CONTENTSIZE_UNKNOWN {
                capacity = max(Int(declared), 64)
            }
            var output = ByteBufferAllocator().buffer(capacity: min(capacity, limit + 1))
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            var lastResult = 1
            while inBuffer.pos < inBuffer.size || lastResult != 0 {
                if output.writableBytes == 0 {
                    guard output.readableBytes <= limit else { return .failure(.tooLarge(limit: limit)) }
                    output.reserveCapacity(minimumWritableBytes: min(max(output.readableBytes, 64 * 1024), limit + 1))
                }
                var failed = false
                let progress = output.writeWithUnsafeMutableBytes(minimumWritableBytes: 1) { out in
                    var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let result = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                    if ZSTD_isError(result) != 0 {
                        failed = true
                    } else {
                        lastResult = result
                    }
                    return outBuffer.pos
                }
                if failed { return .failure(.corrupt(.zstd)) }
                if output.readableBytes > limit { return .failure(.tooLarge(limit: limit)) }
                if progress == 0 && inBuffer.pos == inBuffer.size && lastResult != 0 && output.writableBytes > 0 {
                    // The input ended inside a frame.
                    return .failure(.corrupt(.zstd))
                }
            }
            return .success(output)
        }
        return try outcome.get()
    }
}
