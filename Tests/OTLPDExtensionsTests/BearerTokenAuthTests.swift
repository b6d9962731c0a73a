import Foundation
import NIOPosix
import OTLPDCore
import OTLPDExtensions
import OTLPDTestSupport
import Testing

struct BearerTokenAuthTests {
    func make(_ entries: [(String, ConfigNode)]) throws -> (any Extension, [ConfigError]) {
        let factory = BearerTokenAuthExtensionFactory()
        let diagnostics = ConfigDiagnostics()
        let configuration = factory.decode(ConfigReader(.mapping(entries), path: "extensions.bearertokenauth", diagnostics: diagnostics))
        let made = try factory.makeExtension(
            configuration,
            settings: ComponentSettings(id: ComponentID(type: "bearertokenauth"), logger: LogRecorder().logger(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton))
        return (made, diagnostics.errors)
    }

    @Test("only the exact `Bearer TOKEN` is accepted: not a prefix, not a longer value, not another scheme, not none")
    func exactMatch() throws {
        let (made, errors) = try self.make([("token", .scalar("abc123"))])
        #expect(errors.isEmpty)
        let auth = try #require(made as? any ServerAuthenticator)
        #expect(auth.accepts(authorization: "Bearer abc123"))
        for wrong in ["Bearer abc12", "Bearer abc1234", "bearer abc123", "Basic abc123", "abc123", "", "Bearer abc123 "] {
            #expect(!auth.accepts(authorization: wrong), "\(wrong)")
        }
        #expect(!auth.accepts(authorization: nil))
        #expect(auth.challenge == "Bearer realm=\"otlpd\"")
        #expect((made as? any ClientAuthenticator)?.authorization() == "Bearer abc123")
    }

    @Test("a token file's final newline and spaces are not part of the token; a reload reads the file again")
    func tokenFile() async throws {
        let path = NSTemporaryDirectory() + "otlpd-token-\(UUID().uuidString)"
        try "  first\n".write(toFile: path, atomically: true, encoding: .utf8)
        let (made, errors) = try self.make([("filename", .scalar(path)), ("scheme", .scalar("Token"))])
        #expect(errors.isEmpty)
        let auth = try #require(made as? any ServerAuthenticator)
        #expect(auth.accepts(authorization: "Token first"))
        try "second\n".write(toFile: path, atomically: true, encoding: .utf8)
        await made.reloaded()
        #expect(auth.accepts(authorization: "Token second") && !auth.accepts(authorization: "Token first"))
    }

    @Test("token and filename together, neither, or an empty token are config errors")
    func configErrors() throws {
        let factory = BearerTokenAuthExtensionFactory()
        for entries: [(String, ConfigNode)] in [[], [("token", .scalar(""))], [("token", .scalar("a")), ("filename", .scalar("/nonexistent"))]] {
            let diagnostics = ConfigDiagnostics()
            _ = factory.decode(ConfigReader(.mapping(entries), path: "extensions.bearertokenauth", diagnostics: diagnostics))
            #expect(!diagnostics.errors.isEmpty, "\(entries)")
        }
    }
}
