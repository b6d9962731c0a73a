import NIOSSL

/// How a client checks its upstream and, for mutual TLS, proves itself:
/// the Collector's `tls` block of a client (`ca_file`, `cert_file`,
/// `key_file`, `insecure_skip_verify`, `server_name_override`).
public struct TLSClientConfiguration: Sendable, Equatable {
    /// The CA the upstream's certificate must chain to; nil: the system's roots.
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    /// Accepts any certificate (encryption without authentication).
    public var insecureSkipVerify: Bool
    /// The name the certificate must carry, and the SNI sent; nil: the endpoint's host.
    public var serverNameOverride: String?

    public init(
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, insecureSkipVerify: Bool = false,
        serverNameOverride: String? = nil
    ) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.insecureSkipVerify = insecureSkipVerify
        self.serverNameOverride = serverNameOverride
    }

    /// Reads the files and builds the context, offering `protocols` by ALPN; throws with the file that failed.
    public func makeContext(protocols: [String]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = protocols
        if let caFile = self.caFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw TLSFileError(file: caFile, what: "CA", underlying: "\(error)")
            }
        }
        if let certificateFile = self.certificateFile, let keyFile = self.keyFile {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            } catch {
                throw TLSFileError(file: certificateFile, what: "client certificate", underlying: "\(error)")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw TLSFileError(file: keyFile, what: "client private key", underlying: "\(error)")
            }
        }
        if self.insecureSkipVerify { configuration.certificateVerification = .none }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileError(file: self.caFile ?? self.certificateFile ?? "(system roots)", what: "TLS settings", underlying: "\(error)")
        }
    }
}
