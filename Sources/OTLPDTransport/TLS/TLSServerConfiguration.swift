import NIOSSL

/// The files of a TLS listener: its certificate chain and key, and, for
/// mutual TLS, the CA that client certificates must chain to.
public struct TLSServerConfiguration: Sendable, Equatable {
    public var certificateFile: String
    public var keyFile: String
    public var clientCAFile: String?

    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }

    /// Reads the files and builds the context; throws with the file that failed.
    public func makeContext() throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(self.certificateFile)
        } catch {
            throw TLSFileError(file: self.certificateFile, what: "certificate", underlying: "\(error)")
        }
        guard !chain.isEmpty else { throw TLSFileError(file: self.certificateFile, what: "certificate", underlying: "no certificate in the file") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: self.keyFile, format: .pem)
        } catch {
            throw TLSFileError(file: self.keyFile, what: "private key", underlying: "\(error)")
        }
        var configuration: TLSConfiguration
        if let clientCAFile = self.clientCAFile {
            do {
                _ = try NIOSSLCertificate.fromPEMFile(clientCAFile)
            } catch {
                throw TLSFileError(file: clientCAFile, what: "client CA", underlying: "\(error)")
            }
            configuration = TLSConfiguration.makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .file(clientCAFile))
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        }
        configuration.applicationProtocols = ["h2", "http/1.1"]
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(file: self.certificateFile, what: "certificate and key", underlying: "\(error)")
        }
    }
}

public struct TLSFileError: Error, CustomStringConvertible {
    public var file: String
    public var what: String
    public var underlying: String

    public var description: String { "cannot use \(self.what) file '\(self.file)': \(self.underlying)" }
}
