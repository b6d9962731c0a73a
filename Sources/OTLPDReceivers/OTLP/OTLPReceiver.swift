import Logging
import NIOConcurrencyHelpers
import NIOCore
import OTLPDCore
import OTLPDHTTP
import OTLPDTransport

/// The `otlp` receiver: a listener per configured protocol, both answering
/// OTLP/gRPC and OTLP/HTTP through one request handler.
public final class OTLPReceiver: Receiver {
    let configuration: OTLPReceiverConfiguration
    let settings: ComponentSettings
    let handler: OTLPRequestHandler
    private let running = NIOLockedValueBox<[Listener]>([])

    package init(
        configuration: OTLPReceiverConfiguration, consumers: [Signal: any Consumer], settings: ComponentSettings,
        authenticators: ReceiverAuthenticators = ReceiverAuthenticators()
    ) {
        self.configuration = configuration
        self.settings = settings
        self.handler = OTLPRequestHandler(configuration: configuration, consumers: consumers, settings: settings, authenticators: authenticators)
    }

    /// The addresses actually bound, once started: (role, address).
    public var listenerCount: Int { self.running.withLockedValue { $0.count } }

    public var listeners: [ListenerStatus] {
        self.running.withLockedValue { listeners in
            listeners.map { listener in
                let grpc = listener.configuration.role == .grpc
                return ListenerStatus(
                    protocolName: grpc ? "OTLP/gRPC" : "OTLP/HTTP",
                    endpoint: "\(Endpoint(host: listener.configuration.host, port: listener.localAddress.port ?? listener.configuration.port))",
                    tls: listener.configuration.tls != nil,
                    auth: (grpc ? self.configuration.grpc?.authenticator : self.configuration.http?.authenticator)?.description,
                    openConnections: listener.openConnectionCount)
            }
        }
    }

    public var boundAddresses: [(ListenerRole, SocketAddress)] {
        self.running.withLockedValue { $0.map { ($0.configuration.role, $0.localAddress) } }
    }

    public func start() async throws {
        var specs: [ListenerConfiguration] = []
        // HTTP/1.1 may come to either port: both use the http section's deadlines.
        let http1 = self.configuration.http?.timeouts ?? HTTP1Timeouts()
        if let grpc = self.configuration.grpc {
            var spec = ListenerConfiguration(
                host: grpc.endpoint.host, port: grpc.endpoint.port, role: .grpc, tls: grpc.tls,
                maxBodyBytes: grpc.maxReceiveMessageBytes + GRPCFraming.prefixLength, maxConcurrentStreams: grpc.maxConcurrentStreams)
            spec.maxConnections = grpc.maxConnections
            spec.http1 = http1
            specs.append(spec)
        }
        if let http = self.configuration.http {
            var spec = ListenerConfiguration(
                host: http.endpoint.host, port: http.endpoint.port, role: .http, tls: http.tls, maxBodyBytes: http.maxRequestBodyBytes)
            spec.maxConnections = http.maxConnections
            spec.http1 = http1
            specs.append(spec)
        }
        for spec in specs {
            let listener: Listener
            do {
                listener = try await Listener.start(spec, handler: self.handler, group: self.settings.eventLoopGroup)
            } catch {
                await self.stopAccepting()
                throw ReceiverStartError(endpoint: "\(spec.host):\(spec.port)", role: spec.role, underlying: error)
            }
            self.running.withLockedValue { $0.append(listener) }
            let port = listener.localAddress.port
            self.handler.ports.withLockedValue { ports in
                if spec.role == .grpc { ports.grpc = port } else { ports.http = port }
            }
            let endpoint = Endpoint(host: spec.host, port: port ?? spec.port)
            self.settings.logger.info(
                "listening",
                metadata: [
                    "protocol": "\(spec.role == .grpc ? "OTLP/gRPC" : "OTLP/HTTP")", "endpoint": "\(endpoint)", "tls": "\(spec.tls != nil)",
                    "auth": "\((spec.role == .grpc ? self.configuration.grpc?.authenticator : self.configuration.http?.authenticator)?.description ?? "none")",
                ])
            if endpoint.isLoopback, let container = ContainerDetection.detect() {
                self.settings.logger.warning(
                    "listening on a loopback address inside a container: nothing outside it can connect; use 0.0.0.0",
                    metadata: ["endpoint": "\(endpoint)", "container": "\(container)"])
            }
        }
    }

    /// A renewed certificate takes effect for new connections; a broken one is logged and the one in use stays.
    public func reloaded() async {
        for listener in self.running.withLockedValue({ $0 }) where listener.configuration.tls != nil {
            let endpoint = "\(listener.configuration.host):\(listener.localAddress.port ?? listener.configuration.port)"
            do {
                try listener.reloadTLS()
                self.settings.logger.info("TLS certificate and key read again", metadata: ["endpoint": "\(endpoint)"])
            } catch {
                self.settings.logger.error(
                    "reload: the TLS certificate or key cannot be used; the one in use stays", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            }
        }
    }

    public func stopAccepting() async {
        for listener in self.running.withLockedValue({ $0 }) {
            await listener.quiesce()
        }
    }

    public func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        for listener in self.running.withLockedValue({ $0 }) {
            let remaining = deadline - ContinuousClock.now
            if !(await listener.waitForConnections(timeout: max(remaining, .zero))) {
                self.settings.logger.warning(
                    "connections still open at the shutdown deadline; closing them",
                    metadata: ["count": "\(listener.openConnectionCount)"])
                listener.closeAll()
            }
        }
    }

    public func replaceConsumers(_ consumers: [Signal: any Consumer]) {
        self.handler.replaceConsumers(consumers)
    }

    public func shutdown() async {
        await self.stopAccepting()
        for listener in self.running.withLockedValue({ $0 }) { listener.closeAll() }
    }
}

public struct ReceiverStartError: Error, CustomStringConvertible {
    public var endpoint: String
    public var role: ListenerRole
    public var underlying: any Error

    public var description: String {
        "cannot listen for \(self.role == .grpc ? "OTLP/gRPC" : "OTLP/HTTP") on \(self.endpoint): \(self.underlying)"
    }
}

/// Whether this process runs in a container (Kubernetes or Docker), where
/// a loopback listener cannot be reached from outside.
enum ContainerDetection {
    static func detect() -> String? {
        if ProcessEnvironment.value("KUBERNETES_SERVICE_HOST") != nil { return "kubernetes" }
        if FileProbe.exists("/.dockerenv") { return "docker" }
        // Podman (and other OCI engines following it) mark their containers this way.
        if FileProbe.exists("/run/.containerenv") { return ProcessEnvironment.value("container") ?? "podman" }
        if let engine = ProcessEnvironment.value("container"), !engine.isEmpty { return engine }
        if let cgroup = FileProbe.read("/proc/1/cgroup"),
            cgroup.contains("docker") || cgroup.contains("kubepods") || cgroup.contains("containerd") || cgroup.contains("libpod")
        {
            return cgroup.contains("kubepods") ? "kubernetes" : cgroup.contains("libpod") ? "podman" : "docker"
        }
        return nil
    }
}
