/// An answer to "how large will this body be", from its first bytes (a
/// gRPC message's length prefix, say), so a body can be refused or sized
/// before it is gathered.
public enum ExpectedBodySize: Sendable, Equatable {
    case needMoreBytes
    case unknown
    case bytes(Int)
}
