import NIOCore

/// Splits a request by resource without copying: one top-level entry
/// (`resource_spans` / `resource_metrics` / `resource_logs`) is by itself a
/// valid request of the same type, so each is a slice of the payload.
package enum ResourceSplitter {
    package struct Part {
        /// A request holding exactly this one resource.
        package var request: ByteBuffer
        /// The string value of the asked-for resource attribute, if present.
        package var attributeValue: String?
    }

    package static func split(_ payload: ByteBuffer, attribute: String) -> [Part] {
        let key = Array(attribute.utf8)
        var parts: [Part] = []
        let base = payload.readerIndex
        WireReader.withReader(payload) { (request: inout WireReader) in
            do throws(WireError) {
                while !request.isAtEnd {
                    let start = request.offset
                    let (number, wireType) = try request.readTag()
                    guard number == 1, wireType == 2 else {
                        try request.skip(wireType: wireType, number: number)
                        continue
                    }
                    let resource = try request.readLengthDelimited()
                    let slice = payload.getSlice(at: base + start, length: request.offset - start)!
                    parts.append(Part(request: slice, attributeValue: try Self.attribute(key, in: resource)))
                }
            } catch {
                // Validated bytes: nothing malformed follows. Stop at what was read.
            }
        }
        return parts
    }

    /// The string value of resource attribute `key` in a ResourceX message.
    package static func attribute(_ key: [UInt8], in resourceX: WireReader) throws(WireError) -> String? {
        var scan = resourceX
        var found: String?
        while !scan.isAtEnd {
            let (number, wireType) = try scan.readTag()
            guard number == 1, wireType == 2 else {
                try scan.skip(wireType: wireType, number: number)
                continue
            }
            var resource = try scan.readLengthDelimited()
            while !resource.isAtEnd {
                let (field, type) = try resource.readTag()
                guard field == 1, type == 2 else {
                    try resource.skip(wireType: type, number: field)
                    continue
                }
                let attribute = try resource.readLengthDelimited()
                if let keyValue = ScalarKeyValue.read(attribute), keyValue.key.equals(key) {
                    switch keyValue.value {
                    case .string(let value): found = value.string
                    case .int(let value): found = String(value)
                    case .bool(let value): found = String(value)
                    case .double(let value): found = String(value)
                    case .absent, .empty: break
                    }
                }
            }
        }
        return found
    }
}
