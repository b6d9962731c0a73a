/// An extension that checks a client's credentials (`bearertokenauth` on a
/// receiver: `auth: { authenticator: NAME }`).
public protocol ServerAuthenticator: Extension {
    /// Whether a request with this `authorization` header (nil: none) may in.
    func accepts(authorization: String?) -> Bool
    /// The `WWW-Authenticate` challenge a refused HTTP client is sent (`Bearer realm="otlpd"`).
    var challenge: String { get }
}

/// An extension that adds credentials to requests sent upstream
/// (`bearertokenauth` on an exporter: `auth: { authenticator: NAME }`).
public protocol ClientAuthenticator: Extension {
    /// The `authorization` header's value, read at each request (a reload may change it).
    func authorization() -> String
}
