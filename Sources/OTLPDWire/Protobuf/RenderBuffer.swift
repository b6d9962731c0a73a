/// A buffer reused from one encoding to the next by the one thread that
/// writes a file: output is rendered into it and written at once, while it
/// is still in cache, and no buffer is allocated per request.
/// Not thread-safe: its owner uses it from one thread at a time.
package final class RenderBuffer: @unchecked Sendable {
    private var sink = ByteSink(capacity: 1 << 20)
    /// Renderings up to this size reuse the buffer; a larger one is freed after its write.
    static let keptCapacity = 8 << 20

    package init() {}

    /// Renders with `body`, then hands the bytes to `use`.
    package func render<Result, Failure: Error>(
        _ body: (inout ByteSink) -> Void,
        then use: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        self.sink.removeAll()
        body(&self.sink)
        let outcome: Swift.Result<Result, Failure> = self.sink.withBytes { bytes in
            do throws(Failure) {
                return .success(try use(bytes))
            } catch {
                return .failure(error)
            }
        }
        // One huge request should not keep its rendering's memory for good.
        if self.sink.capacity > Self.keptCapacity { self.sink = ByteSink(capacity: 1 << 20) }
        return try outcome.get()
    }
}
