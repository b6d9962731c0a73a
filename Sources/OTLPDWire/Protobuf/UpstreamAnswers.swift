import NIOCore

/// What otlpd reads from an upstream's answers: the partial success of an
/// `Export*ServiceResponse`, and the `google.rpc.Status` of a refusal with
/// the delay its `RetryInfo` asks for. Read with the wire walker; a field
/// that does not parse is treated as absent, since an answer is advice.
package enum UpstreamAnswers {
    /// An `Export*ServiceResponse`'s `partial_success`: how many items the
    /// upstream rejected (field 1, whatever the signal) and why.
    package struct PartialSuccess: Sendable, Equatable {
        package var rejected: Int64
        package var message: String

        package init(rejected: Int64, message: String) {
            self.rejected = rejected
            self.message = message
        }
    }

    /// Nil when the response says nothing was rejected and carries no message.
    package static func partialSuccess(_ response: ByteBuffer) -> PartialSuccess? {
        let found: PartialSuccess? = try? WireReader.withReader(response) { (reader: inout WireReader) throws(WireError) -> PartialSuccess? in
            var result: PartialSuccess?
            while !reader.isAtEnd {
                let (number, wireType) = try reader.readTag()
                guard number == 1, wireType == 2 else {
                    try reader.skip(wireType: wireType, number: number)
                    continue
                }
                var partial = try reader.readLengthDelimited()
                var value = PartialSuccess(rejected: 0, message: "")
                while !partial.isAtEnd {
                    let (field, type) = try partial.readTag()
                    if field == 1, type == 0 {
                        value.rejected = Int64(bitPattern: try partial.readVarint())
                    } else if field == 2, type == 2 {
                        value.message = try partial.readLengthDelimited().bytes.string
                    } else {
                        try partial.skip(wireType: type, number: field)
                    }
                }
                result = value
            }
            return result
        }
        guard let found, found.rejected != 0 || !found.message.isEmpty else { return nil }
        return found
    }

    /// A `google.rpc.Status`'s code, message and, from a `RetryInfo` detail, the delay asked for.
    package struct Status: Sendable, Equatable {
        package var code: Int32
        package var message: String
        package var retryDelay: Duration?
    }

    package static func status(_ bytes: ByteBuffer) -> Status? {
        try? WireReader.withReader(bytes) { (reader: inout WireReader) throws(WireError) -> Status in
            var status = Status(code: 0, message: "", retryDelay: nil)
            while !reader.isAtEnd {
                let (number, wireType) = try reader.readTag()
                switch (number, wireType) {
                case (1, 0):
                    status.code = Int32(truncatingIfNeeded: try reader.readVarint())
                case (2, 2):
                    status.message = try reader.readLengthDelimited().bytes.string
                case (3, 2):
                    if let delay = try Self.retryDelay(inAny: try reader.readLengthDelimited()) { status.retryDelay = delay }
                default:
                    try reader.skip(wireType: wireType, number: number)
                }
            }
            return status
        }
    }

    /// The delay of a `google.protobuf.Any` holding a `google.rpc.RetryInfo`; nil for any other detail.
    private static func retryDelay(inAny content: WireReader) throws(WireError) -> Duration? {
        var any = content
        var isRetryInfo = false
        var value: WireReader?
        while !any.isAtEnd {
            let (number, wireType) = try any.readTag()
            if number == 1, wireType == 2 {
                isRetryInfo = try any.readLengthDelimited().bytes.string.hasSuffix("/google.rpc.RetryInfo")
            } else if number == 2, wireType == 2 {
                value = try any.readLengthDelimited()
            } else {
                try any.skip(wireType: wireType, number: number)
            }
        }
        guard isRetryInfo, var retryInfo = value else { return nil }
        var delay: Duration?
        while !retryInfo.isAtEnd {
            let (number, wireType) = try retryInfo.readTag()
            guard number == 1, wireType == 2 else {
                try retryInfo.skip(wireType: wireType, number: number)
                continue
            }
            var duration = try retryInfo.readLengthDelimited()
            var seconds: Int64 = 0
            var nanos: Int64 = 0
            while !duration.isAtEnd {
                let (field, type) = try duration.readTag()
                if field == 1, type == 0 {
                    seconds = Int64(bitPattern: try duration.readVarint())
                } else if field == 2, type == 0 {
                    nanos = Int64(Int32(truncatingIfNeeded: try duration.readVarint()))
                } else {
                    try duration.skip(wireType: type, number: field)
                }
            }
            delay = .seconds(max(0, seconds)) + .nanoseconds(max(0, nanos))
        }
        return delay
    }

    /// Base64 as `grpc-status-details-bin` carries it (padding optional).
    package static func base64Decode(_ text: String) -> ByteBuffer? {
        JSONToWireBase64.decode(Array(text.utf8)).map { ByteBuffer(bytes: $0) }
    }
}
