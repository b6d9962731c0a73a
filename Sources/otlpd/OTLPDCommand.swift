import ArgumentParser
import Logging
import NIOCore
import NIOPosix
import OTLPDConfig
import OTLPDCore
import OTLPDService
import OTLPDSystem
import OTLPDTransport
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

@main
struct OTLPDCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otlpd",
        abstract: "An OTLP collector daemon: receives traces, metrics and logs over OTLP/gRPC and OTLP/HTTP and writes them out.",
        version: OTLPDVersion.number,
        subcommands: [
            RunCommand.self, ValidateCommand.self, PrintConfigCommand.self, ComponentsCommand.self, StatusCommand.self, VersionCommand.self,
        ],
        defaultSubcommand: RunCommand.self)
}

/// `--config` and `--set`, shared by the commands that read a config.
struct ConfigOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "A config file; several merge in order (later wins). Without one, the embedded default runs.")
    var files: [String] = []

    @Option(name: .customLong("set"), help: "Override one key: --set service.telemetry.logs.level=debug")
    var sets: [String] = []

    /// Loads and checks the config, or prints every error and exits 1.
    func load() throws -> (ConfigLoader.Loaded, CollectorConfiguration) {
        do throws(ConfigErrors) {
            return try Self.decode(files: self.files, sets: self.sets)
        } catch {
            Self.printErrors(error)
            throw ExitCode(1)
        }
    }

    /// Loads and checks the config of `files` and `sets` (also on SIGHUP).
    static func decode(files: [String], sets: [String]) throws(ConfigErrors) -> (ConfigLoader.Loaded, CollectorConfiguration) {
        let loaded = try ConfigLoader.load(files: files, sets: sets)
        return (loaded, try CollectorConfiguration.decode(loaded.root))
    }

    static func printErrors(_ errors: ConfigErrors) {
        let noun = errors.errors.count == 1 ? "error" : "errors"
        var text = "otlpd: invalid config (\(errors.errors.count) \(noun)):\n"
        for error in errors.errors { text += "  \(error)\n" }
        FileHandleOutput.standardError(text)
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the daemon (the default command).")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let (loaded, configuration) = try self.options.load()
        let level = configuration.telemetry.logLevel
        let encoding: OTLPDLogHandler.Encoding = configuration.telemetry.logEncoding == .json ? .json : .console
        let environment = ConfigLoader.processEnvironment()
        // Under systemd the journal stamps each line itself.
        let timestamps = environment["JOURNAL_STREAM"] == nil
        LoggingSystem.bootstrap { _ in OTLPDLogHandler(level: level, encoding: encoding, timestamps: timestamps) }
        let logger = Logger(label: "otlpd")
        for warning in loaded.warnings + configuration.warnings { logger.warning("\(warning)") }
        // Writes to a closed stdout pipe return an error instead of killing the process.
        signal(SIGPIPE, SIG_IGN)
        HeapTuning.keepLargeBlocksInHeap()

        logger.info(
            "starting",
            metadata: ["version": "\(OTLPDVersion.number)", "config": "\(self.options.files.isEmpty ? "<embedded default>" : self.options.files.joined(separator: ","))"])
        // One event loop per CPU the process may use (with taskset or pinning, fewer than the machine has).
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: UsableCPUs.count)
        // SIGHUP reads the same files (and --set values) again.
        let (files, sets) = (self.options.files, self.options.sets)
        let reload: (@Sendable () throws -> CollectorConfiguration)? =
            files.isEmpty
            ? nil
            : { @Sendable () throws -> CollectorConfiguration in try ConfigOptions.decode(files: files, sets: sets).1 }
        let collector = Collector(
            configuration: configuration, eventLoopGroup: eventLoops, logger: logger, reloadConfiguration: reload, environment: environment,
            configDescription: files.isEmpty ? "<embedded default>" : files.joined(separator: ","))
        if environment["OTLPD_TEST_HOOKS"] == "1" { Self.installTestHooks(eventLoops, logger: logger) }
        var groupLogger = logger
        groupLogger.logLevel = .warning
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [collector], gracefulShutdownSignals: [.sigterm, .sigint], logger: groupLogger))
        do {
            try await group.run()
        } catch {
            logger.error("otlpd stopped on an error", metadata: ["error": "\(Self.describe(error))"])
            throw ExitCode(1)
        }
    }

    /// For tests of the watchdog only (`OTLPD_TEST_HOOKS=1`): SIGUSR2 blocks
    /// one event loop for 3 s, as a handler stuck in a system call would.
    static func installTestHooks(_ eventLoops: MultiThreadedEventLoopGroup, logger: Logger) {
        logger.warning("test hooks are on (OTLPD_TEST_HOOKS=1): SIGUSR2 blocks an event loop for 3 s")
        Task {
            for await _ in await UnixSignalsSequence(trapping: .sigusr2) {
                eventLoops.next().execute { usleep(3_000_000) }
            }
        }
    }

    /// The root cause of a ServiceGroup failure, for the one log line.
    static func describe(_ error: any Error) -> String {
        if let groupError = error as? ServiceGroupError { return "\(groupError)" }
        return "\(error)"
    }
}

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check a config: exit 0, or 1 with every error.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let (loaded, configuration) = try self.options.load()
        for warning in loaded.warnings + configuration.warnings { FileHandleOutput.standardError("warning: \(warning)\n") }
        print("config is valid")
    }
}

