import OTLPDWire
import Testing

struct RenderBufferTests {
    struct Refused: Error {}

    /// Renders `lines` lines of `width` bytes each, marking a boundary after each.
    func lines(_ count: Int, width: Int, from first: UInt8 = UInt8(ascii: "a")) -> RenderBuffer.Body {
        { sink, boundary in
            for index in 0..<count {
                for _ in 0..<(width - 1) { sink.append(first &+ UInt8(index % 26)) }
                sink.append(UInt8(ascii: "\n"))
                boundary(&sink)
            }
        }
    }

    @Test("output is handed on in pieces cut at boundaries once a piece is full, and nothing is lost or reordered")
    func piecesAtBoundaries() throws {
        let buffer = RenderBuffer(pieceSize: 100)
        var pieces: [[UInt8]] = []
        try buffer.render(self.lines(10, width: 30)) { (bytes: RawSpan) throws(Refused) in pieces.append(bytes.withUnsafeBytes { Array($0) }) }
        #expect(pieces.map(\.count) == [120, 120], "cut after the line that takes a piece past 100 bytes")
        #expect(buffer.pendingCount == 60)
        try buffer.render(self.lines(1, width: 30, from: UInt8(ascii: "A"))) { (bytes: RawSpan) throws(Refused) in pieces.append(bytes.withUnsafeBytes { Array($0) }) }
        try buffer.flush { (bytes: RawSpan) throws(Refused) in pieces.append(bytes.withUnsafeBytes { Array($0) }) }
        #expect(pieces.map(\.count) == [120, 120, 90], "a second rendering joins the pending piece")
        let text = String(decoding: pieces.joined(), as: UTF8.self)
        let expected = (0..<10).map { String(repeating: String(UnicodeScalar(UInt8(ascii: "a") + UInt8($0))), count: 29) + "\n" }.joined()
            + String(repeating: "A", count: 29) + "\n"
        #expect(text == expected)
        #expect(buffer.pendingCount == 0)
    }

    @Test("an output error stops the handing on, is thrown, and leaves nothing pending")
    func errorsStop() {
        let buffer = RenderBuffer(pieceSize: 50)
        var calls = 0
        #expect(throws: Refused.self) {
            try buffer.render(self.lines(10, width: 30)) { (_: RawSpan) throws(Refused) in
                calls += 1
                throw Refused()
            }
        }
        #expect(calls == 1)
        #expect(buffer.pendingCount == 0)
    }
}
