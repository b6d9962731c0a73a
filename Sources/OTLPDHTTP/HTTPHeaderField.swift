/// One header field of a request or response, whatever the HTTP version;
/// names are lowercase, as HTTP/2 requires.
public struct HTTPHeaderField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}
