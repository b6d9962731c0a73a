import Logging
import NIOConcurrencyHelpers
import OTLPDCore
import OTLPDSystem

/// `extensions.bearertokenauth`: a token given inline or in a file.
public struct BearerTokenAuthConfiguration: Sendable {
    public enum Source: Sendable, Equatable {
        case inline(String)
        /// Read at start and again at each reload (a rotated secret).
        case file(String)
    }

    public var source = Source.inline("")
    public var scheme = "Bearer"

    static func decode(_ reader: ConfigReader) -> BearerTokenAuthConfiguration {
        defer { reader.finish() }
        var configuration = BearerTokenAuthConfiguration()
        let token = reader.string("token")
        let filename = reader.string("filename")
        switch (token, filename) {
        case (let token?, nil):
            if token.isEmpty { reader.error("token", "is empty (an unset ${env:...}?)") }
            configuration.source = .inline(token)
        case (nil, let filename?):
            configuration.source = .file(filename)
            do {
                _ = try BearerTokenAuthExtension.read(filename)
            } catch {
                reader.error("filename", "\(error)")
            }
        case (.some, .some):
            reader.error("filename", "give token or filename, not both")
        case (nil, nil):
            reader.error("token", "give token (or filename: a file holding it)")
        }
        configuration.scheme = reader.string("scheme", default: "Bearer")
        if let header = reader.string("header"), header.lowercased() != "authorization" {
            reader.error("header", "otlpd reads and sends the token in the authorization header only")
        }
        return configuration
    }
}

/// Checks `authorization: Bearer TOKEN` on a receiver's requests (constant
/// time, so the answer's timing says nothing of the token) and adds it to an
/// exporter's requests. With `filename`, a reload reads the file again; an
/// unreadable file keeps the token in use.
public final class BearerTokenAuthExtension: ServerAuthenticator, ClientAuthenticator {
    let configuration: BearerTokenAuthConfiguration
    let logger: Logger
    /// `SCHEME TOKEN`, the whole header value, as bytes.
    private let expected: NIOLockedValueBox<[UInt8]>

    init(configuration: BearerTokenAuthConfiguration, settings: ComponentSettings) throws {
        self.configuration = configuration
        self.logger = settings.logger
        let token: String
        switch configuration.source {
        case .inline(let value): token = value
        case .file(let path): token = try Self.read(path)
        }
        self.expected = NIOLockedValueBox(Array("\(configuration.scheme) \(token)".utf8))
    }

    /// A token file's content without surrounding whitespace (an editor's final newline).
    static func read(_ path: String) throws -> String {
        let bytes: [UInt8]
        do {
            bytes = try FileOperations.readAll(path)
        } catch {
            throw BearerTokenError(description: "cannot read the token file: \(error)")
        }
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isNewline }
        let token = String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard !token.isEmpty else { throw BearerTokenError(description: "the token file \(path) is empty") }
        return token
    }

    public func start() async throws {}
    public func shutdown() async {}

    public func reloaded() async {
        guard case .file(let path) = self.configuration.source else { return }
        do {
            let token = try Self.read(path)
            self.expected.withLockedValue { $0 = Array("\(self.configuration.scheme) \(token)".utf8) }
            self.logger.info("token file read again", metadata: ["file": "\(path)"])
        } catch {
            self.logger.error("reload: the token file cannot be read; the token in use stays", metadata: ["error": "\(error)"])
        }
    }

    public var challenge: String { "\(self.configuration.scheme) realm=\"otlpd\"" }

    public func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        let given = Array(authorization.utf8)
        let expected = self.expected.withLockedValue { $0 }
        // Every byte is compared whatever the first difference: the time depends on the lengths only.
        var difference = UInt8(truncatingIfNeeded: given.count ^ expected.count)
        for index in 0..<expected.count {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    public func authorization() -> String {
        String(decoding: self.expected.withLockedValue { $0 }, as: UTF8.self)
    }
}

struct BearerTokenError: Error, CustomStringConvertible {
    var description: String
}

public struct BearerTokenAuthExtensionFactory: ExtensionFactory {
    public let type = "bearertokenauth"
    public let signals: Set<Signal> = []
    public var roles: Set<ExtensionUse.Role> { [.serverAuthenticator, .clientAuthenticator] }

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        BearerTokenAuthConfiguration.decode(reader)
    }

    public func makeExtension(_ configuration: ComponentConfiguration, settings: ComponentSettings) throws -> any Extension {
        try BearerTokenAuthExtension(configuration: configuration as! BearerTokenAuthConfiguration, settings: settings)
    }
}
