internal import CLinuxShims
import NIOCore

/// How many CPUs this process may run on.
public enum UsableCPUs {
    /// The smaller of NIO's count (cgroup quota and cpuset) and the process's
    /// affinity mask (`taskset`, CPU pinning). Two event loops pinned to one
    /// CPU make each wait out the other's time slice: milliseconds of added
    /// latency for nothing.
    public static var count: Int {
        let affinity = Int(otlpd_affinity_cpu_count())
        return max(1, min(System.coreCount, affinity > 0 ? affinity : System.coreCount))
    }
}
