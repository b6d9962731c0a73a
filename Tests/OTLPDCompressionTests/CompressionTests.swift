import NIOCore
import OTLPDCompression
import Testing

struct CompressionTests {
    let text = ByteBuffer(string: String(repeating: "span checkout GET /cart 4bf92f3577b34da6 ", count: 2000))

    @Test("round trip", arguments: ContentCoding.allCases)
    func roundTrip(coding: ContentCoding) throws {
        let compressed = Compression.compress(self.text, coding: coding)
        if coding != .identity { #expect(compressed.readableBytes < self.text.readableBytes / 10) }
        #expect(try Decompression.decompress(compressed, coding: coding, limit: 1 << 20) == self.text)
    }

    @Test("concatenated units are one valid stream", arguments: [ContentCoding.gzip, .zstd])
    func concatenation(coding: ContentCoding) throws {
        var stream = Compression.compress(ByteBuffer(string: "first\n"), coding: coding)
        var second = Compression.compress(ByteBuffer(string: "second\n"), coding: coding)
        stream.writeBuffer(&second)
        // zstd reads every frame; a gzip reader for HTTP bodies stops after the first member.
        let decoded = try Decompression.decompress(stream, coding: coding, limit: 1024)
        #expect(String(buffer: decoded).hasPrefix("first\n"))
        if coding == .zstd { #expect(String(buffer: decoded) == "first\nsecond\n") }
    }

    @Test("a bomb is refused at the limit", arguments: [ContentCoding.gzip, .deflate, .zstd, .identity])
    func limit(coding: ContentCoding) {
        let compressed = Compression.compress(self.text, coding: coding)
        #expect(throws: DecompressionError.tooLarge(limit: 1000)) {
            try Decompression.decompress(compressed, coding: coding, limit: 1000)
        }
    }

    @Test("corrupt data is an error", arguments: [ContentCoding.gzip, .deflate, .zstd])
    func corrupt(coding: ContentCoding) {
        var compressed = Compression.compress(self.text, coding: coding)
        let truncated = compressed.readSlice(length: compressed.readableBytes / 2)!
        #expect(throws: DecompressionError.self) {
            try Decompression.decompress(ByteBuffer(string: "definitely not compressed"), coding: coding, limit: 1 << 20)
        }
        #expect(throws: DecompressionError.self) {
            try Decompression.decompress(truncated, coding: coding, limit: 1 << 20)
        }
    }

    @Test func headerValues() {
        #expect(ContentCoding(headerValue: "GZIP") == .gzip)
        #expect(ContentCoding(headerValue: "") == .identity)
        #expect(ContentCoding(headerValue: "zstd") == .zstd)
        #expect(ContentCoding(headerValue: "snappy") == nil)
    }
}

struct IgzipTests {
    @Test("parts compressed as one gzip member decompress to the parts joined, for sizes around the buffer boundaries")
    func partsRoundTrip() throws {
        for sizes in [[0], [1], [5, 0, 7], [70_000, 3, 200_000], [1 << 20]] {
            var generator = SystemRandomNumberGenerator()
            let parts = sizes.map { size in
                // Half random, half repeated: some of it compresses, some not.
                ByteBuffer(bytes: (0..<size).map { $0 % 2 == 0 ? UInt8.random(in: 0...255, using: &generator) : UInt8($0 % 7) })
            }
            let compressed = Compression.compress(parts, coding: .gzip)
            var joined = ByteBuffer()
            for part in parts { joined.writeImmutableBuffer(part) }
            let decompressed = try Decompression.decompress(compressed, coding: .gzip, limit: 1 << 24)
            #expect(decompressed == joined, "sizes \(sizes)")
            #expect(compressed.getBytes(at: compressed.readerIndex, length: 2) == [0x1F, 0x8B])
        }
    }
}
