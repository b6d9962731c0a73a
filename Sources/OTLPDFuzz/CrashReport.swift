#if canImport(Glibc)
import Glibc
#endif

/// Names the input being replayed when the process dies on it (a broken
/// invariant, a trap, a bad access), so that `make test` says which file to
/// look at. The text is made before each input; the signal handler only
/// writes it out, then dies of the same signal.
enum CrashReport {
    nonisolated(unsafe) private static var text: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var length = 0

    static func current(target: String?, file: String?) {
        free(Self.text)
        Self.text = nil
        Self.length = 0
        guard let target, let file else { return }
        let line = "\notlpd-fuzz: \(target) failed on input \(file)\n  (run it alone: otlpd-fuzz \(target) \(file))\n"
        Self.length = line.utf8.count
        Self.text = strdup(line)
    }

    static func install() {
        for signal in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                if let text = CrashReport.text { _ = write(2, text, CrashReport.length) }
                // Blocked while this runs: the default action follows when it returns.
                Glibc.signal(signal, SIG_DFL)
                raise(signal)
            }
            sigaction(signal, &action, nil)
        }
    }
}
