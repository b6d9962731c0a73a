/// Memory for the bytes an edit makes (a hashed value, a converted number,
/// an encoded `AnyValue`), handed out as `WireBytes` that stay where they
/// are until `reset`: chunks are never moved, so earlier bytes stay valid
/// while later ones are written.
package final class ScratchArena {
    private var chunks: [(base: UnsafeMutablePointer<UInt8>, capacity: Int)] = []
    private var used = 0
    private let chunkSize: Int

    package init(chunkSize: Int = 16 * 1024) {
        self.chunkSize = chunkSize
    }

    deinit {
        for chunk in self.chunks { chunk.base.deallocate() }
    }

    /// Forgets everything written; keeps the first chunk for the next use.
    package func reset() {
        for chunk in self.chunks.dropFirst() { chunk.base.deallocate() }
        if self.chunks.count > 1 { self.chunks.removeLast(self.chunks.count - 1) }
        self.used = 0
    }

    /// `count` bytes written by `body`, which returns how many it used (at most `count`).
    @inline(__always)
    package func write(upTo count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) -> WireBytes {
        if self.chunks.isEmpty || self.used + count > self.chunks[self.chunks.count - 1].capacity {
            let capacity = max(self.chunkSize, count)
            self.chunks.append((.allocate(capacity: capacity), capacity))
            self.used = 0
        }
        let start = self.chunks[self.chunks.count - 1].base + self.used
        let written = body(start)
        self.used += written
        return WireBytes(start: UnsafePointer(start), count: written)
    }

    /// A copy of `parts`, one after the other.
    package func concatenate(_ parts: WireBytes...) -> WireBytes {
        let total = parts.reduce(0) { $0 + $1.count }
        return self.write(upTo: total) { out in
            var offset = 0
            for part in parts where part.count > 0 {
                (out + offset).update(from: part.start, count: part.count)
                offset += part.count
            }
            return offset
        }
    }
}
