#if FUZZING
#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's side: the target is picked once (`--target=NAME`, which
/// libFuzzer itself ignores as it ignores every `--` flag, or the
/// `OTLPD_FUZZ_TARGET` environment variable), then each input goes to its harness.
enum LibFuzzerEntry {
    nonisolated(unsafe) static var target: FuzzTarget?

    static func main() {
        // SwiftPM links an executable's `main` to its `@main` (`--defsym main=OTLPDFuzz_main`),
        // so libFuzzer's own `main` is never used: this one hands over to libFuzzer's driver
        // (linked in by -sanitize=fuzzer), which calls back for each input.
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, { data, size in LLVMFuzzerTestOneInput(data, size) }))
    }

    static func pick(_ arguments: [String]) {
        let fromArguments = arguments.last { $0.hasPrefix("--target=") }.map { String($0.dropFirst("--target=".count)) }
        let fromEnvironment = getenv("OTLPD_FUZZ_TARGET").map { String(cString: $0) }
        guard let name = fromArguments ?? fromEnvironment, let target = FuzzTargets.named(name) else {
            print("otlpd-fuzz: name a target with --target=NAME or OTLPD_FUZZ_TARGET=NAME: \(FuzzTargets.names)")
            exit(2)
        }
        Self.target = target
        atexit { ScratchDirectory.removeAll() }
    }
}

/// libFuzzer's `int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t))`,
/// declared here since it comes with no header to import; pointers and integers pass the same way
/// in Swift's calling convention and C's.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("LLVMFuzzerInitialize")
public func LLVMFuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    if LibFuzzerEntry.target == nil {
        let arguments = (0..<Int(argc.pointee)).compactMap { argv.pointee[$0].map { String(cString: $0) } }
        LibFuzzerEntry.pick(arguments)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = LibFuzzerEntry.target else {
        LibFuzzerEntry.pick([])
        return LLVMFuzzerTestOneInput(data, size)
    }
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    target.run(input)
    return 0
}
#endif
