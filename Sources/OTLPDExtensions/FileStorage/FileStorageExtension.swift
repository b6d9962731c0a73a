import Logging
import OTLPDCore
import OTLPDSystem

/// `extensions.file_storage`: where persistent queues keep their logs.
public struct FileStorageConfiguration: Sendable, Equatable {
    public var directory = "/var/lib/otlpd/queue"
    public var fsync = true
    public var createDirectory = true
    public var maxSize = 1 << 30
    /// Keys the Collector's file_storage has that otlpd's log does not need.
    var ignored: [String] = []

    static func decode(_ reader: ConfigReader) -> FileStorageConfiguration {
        defer { reader.finish() }
        var configuration = FileStorageConfiguration()
        configuration.directory = reader.string("directory", default: configuration.directory)
        if configuration.directory.isEmpty { reader.error("directory", "must name a folder") }
        while configuration.directory.count > 1 && configuration.directory.hasSuffix("/") { configuration.directory.removeLast() }
        configuration.fsync = reader.bool("fsync", default: true)
        configuration.createDirectory = reader.bool("create_directory", default: true)
        configuration.maxSize = reader.byteSize("max_size", default: configuration.maxSize)
        if configuration.maxSize < 1 << 20 { reader.error("max_size", "must be at least 1MiB") }
        for key in ["compaction", "timeout", "directory_permissions"] where reader.contains(key) {
            configuration.ignored.append(key)
            reader.accept(key)
        }
        return configuration
    }
}

/// Holds the settings of the persistent queues that name it, and checks at
/// start that its folder is there (or makes it) and can be written, so a
/// wrong path stops otlpd at start, not at the first request.
public final class FileStorageExtension: QueueStorage {
    let configuration: FileStorageConfiguration
    let logger: Logger

    init(configuration: FileStorageConfiguration, settings: ComponentSettings) {
        self.configuration = configuration
        self.logger = settings.logger
    }

    public var directory: String { self.configuration.directory }
    public var fsync: Bool { self.configuration.fsync }
    public var maxSize: Int { self.configuration.maxSize }

    public func start() async throws {
        let directory = self.configuration.directory
        if !FileOperations.isDirectory(directory) {
            guard self.configuration.createDirectory else {
                throw FileStorageError("the folder \(directory) does not exist; create it, or set create_directory: true")
            }
            do {
                try FileOperations.makeDirectories(forFile: directory + "/queue")
            } catch {
                throw FileStorageError("cannot create the folder \(directory): \(error)")
            }
        }
        if let error = FileOperations.checkWritable(directory + "/.probe") {
            throw FileStorageError("the folder \(directory) cannot be written: \(error)")
        }
        self.logger.info(
            "persistent queue storage ready",
            metadata: ["directory": "\(directory)", "fsync": "\(self.configuration.fsync)", "max_size": "\(ConfigUnits.formatBytes(self.configuration.maxSize))"])
    }

    public func shutdown() async {}
}

struct FileStorageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = "file_storage: " + description }
}

public struct FileStorageExtensionFactory: ExtensionFactory {
    public let type = "file_storage"
    public let signals: Set<Signal> = []
    public var roles: Set<ExtensionUse.Role> { [.queueStorage] }

    public init() {}

    public func decode(_ reader: ConfigReader) -> ComponentConfiguration {
        FileStorageConfiguration.decode(reader)
    }

    public func warnings(_ configuration: ComponentConfiguration) -> [String] {
        let configuration = configuration as! FileStorageConfiguration
        var warnings = configuration.ignored.map { "'\($0)' is not used: otlpd's queue log needs no compaction or database locks (space comes back segment by segment)" }
        if !configuration.fsync {
            warnings.append("fsync is off: an answer means the data reached the kernel, so a power loss (not kill -9) can lose acknowledged data")
        }
        return warnings
    }

    public func makeExtension(_ configuration: ComponentConfiguration, settings: ComponentSettings) throws -> any Extension {
        FileStorageExtension(configuration: configuration as! FileStorageConfiguration, settings: settings)
    }
}
