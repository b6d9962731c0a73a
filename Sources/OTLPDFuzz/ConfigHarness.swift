import OTLPDConfig
import OTLPDCore
import OTLPDService

/// A config file as `otlpd --config FILE` reads it: YAML to a config tree,
/// `${env:...}` expanded (from a fixed environment), `--set` overrides (the
/// file's lines starting `#set `, a YAML comment, each one override),
/// `print-config`'s text, then the whole collector config decoded and
/// checked with every built-in component's rules.
enum ConfigHarness {
    static let scratch = ScratchDirectory("config")
    static let environment = ["HOME": "/home/otlpd", "OTLPD_ENDPOINT": "127.0.0.1:4317", "EMPTY": "", "LEVEL": "debug"]

    static func run(_ input: [UInt8]) {
        let file = Self.scratch.write("otlpd.yaml", input)
        let text = String(decoding: input, as: UTF8.self)
        let sets = text.split(separator: "\n").filter { $0.hasPrefix("#set ") }.map { String($0.dropFirst(5)) }
        guard let loaded = try? ConfigLoader.load(files: [file], sets: sets, environment: Self.environment) else { return }
        _ = ConfigLoader.printable(loaded.root)
        _ = try? CollectorConfiguration.decode(loaded.root)
    }
}
