import OTLPDCompression
import OTLPDHTTP2
import OTLPDWire

public enum OTLPDVersion {
    public static let number = "0.1.0"

    /// `otlpd 0.1.0 (nghttp2 1.52.0, protobuf-c 1.4.1, zlib ..., zstd ...)`
    public static var full: String {
        "otlpd \(Self.number) (nghttp2 \(NGHTTP2Library.version), protobuf-c \(ProtobufCLibrary.version), \(CompressionLibraries.versions))"
    }
}
