import NIOCore
import OTLPDCompression
import OTLPDHTTP

/// A gRPC request body as the receiver gets it: deframed, then decompressed
/// with each coding (gzip, deflate, zstd, identity) under a 256 KiB limit.
/// A body that is not one gRPC message is decompressed whole, as an
/// OTLP/HTTP body with a `Content-Encoding` would be.
///
/// Invariants: nothing decompresses past the limit, and what decompressed
/// compresses and decompresses back to the same bytes.
enum GRPCHarness {
    static let limit = 256 << 10

    static func run(_ input: [UInt8]) {
        let body = ByteBuffer(bytes: input)
        if case .bytes(let size) = GRPCFraming.expectedBodySize(prefix: body) {
            invariant(size >= GRPCFraming.prefixLength, "expected body size \(size)")
        }
        let message: ByteBuffer
        do {
            message = try GRPCFraming.deframe(body).message
            invariant(message.readableBytes + GRPCFraming.prefixLength == input.count, "deframed \(message.readableBytes) of \(input.count) bytes")
        } catch {
            message = body
        }
        for coding in ContentCoding.allCases {
            let plain: ByteBuffer
            do {
                plain = try Decompression.decompress(message, coding: coding, limit: Self.limit)
            } catch {
                continue
            }
            invariant(plain.readableBytes <= Self.limit, "\(coding): \(plain.readableBytes) bytes past the \(Self.limit)-byte limit")
            let again = try? Decompression.decompress(Compression.compress(plain, coding: coding), coding: coding, limit: Self.limit)
            invariant(again == plain, "\(coding): \(plain.readableBytes) bytes do not survive compression and decompression")
        }
    }
}
