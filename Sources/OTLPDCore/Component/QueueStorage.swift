/// An extension that keeps persistent queues on disk (`file_storage`):
/// what an exporter's `sending_queue.storage` names. It says where and how;
/// the exporter's queue owns the files in its own folder under `directory`.
public protocol QueueStorage: Extension {
    /// The folder the queues live in, one subfolder per exporter and signal.
    var directory: String { get }
    /// Whether an answer waits for `fsync` (else only for the kernel to have the bytes).
    var fsync: Bool { get }
    /// The bytes on disk all queues of this storage may hold together.
    var maxSize: Int { get }
}

extension QueueStorage {
    /// The folder of one exporter's queue for one signal: `DIR/otlp_gateway/traces`.
    public func queueDirectory(for exporter: ComponentID, signal: Signal) -> String {
        let name = String(
            exporter.description.map { character -> Character in
                character.isASCII && (character.isLetter || character.isNumber || "-_.".contains(character)) ? character : "_"
            })
        return "\(self.directory)/\(name)/\(signal.rawValue)"
    }
}