struct PrintConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print-config",
        abstract: "Print the merged, expanded config (secrets redacted). It need not be valid: `validate` checks that.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        do throws(ConfigErrors) {
            let loaded = try ConfigLoader.load(files: self.options.files, sets: self.options.sets)
            print(ConfigLoader.printable(loaded.root), terminator: "")
        } catch {
            ConfigOptions.printErrors(error)
            throw ExitCode(1)
        }
    }
}

struct ComponentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "components", abstract: "List the component types this build knows.")

    func run() async throws {
        let registry = ComponentRegistry.builtIn
        for kind in [ComponentKind.receiver, .processor, .exporter, .extension] {
            let types = registry.types(of: kind)
            print("\(kind.section):".padding(12) + (types.isEmpty ? "(none)" : types.joined(separator: ", ")))
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print what the running daemon has received, per service (one service per line).")

    @Option(help: "Where the daemon serves its self-telemetry (service.telemetry.metrics); default: the --config's, else localhost:8888.")
    var endpoint: String?

    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print the JSON of /services instead of the table.")
    var json = false

    @Flag(help: "Redraw the table every second (for a machine without a browser); Ctrl-C ends it.")
    var watch = false

    func run() async throws {
        let endpoint: Endpoint
        if let text = self.endpoint {
            guard let parsed = Endpoint(parsing: text) else {
                FileHandleOutput.standardError("otlpd status: '\(text)' is not host:port\n")
                throw ExitCode(2)
            }
            endpoint = parsed
        } else if !self.options.files.isEmpty || !self.options.sets.isEmpty {
            // The daemon's own config says where it serves.
            guard let configured = try self.options.load().1.telemetry.metricsEndpoint else {
                FileHandleOutput.standardError("otlpd status: that config turns self-telemetry off (service.telemetry.metrics)\n")
                throw ExitCode(1)
            }
            endpoint = configured
        } else {
            endpoint = Endpoint(host: "localhost", port: 8888)
        }
        do {
            repeat {
                let response = try await HTTPGet.fetch(
                    host: endpoint.host, port: endpoint.port, path: self.json ? "/services" : "/services?format=text")
                guard response.status == 200 else {
                    FileHandleOutput.standardError("otlpd status: \(endpoint) answered \(response.status): \(response.body)\n")
                    throw ExitCode(1)
                }
                // --watch: home the cursor and clear the screen, then the table as `otlpd status` prints it.
                if self.watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(response.body, terminator: self.json ? "\n" : "")
                // The same view, live, in a browser (stderr, so `otlpd status | grep NAME` stays clean).
                if !self.json { FileHandleOutput.standardError("live: http://\(endpoint)/\n") }
                if self.watch {
                    fflush(nil)  // every stream: a pipe is block-buffered
                    try await Task.sleep(for: .seconds(1))
                }
            } while self.watch
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandleOutput.standardError("otlpd status: cannot reach otlpd at \(endpoint) (service.telemetry.metrics): \(error)\n")
            throw ExitCode(1)
        }
    }
}

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")

    func run() async throws {
        print(OTLPDVersion.full)
    }
}

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        self.count >= width ? self + " " : self + String(repeating: " ", count: width - self.count)
    }
}
