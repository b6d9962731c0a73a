import OTLPDSystem

#if canImport(Glibc)
import Glibc
#endif

/// `otlpd-fuzz`, two builds of the same harnesses:
///
/// - built with `-sanitize=fuzzer,address -DFUZZING` (`make fuzz`): a
///   libFuzzer binary, `otlpd-fuzz --target=NAME [libFuzzer flags] CORPUS...`
///   (or `OTLPD_FUZZ_TARGET=NAME`);
/// - built plainly (`make test`): `otlpd-fuzz TARGET PATH...` replays every
///   file (or every file in a folder) through the harness and exits 0, or
///   stops on the first input that breaks, naming it.
@main
enum FuzzMain {
    static func main() {
        #if FUZZING
        LibFuzzerEntry.main()
        #else
        ReplayRunner.main(Array(CommandLine.arguments.dropFirst()))
        #endif
    }
}

/// Replays inputs: the committed seed corpora and the regression inputs of
/// every crash, hang or leak found (`Fuzz/regressions/TARGET/`).
enum ReplayRunner {
    static func main(_ arguments: [String]) {
        guard let name = arguments.first, let target = FuzzTargets.named(name) else {
            Self.usage()
            exit(2)
        }
        var files: [String] = []
        for path in arguments.dropFirst() { Self.collect(path, into: &files) }
        CrashReport.install()
        for file in files {
            guard let input = try? FileOperations.readAll(file) else {
                print("otlpd-fuzz: cannot read \(file)")
                exit(1)
            }
            CrashReport.current(target: name, file: file)
            target.run(input)
        }
        CrashReport.current(target: nil, file: nil)
        ScratchDirectory.removeAll()
        print("otlpd-fuzz \(name): \(files.count) inputs replayed, all passed")
    }

    /// A file, or the files under a folder (sorted; names starting with a dot and README files skipped). A missing path holds nothing.
    static func collect(_ path: String, into files: inout [String]) {
        guard FileOperations.isDirectory(path) else {
            if FileOperations.exists(path) { files.append(path) }
            return
        }
        for name in ((try? FileOperations.list(path)) ?? []).sorted() where !name.hasPrefix(".") && !name.hasPrefix("README") {
            Self.collect(path + "/" + name, into: &files)
        }
    }

    static func usage() {
        print(
            """
            usage: otlpd-fuzz TARGET PATH...
              Runs every file given (or every file under each folder) through TARGET's harness.
              Targets:
            """)
        for target in FuzzTargets.all { print("    \(target.name.padding(10))\(target.summary)") }
        print("  The fuzzing build (make fuzz) takes --target=NAME and libFuzzer's flags instead.")
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        self.count >= width ? self + " " : self + String(repeating: " ", count: width - self.count)
    }
}
