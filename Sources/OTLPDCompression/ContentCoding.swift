import NIOCore

/// A compression of request bodies, gRPC messages and output files.
public enum ContentCoding: String, Sendable, CaseIterable, CustomStringConvertible {
    case identity
    case gzip
    /// HTTP's "deflate" is the zlib format.
    case deflate
    case zstd

    /// The coding named by a `Content-Encoding` / `grpc-encoding` value, or nil if unsupported.
    public init?(headerValue: String) {
        switch headerValue.lowercased() {
        case "", "identity": self = .identity
        case "gzip", "x-gzip": self = .gzip
        case "deflate", "zlib": self = .deflate
        case "zstd": self = .zstd
        default: return nil
        }
    }

    public var description: String { self.rawValue }
}

/// Why a compressed body could not be read.
public enum DecompressionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The decompressed body would exceed the limit: answered with 413 / RESOURCE_EXHAUSTED.
    case tooLarge(limit: Int)
    case corrupt(ContentCoding)

    public var description: String {
        switch self {
        case .tooLarge(let limit): "decompressed body exceeds the \(limit)-byte limit"
        case .corrupt(let coding): "body is not valid \(coding) data"
        }
    }
}

public enum Decompression {
    /// Decompresses `body`, refusing to produce more than `limit` bytes so that
    /// a small "zip bomb" cannot take memory.
    public static func decompress(
        _ body: ByteBuffer,
        coding: ContentCoding,
        limit: Int
    ) throws(DecompressionError) -> ByteBuffer {
        switch coding {
        case .identity:
            guard body.readableBytes <= limit else { throw .tooLarge(limit: limit) }
            return body
        case .gzip, .deflate:
            return try ZlibCodec.decompress(body, coding: coding, limit: limit)
        case .zstd:
            return try ZstdCodec.decompress(body, limit: limit)
        }
    }
}

public enum Compression {
    /// `body` as one complete gzip member / zlib stream / zstd frame. Complete
    /// units concatenate into a valid stream, so appending them to a file
    /// keeps it readable by `zcat` / `zstdcat` at every moment.
    public static func compress(_ body: ByteBuffer, coding: ContentCoding) -> ByteBuffer {
        Self.compress([body], coding: coding)
    }

    /// `parts`, one after another, compressed as one unit without being
    /// copied together first (gzip; the other codings join them).
    public static func compress(_ parts: [ByteBuffer], coding: ContentCoding) -> ByteBuffer {
        switch coding {
        case .identity:
            return Self.joined(parts)
        case .gzip:
            return IgzipCodec.gzip(parts)
        case .deflate:
            return ZlibCodec.compress(Self.joined(parts), coding: coding)
        case .zstd:
            return ZstdCodec.compress(Self.joined(parts))
        }
    }

    private static func joined(_ parts: [ByteBuffer]) -> ByteBuffer {
        guard parts.count != 1 else { return parts[0] }
        var joined = ByteBufferAllocator().buffer(capacity: parts.reduce(0) { $0 + $1.readableBytes })
        for part in parts { joined.writeImmutableBuffer(part) }
        return joined
    }
}

/// The compression libraries this process runs with.
public enum CompressionLibraries {
    public static var versions: String {
        "zlib \(ZlibCodec.version), zstd \(ZstdCodec.version), ISA-L igzip"
    }
}
