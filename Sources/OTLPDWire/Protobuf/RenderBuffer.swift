/// A buffer reused from one encoding to the next by the one thread that
/// writes a file: output is rendered into it and written in pieces while it
/// is still in cache, and no buffer is allocated per request.
///
/// A renderer marks the places where what it wrote may be handed on (the
/// end of a JSON line) by calling the boundary it is given; past
/// `pieceSize` bytes the piece goes to the output and the buffer starts
/// over. So a batch of any size is rendered in a buffer that stays in the
/// cache and never grows (a batch rendered whole would grow it, with a copy
/// at each doubling, into memory the kernel must first map and zero).
/// Not thread-safe: its owner uses it from one thread at a time.
package final class RenderBuffer: @unchecked Sendable {
    /// Renders into the sink, calling the boundary (with the same sink) where the output may be cut.
    package typealias Body = (inout ByteSink, _ boundary: (inout ByteSink) -> Void) -> Void

    private var sink: ByteSink
    let pieceSize: Int

    package init(pieceSize: Int = 256 << 10) {
        self.pieceSize = pieceSize
        self.sink = ByteSink(capacity: pieceSize + pieceSize / 4)
    }

    /// What was rendered and not yet handed on.
    package var pendingCount: Int { self.sink.byteCount }

    /// Renders with `body` after what is pending, handing every piece of at
    /// least `pieceSize` bytes to `use` at the boundaries `body` marks. The
    /// rest stays pending for the next rendering or `flush`. After an error
    /// from `use`, later pieces are dropped and the error is thrown.
    package func render<Failure: Error>(
        _ body: Body,
        then use: (RawSpan) throws(Failure) -> Void
    ) throws(Failure) {
        let pieceSize = self.pieceSize
        // The boundary is called only from inside `body`, never kept.
        let failure = withoutActuallyEscaping(use) { use -> Failure? in
            var failure: Failure?
            body(&self.sink) { (sink: inout ByteSink) in
                guard sink.byteCount >= pieceSize else { return }
                if failure == nil {
                    failure = Self.handOn(&sink, use)
                }
                sink.removeAll()
            }
            return failure
        }
        if let failure {
            self.sink.removeAll()
            throw failure
        }
    }

    /// Hands what is pending to `use`.
    package func flush<Failure: Error>(then use: (RawSpan) throws(Failure) -> Void) throws(Failure) {
        guard self.sink.byteCount > 0 else { return }
        let failure = Self.handOn(&self.sink, use)
        self.sink.removeAll()
        // One huge line (a resource larger than a piece) should not keep its memory for good.
        if self.sink.capacity > self.pieceSize * 4 { self.sink = ByteSink(capacity: self.pieceSize + self.pieceSize / 4) }
        if let failure { throw failure }
    }

    private static func handOn<Failure: Error>(
        _ sink: inout ByteSink, _ use: (RawSpan) throws(Failure) -> Void
    ) -> Failure? {
        sink.withBytes { (bytes: UnsafeRawBufferPointer) -> Failure? in
            do throws(Failure) {
                try use(RawSpan(_unsafeBytes: bytes))
                return nil
            } catch {
                return error
            }
        }
    }
}
