#!/usr/bin/env python3
"""The otlpd benchmark, beside the peer collector rotel (see bench/README.md).

For every scenario, in one invocation, the two collectors take turns
(otlpd, rotel, otlpd, rotel): each pass starts a fresh collector pinned to
CPU 0, drives it with h2load pinned to CPU 1, warms up, then measures a fixed
window. It reads the collector's CPU time (utime+stime of all threads) from
/proc/PID/stat at the window's edges (h2load prints when its main phase starts
and ends), its peak RSS (VmHWM), and the latency of every request of the
window from h2load's --log-file. While a gRPC run is under way, a real gRPC
client (grpcio) sends a few requests and checks for grpc-status OK, since
h2load counts any HTTP 200 as a success and never reads trailers.

  make bench                                   (builds otlpd, then runs this)
  .venv/bin/python bench/run.py --otlpd .build/release/otlpd [--quick] [--scenarios 1,grpc-10]

Prints a markdown report and writes it to bench/out/results-<timestamp>.md.
Exit status: 0 when every run succeeded (whatever the targets say), 1 when any
request failed or a collector misbehaved, 2 for a usage or setup error.
"""
import argparse
import datetime
import hashlib
import http.client
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(BENCH_DIR, "out")
PAYLOAD_DIR = os.path.join(BENCH_DIR, "payloads")
SHM_DIR = "/dev/shm/otlpd-bench"          # the file exporter's output for the main file row (tmpfs)
DISK_DIR = os.path.join(OUT_DIR, "file-disk")  # ... and for the extra, disk-bound row
# The persistent queue's file_storage folder: on the repo's disk, since an fsync on tmpfs costs nothing.
QUEUE_DIR = os.path.join(OUT_DIR, "queue-disk")
COLLECTOR_CPU = "0"
LOAD_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

GRPC_PATHS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
HTTP_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}
UNITS = {"traces": "spans", "metrics": "points", "logs": "records"}


@dataclass
class Scenario:
    number: int
    key: str
    title: str
    signal: str
    payload: str          # base name in bench/payloads (.pb for HTTP, .grpc for gRPC)
    protocol: str         # "grpc" (h2c) or "http1" (OTLP/HTTP over HTTP/1.1)
    clients: int
    streams: int
    otlpd_exporter: str = "nop"   # "nop" or "file"
    # otlpd's processors in every pipeline: the SPEC's example pipeline has batch.
    otlpd_processors: str = "batch"
    # If set, otlpd with these processors instead runs in turn with the others, as this scenario's baseline.
    baseline_processors: str | None = None
    # Forwarding: both collectors send over OTLP/gRPC to a sink with this compression ("none" or "gzip"),
    # and items are counted where they arrive; the baseline then passes into nop instead.
    forward: str | None = None
    # A persistent queue: otlpd's otlp_grpc exporter keeps it in this file_storage folder (fsync on), wiped
    # before each run. rotel has none: it forwards from memory as in the plain forwarding scenario.
    queue_dir: str | None = None
    # The status page's live feed: otlpd (not its baseline, not rotel) has this many clients reading
    # /events on its self-telemetry address for the whole run (bench/feed_clients.py).
    feed_clients: int = 0

    @property
    def unit(self):
        return UNITS[self.signal]


def baseline_name(processors):
    """The label of otlpd run as a scenario's baseline: its processor list."""
    return f"otlpd [{processors}]"


def collector_label(scenario, name):
    """How a collector's rows are labelled: otlpd with feed clients says so."""
    if name == "otlpd" and scenario.feed_clients:
        return f"otlpd [{scenario.otlpd_processors}] + {scenario.feed_clients} feed clients"
    return name

SCENARIOS = [
    Scenario(1, "grpc-512", "gRPC, 512-span traces → otlpd [batch] → nop / rotel blackhole", "traces", "traces-512",
             "grpc", 4, 10, baseline_processors=""),
    Scenario(2, "grpc-10", "gRPC, 10-span traces → otlpd [batch] → nop / rotel blackhole", "traces", "traces-10",
             "grpc", 4, 10, baseline_processors=""),
    Scenario(3, "http1-512", "OTLP/HTTP over HTTP/1.1, 512-span traces → otlpd [batch] → nop / rotel blackhole", "traces",
             "traces-512", "http1", 16, 1),
    Scenario(4, "file-json", "gRPC, 512-span traces → otlpd [batch] → file (OTLP/JSON, tmpfs) vs rotel blackhole",
             "traces", "traces-512", "grpc", 4, 10, otlpd_exporter="file"),
    Scenario(5, "logs-512", "gRPC, 512-record logs → otlpd [batch] → nop / rotel blackhole", "logs", "logs-512", "grpc",
             4, 10),
    Scenario(6, "metrics-512", "gRPC, 512-point metrics → otlpd [batch] → nop / rotel blackhole", "metrics",
             "metrics-512", "grpc", 4, 10),
    Scenario(7, "attributes", "gRPC, 512-span traces → otlpd [attributes (3 actions), batch] → nop vs rotel pass-through → blackhole",
             "traces", "traces-512", "grpc", 4, 10, otlpd_processors="attributes/bench, batch",
             baseline_processors="batch"),
    Scenario(8, "forward", "gRPC, 512-span traces → otlpd [batch] → otlp_grpc (no compression) / rotel otlp → sink",
             "traces", "traces-512", "grpc", 4, 10, baseline_processors="batch", forward="none"),
    Scenario(9, "forward-gzip", "gRPC, 512-span traces → otlpd [batch] → otlp_grpc (gzip) / rotel otlp (gzip) → sink",
             "traces", "traces-512", "grpc", 4, 10, forward="gzip"),
    Scenario(10, "forward-disk", "gRPC, 512-span traces → otlpd [batch] → otlp_grpc with a persistent queue "
             "(file_storage, fsync, repo disk) / rotel otlp (in memory: no persistent queue) → sink",
             "traces", "traces-512", "grpc", 4, 10, forward="none", queue_dir=QUEUE_DIR),
    Scenario(11, "status-page", "gRPC, 512-span traces → otlpd [batch] → nop with 16 status-page feed clients on "
             "/events vs without / rotel blackhole", "traces", "traces-512", "grpc", 4, 10,
             baseline_processors="batch", feed_clients=16),
]

# The attributes scenario's actions: tag, redact and drop, each on every span
# (the payload's spans carry db.statement and enduser.session.id).
ATTRIBUTE_ACTIONS = (
    "      - { key: deployment.environment, value: production, action: insert }\n"
    "      - { key: db.statement, value: redacted, action: update }\n"
    "      - { key: enduser.session.id, action: delete }\n")


@dataclass
class Run:
    scenario: str
    collector: str        # "otlpd", "rotel", "otlpd (disk)" or "otlpd (strace)"
    pass_no: int
    duration: float       # h2load's main phase (-D), seconds
    window: float = 0.0   # the same window as this script saw it (CPU sampling)
    succeeded: int = 0
    items_per_request: int = 0
    cpu: float = 0.0      # collector CPU-seconds in the window
    loadgen_cpu: float = 0.0
    rss_mib: float = 0.0
    threads: int = 0
    cpu_busy: tuple = (float("nan"), float("nan"))  # % busy of CPU 0 and CPU 1 over the window (/proc/stat)
    steal: float = float("nan")                     # % of the window stolen by the hypervisor (both CPUs)
    irq: tuple = (float("nan"), float("nan"))       # % of CPU 0 and CPU 1 in irq + softirq (loopback TCP work)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    h2load_summary: str = ""
    checks_ok: int = 0
    checks_total: int = 0
    mean_batch: float = float("nan")  # items per batch sent by otlpd's batch processor, over the run
    forwarded: int | None = None      # items that reached the sink in the window (forwarding scenarios)
    queue_written: int | None = None  # bytes otlpd sent to the storage layer in the window (/proc/PID/io write_bytes)
    syncs: int | None = None          # fsync + fdatasync calls strace counted (the extra strace pass only)
    commits: int | None = None        # the queue's group commits in the window (otlpd_exporter_queue_syncs_total)
    sync_window: float = 0.0          # seconds strace was attached
    feed_events: list | None = None   # events each feed client got in the window (the status-page scenario)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def rate(self):  # items per second: what arrived at the sink when forwarding, else what h2load got answered
        if self.forwarded is not None:
            return self.forwarded / self.window if self.window else 0.0
        return self.succeeded * self.items_per_request / self.duration if self.duration else 0.0

    @property
    def answered_rate(self):  # items per second h2load got answered (with a persistent queue: once on disk)
        return self.succeeded * self.items_per_request / self.duration if self.duration else 0.0

    @property
    def disk_per_item(self):  # storage-layer bytes per item answered in the window
        answered = self.succeeded * self.items_per_request
        return self.queue_written / answered if self.queue_written is not None and answered else float("nan")

    @property
    def commits_per_second(self):  # the fsyncs answers waited for, from otlpd's own counter
        return self.commits / self.window if self.commits is not None and self.window else float("nan")

    @property
    def syncs_per_second(self):
        return self.syncs / self.sync_window if self.syncs is not None and self.sync_window else float("nan")

    @property
    def cores(self):
        return self.cpu / self.window if self.window else float("nan")

    @property
    def loadgen_cores(self):
        return self.loadgen_cpu / self.window if self.window else float("nan")

    @property
    def cpu_per_million(self):  # CPU-seconds per million items
        return self.cores / self.rate * 1e6 if self.rate else float("nan")

    @property
    def failed(self):
        return bool(self.problems)


# ---------------------------------------------------------------- helpers

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def cpu_seconds(pid):
    """utime + stime of every thread of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()   # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid):
    """Peak RSS in MiB (VmHWM) and the number of threads."""
    rss, threads = float("nan"), 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def write_bytes(pid):
    """Bytes the process caused to be sent to the storage layer (/proc/PID/io), or None if unreadable.
    The kernel counts a page each time a clean page is dirtied: page-granular, so an fsync'ed
    partial page written again counts again."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def segment_files(directory):
    """The number and total size of the queue's segment-*.log files under `directory`."""
    count = size = 0
    for root, _, names in os.walk(directory):
        for name in names:
            if name.startswith("segment-") and name.endswith(".log"):
                try:
                    size += os.path.getsize(os.path.join(root, name))
                    count += 1
                except OSError:
                    pass  # deleted as the sink confirmed it
    return count, size


def mount_of(path):
    """'fstype on device' of the mount that holds `path` (/proc/self/mounts)."""
    path, best = os.path.realpath(path), ("", "unknown", "")
    with open("/proc/self/mounts") as f:
        for line in f:
            device, point, fstype = line.split()[:3]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                best = (point, fstype, device)
    return f"{best[1]} on {best[2]}"


def strace_syncs(path):
    """fsync and fdatasync calls in a `strace -c` summary: {syscall: calls}."""
    calls = {}
    for line in Collector.read(path).splitlines():
        parts = line.split()   # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[-1] in ("fsync", "fdatasync") and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    return calls


def cpu_times():
    """Per-CPU jiffies from /proc/stat: {cpu: (busy, task, steal, total, irq)}:
    busy is everything but idle, iowait and steal; task only user, nice and
    system (the time charged to processes); irq is irq + softirq."""
    times = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                v = [int(x) for x in values[:8]]  # user nice system idle iowait irq softirq steal
                total = sum(v)
                times[name[3:]] = (total - v[3] - v[4] - v[7], v[0] + v[1] + v[2], v[7], total, v[5] + v[6])
    return times


def busy_between(before, after, task_only=False, irq_only=False):
    """% busy of COLLECTOR_CPU and LOAD_CPU between two cpu_times(), and % steal."""
    busy = []
    index = 1 if task_only else 4 if irq_only else 0
    for cpu in (COLLECTOR_CPU, LOAD_CPU):
        total = after[cpu][3] - before[cpu][3]
        busy.append((after[cpu][index] - before[cpu][index]) / total * 100 if total else float("nan"))
    total = sum(after[c][3] - before[c][3] for c in (COLLECTOR_CPU, LOAD_CPU))
    steal = sum(after[c][2] - before[c][2] for c in (COLLECTOR_CPU, LOAD_CPU))
    return tuple(busy), (steal / total * 100 if total else float("nan"))


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values):
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def fmt(value, digits=2):
    if value != value:  # NaN
        return "–"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.{digits}f} M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.0f} k"
    return f"{value:.{digits}f}"


def binary_id(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    mtime = datetime.datetime.fromtimestamp(os.stat(path).st_mtime).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"sha256 {digest.hexdigest()[:16]}, built {mtime}"


def run_text(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as error:
        return f"unknown ({error})"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def find_rotel():
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "rotel-agent")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def wait_for_quiet(limit):
    """Samples both CPUs for 0.5 s, repeatedly for up to `limit` seconds, until
    neither is more than 15 % busy; returns the last sample (% busy per CPU)."""
    deadline = time.monotonic() + limit
    while True:
        before = cpu_times()
        time.sleep(0.5)
        busy, _ = busy_between(before, cpu_times())
        if max(busy) <= 15 or time.monotonic() >= deadline:
            return busy


# ---------------------------------------------------------------- payloads

def make_payloads():
    subprocess.run([sys.executable, os.path.join(BENCH_DIR, "payloads.py"), PAYLOAD_DIR], check=True,
                   stdout=subprocess.DEVNULL)
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    counts = {}
    for name in ("traces-512", "traces-10", "logs-512", "metrics-512"):
        with open(os.path.join(PAYLOAD_DIR, name + ".pb"), "rb") as f:
            body = f.read()
        if name.startswith("traces"):
            msg = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            n = sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
        elif name.startswith("logs"):
            msg = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
            n = sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)
        else:
            msg = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
            n = 0
            for rm in msg.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        n += len(getattr(m, kind).data_points) if kind else 0
        counts[name] = n
    return counts


def message_classes(signal_name):
    if signal_name == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as m
        return m.ExportTraceServiceRequest, m.ExportTraceServiceResponse, "rejected_spans"
    if signal_name == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as m
        return m.ExportLogsServiceRequest, m.ExportLogsServiceResponse, "rejected_log_records"
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as m
    return m.ExportMetricsServiceRequest, m.ExportMetricsServiceResponse, "rejected_data_points"


# ---------------------------------------------------------------- collectors

class Collector:
    """One collector process pinned to COLLECTOR_CPU, from start to stop."""

    def __init__(self, name, argv, workdir, ready_line=None):
        self.name, self.argv, self.workdir, self.ready_line = name, argv, workdir, ready_line
        self.proc = None
        self.stdout_path = os.path.join(workdir, f"{name}.stdout")
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")

    def start(self, ports, timeout=30):
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(["taskset", "-c", COLLECTOR_CPU, *self.argv], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start:\n{self.tail()}")
            ready = self.ready_line is None or self.ready_line in self.read(self.stderr_path)
            if ready and all(port_open(p) for p in ports):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    @property
    def pid(self):
        return self.proc.pid  # taskset execs the collector: same PID

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @staticmethod
    def read(path):
        try:
            with open(path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, lines=15):
        text = (self.read(self.stderr_path) + self.read(self.stdout_path)).splitlines()
        return "\n".join(text[-lines:])

    def log_lines(self, *needles):
        text = self.read(self.stderr_path) + self.read(self.stdout_path)
        return [line for line in text.splitlines() if any(n in line for n in needles)]


def otlpd_collector(binary, workdir, grpc_port, http_port, telemetry_port, exporter="nop", file_path=None,
                    processors="batch", queue_dir=None):
    if exporter == "file":
        exporters = ("  nop: {}\n"
                     f"  file: {{ path: {file_path}, format: json, "
                     "rotation: { max_megabytes: 256, max_backups: 1 } }\n")
        trace_exporter = "file"
    elif exporter.startswith("otlp_grpc:"):
        _, endpoint, compression = exporter.split(":", 2)
        queue = ", sending_queue: { storage: file_storage }" if queue_dir else ""
        exporters = ("  nop: {}\n"
                     f"  otlp_grpc: {{ endpoint: '127.0.0.1:{endpoint}', tls: {{ insecure: true }}, "
                     f"compression: {compression}{queue} }}\n")
        trace_exporter = "otlp_grpc"
    else:
        exporters = "  nop: {}\n"
        trace_exporter = "nop"
    names = [n.strip() for n in processors.split(",") if n.strip()]
    processor_section, pipeline_processors = "", ""
    if names:
        processor_section = "processors:\n"
        for name in names:
            if name == "attributes/bench":
                processor_section += "  attributes/bench:\n    actions:\n" + ATTRIBUTE_ACTIONS
            else:
                processor_section += f"  {name}: {{}}\n"
        pipeline_processors = f"processors: [{', '.join(names)}], "
    extension_section, service_extensions = "", ""
    if queue_dir:
        # fsync is the default; written out, since every figure of the row depends on it.
        extension_section = f"extensions:\n  file_storage: {{ directory: '{queue_dir}', fsync: true }}\n"
        service_extensions = "  extensions: [file_storage]\n"
    config = (
        "receivers:\n"
        "  otlp:\n"
        "    protocols:\n"
        f"      grpc: {{ endpoint: 127.0.0.1:{grpc_port} }}\n"
        f"      http: {{ endpoint: 127.0.0.1:{http_port} }}\n"
        + processor_section + extension_section +
        "exporters:\n" + exporters +
        "service:\n"
        + service_extensions +
        # Self-telemetry is read once, at the end, for the batch sizes.
        f"  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry_port} }} }}\n"
        "  pipelines:\n"
        f"    traces: {{ receivers: [otlp], {pipeline_processors}exporters: [{trace_exporter}] }}\n"
        f"    metrics: {{ receivers: [otlp], {pipeline_processors}exporters: [nop] }}\n"
        f"    logs: {{ receivers: [otlp], {pipeline_processors}exporters: [nop] }}\n")
    path = os.path.join(workdir, "otlpd.yaml")
    with open(path, "w") as f:
        f.write(config)
    return Collector("otlpd", [binary, "--config", path], workdir, ready_line="otlpd is ready")


def rotel_collector(binary, workdir, grpc_port, http_port, forward=None):
    """rotel with its blackhole exporter, or forwarding over OTLP/gRPC: `forward` is (sink port, compression)."""
    exporter = ["--exporter", "blackhole"]
    if forward:
        exporter = ["--exporter", "otlp", "--otlp-exporter-endpoint", f"http://127.0.0.1:{forward[0]}",
                    "--otlp-exporter-protocol", "grpc", "--otlp-exporter-compression", forward[1]]
    return Collector("rotel", [
        binary, "start",
        "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
        *exporter,
        "--pid-file", os.path.join(workdir, "rotel.pid"),
        "--log-file", os.path.join(workdir, "rotel.log"),
    ], workdir)


def sink_collector(binary, workdir, grpc_port, telemetry_port):
    """The forwarding scenarios' upstream: otlpd receiving OTLP/gRPC into nop, pinned to the load
    generator's CPU (it never shares the collector's). What reaches it is counted at its /metrics."""
    path = os.path.join(workdir, "sink.yaml")
    with open(path, "w") as f:
        f.write("receivers: { otlp: { protocols: { grpc: { endpoint: 127.0.0.1:%d } } } }\n"
                "exporters: { nop: {} }\n"
                "service:\n"
                "  telemetry: { metrics: { address: 127.0.0.1:%d } }\n"
                "  pipelines: { traces: { receivers: [otlp], exporters: [nop] } }\n" % (grpc_port, telemetry_port))
    return Collector("sink", ["taskset", "-c", LOAD_CPU, binary, "--config", path], workdir, ready_line="otlpd is ready")


def accepted_at(port):
    """Spans the sink has accepted so far (otelcol_receiver_accepted_spans_total)."""
    return sum(value for name, value in metric_samples(port) if name.startswith("otelcol_receiver_accepted_spans_total"))


# ---------------------------------------------------------------- the status page's feed clients

class FeedClients:
    """bench/feed_clients.py in a process of its own on LOAD_CPU: `count` clients reading otlpd's
    /events (the status page's live feed) from before the warm-up until stop() after the window."""

    def __init__(self, port, count, seconds):
        self.port, self.count, self.seconds = port, count, seconds
        self.proc, self.attached, self.summary = None, None, None
        self.problems, self.early = [], ""   # early: what start() read that was not the attached line

    def start(self, timeout=15):
        """Returns once every client has its first event; raises RuntimeError if they do not."""
        import select
        self.proc = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, sys.executable, os.path.join(BENCH_DIR, "feed_clients.py"),
             "--port", str(self.port), "--clients", str(self.count), "--seconds", str(self.seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line.startswith("attached "):
            self.attached = float(line.split()[1])
            return
        self.early = line
        self.stop()
        detail = "; ".join(self.problems) or line.strip()[:300] or f"nothing within {timeout} s"
        raise RuntimeError(f"{self.count} feed clients did not attach to /events: {detail}")

    def stop(self):
        """Ends the clients (SIGTERM) and reads their summary; idempotent."""
        if self.proc is None or self.summary is not None:
            return self.summary
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        lines = [line for line in (self.early + out).splitlines() if line.startswith("{")]
        try:
            self.summary = json.loads(lines[-1]) if lines else {}
        except ValueError:
            self.summary = {}
        if not self.summary:
            self.problems.append(f"feed clients printed no summary (exit {self.proc.returncode}): {err.strip()[-300:]}")
        elif self.summary.get("error"):
            self.problems.append(f"feed clients: {self.summary['error']}")
        for number, client in enumerate(self.summary.get("clients", []), 1):
            if client.get("error"):
                self.problems.append(f"feed client {number}: {client['error']}")
        return self.summary

    def check(self, run, start, end):
        """Every client read events all through the window [start, end] (time.monotonic, the clock the
        clients stamp their events with), each valid JSON, and otlpd counted all of them as subscribers."""
        run.problems.extend(self.problems)
        clients = (self.summary or {}).get("clients", [])
        if len(clients) != self.count:
            run.problems.append(f"feed clients: {len(clients)} reported, {self.count} started")
            return
        least = max(1, math.floor(end - start) - 2)   # an event a second; some slack at the edges
        run.feed_events = [sum(start <= t <= end for t in c["times"]) for c in clients]
        short = [(n, e) for n, e in enumerate(run.feed_events, 1) if e < least]
        if short:
            run.problems.append(f"feed clients got too few events in the {end - start:.1f} s window (want ≥ {least}): "
                                + ", ".join(f"client {n}: {e}" for n, e in short))
        invalid = sum(c["invalid"] for c in clients)
        if invalid:
            run.problems.append(f"feed clients: {invalid} event(s) whose data was not the status JSON")
        # The first event of each is made as it subscribes (counting those before it); the others once
        # everyone is on. Events from half a second after all had attached must count them all.
        settled = [fc for c in clients for t, fc in zip(c["times"], c["feedClients"]) if t >= self.attached + 0.5]
        wrong = sorted({fc for fc in settled if fc != self.count})
        if not settled:
            run.problems.append("feed clients: no event after all had attached, feedClients unchecked")
        elif wrong:
            run.problems.append(f"feed clients: otlpd's feedClients was {wrong}, not {self.count}, during the run")
        total = [c["events"] for c in clients]
        run.notes.append(
            f"{self.count} feed clients on /events: {min(run.feed_events)}–{max(run.feed_events)} events each in the "
            f"{end - start:.1f} s window, {min(total)}–{max(total)} over the "
            f"{self.summary['stopped'] - self.attached:.1f} s attached; feedClients "
            f"{'/'.join(map(str, sorted(set(settled)))) or '?'} in {len(settled)} events; "
            f"{sum(c['bytes'] for c in clients) / 1024:.0f} KiB read")


# ---------------------------------------------------------------- the checking client

class Checker(threading.Thread):
    """Sends a few requests with a real client while h2load runs: grpcio for gRPC
    (it reads trailers, h2load does not), http.client for OTLP/HTTP."""

    def __init__(self, scenario, port, window, count=3):
        super().__init__(daemon=True)
        self.scenario, self.port, self.window, self.count = scenario, port, window, count
        self.ok, self.errors = 0, []
        ext = ".pb"
        with open(os.path.join(PAYLOAD_DIR, scenario.payload + ext), "rb") as f:
            self.body = f.read()
        self.go = threading.Event()

    def run(self):
        self.go.wait()
        request_cls, response_cls, rejected_field = message_classes(self.scenario.signal)
        spacing = self.window / (self.count + 1)
        if self.scenario.protocol == "grpc":
            import grpc
            channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            export = channel.unary_unary(GRPC_PATHS[self.scenario.signal],
                                         request_serializer=request_cls.SerializeToString,
                                         response_deserializer=response_cls.FromString)
            request = request_cls.FromString(self.body)
            try:
                for _ in range(self.count):
                    time.sleep(spacing)
                    try:
                        response, call = export.with_call(request, timeout=15)
                        rejected = getattr(response.partial_success, rejected_field)
                        if call.code() != grpc.StatusCode.OK:
                            self.errors.append(f"grpc status {call.code()}")
                        elif rejected:
                            self.errors.append(f"partial success: {rejected} rejected")
                        else:
                            self.ok += 1
                    except grpc.RpcError as error:
                        self.errors.append(f"grpc {error.code()}: {error.details()}")
            finally:
                channel.close()
        else:
            for _ in range(self.count):
                time.sleep(spacing)
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                    conn.request("POST", HTTP_PATHS[self.scenario.signal], body=self.body,
                                 headers={"Content-Type": "application/x-protobuf"})
                    reply = conn.getresponse()
                    data = reply.read()
                    conn.close()
                    if reply.status != 200:
                        self.errors.append(f"HTTP {reply.status}: {data[:200]!r}")
                        continue
                    rejected = getattr(response_cls.FromString(data).partial_success, rejected_field)
                    if rejected:
                        self.errors.append(f"partial success: {rejected} rejected")
                    else:
                        self.ok += 1
                except Exception as error:  # noqa: BLE001 - reported, not raised
                    self.errors.append(f"HTTP client: {error!r}")


# ---------------------------------------------------------------- one run

def h2load_argv(scenario, port, warmup, duration, log_path):
    argv = ["taskset", "-c", LOAD_CPU, "h2load", "-t", "1", "-c", str(scenario.clients), "-m", str(scenario.streams),
            "--warm-up-time", str(warmup), "-D", str(duration), "--log-file", log_path]
    if scenario.protocol == "grpc":
        argv += ["-H", "content-type: application/grpc", "-H", "te: trailers",
                 "-d", os.path.join(PAYLOAD_DIR, scenario.payload + ".grpc"),
                 f"http://127.0.0.1:{port}{GRPC_PATHS[scenario.signal]}"]
    else:
        argv += ["--h1", "-H", "content-type: application/x-protobuf",
                 "-d", os.path.join(PAYLOAD_DIR, scenario.payload + ".pb"),
                 f"http://127.0.0.1:{port}{HTTP_PATHS[scenario.signal]}"]
    return argv


def parse_h2load_summary(run, lines):
    import re
    counts = {}
    for line in lines:
        if line.startswith("requests:"):
            counts.update({k: int(v) for v, k in re.findall(r"(\d+) (total|started|done|succeeded|failed|errored|timeout)", line)})
            run.h2load_summary = line.strip()
        elif line.startswith("status codes:"):
            counts.update({k: int(v) for v, k in re.findall(r"(\d+) ([2-5]xx)", line)})
            run.h2load_summary += "; " + line.strip()
    if "succeeded" not in counts:
        run.problems.append("h2load printed no request summary")
        return
    run.succeeded = counts["succeeded"]
    bad = {k: counts.get(k, 0) for k in ("failed", "errored", "timeout", "3xx", "4xx", "5xx") if counts.get(k, 0)}
    if bad:
        run.problems.append("h2load: " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    if run.succeeded == 0:
        run.problems.append("h2load: no request succeeded")


def parse_h2load_log(run, log_path, threshold_us):
    latencies, bad_status = [], 0
    try:
        with open(log_path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) < 3 or int(parts[0]) < threshold_us:
                    continue   # a warm-up row (h2load 1.52 logs only the main phase; this is a safety net)
                if not parts[1].startswith("2"):
                    bad_status += 1
                latencies.append(int(parts[2]))
    except OSError as error:
        run.problems.append(f"h2load log unreadable: {error}")
        return
    latencies.sort()
    run.p50_ms = percentile(latencies, 50) / 1000
    run.p99_ms = percentile(latencies, 99) / 1000
    if bad_status:
        run.problems.append(f"h2load log: {bad_status} responses not 2xx")
    if run.succeeded and abs(len(latencies) - run.succeeded) > max(50, run.succeeded * 0.02):
        run.notes.append(f"h2load log holds {len(latencies)} rows of the window for {run.succeeded} succeeded")


def one_run(scenario, collector_name, pass_no, args, counts, file_dir=None, trace_syncs=False):
    """One pass. trace_syncs: attach strace to otlpd for the window to count its fsyncs (an extra pass:
    ptrace stops otlpd at every system call, so its other figures are not comparable)."""
    label = collector_label(scenario, collector_name) if file_dir is None or file_dir == SHM_DIR else "otlpd (disk)"
    if trace_syncs:
        label = "otlpd (strace)"
    # The status page's live feed: clients on otlpd's /events from before the warm-up to after the window.
    feed = None
    run = Run(scenario.key, label, pass_no, args.duration, items_per_request=counts[scenario.payload])
    workdir = tempfile.mkdtemp(prefix=f"otlpd-bench-{scenario.key}-{collector_name}-")
    grpc_port, http_port = free_port(), free_port()
    if collector_name.startswith("otlpd"):
        file_path = None
        if scenario.otlpd_exporter == "file":
            shutil.rmtree(file_dir, ignore_errors=True)
            os.makedirs(file_dir)
            file_path = os.path.join(file_dir, "traces.jsonl")
        # The baseline: the same load with the baseline's processors instead of the scenario's.
        processors = scenario.otlpd_processors if collector_name == "otlpd" else scenario.baseline_processors
        telemetry_port = free_port()
        exporter = scenario.otlpd_exporter
        if scenario.forward and collector_name == "otlpd":
            sink_port, sink_telemetry = free_port(), free_port()
            exporter = f"otlp_grpc:{sink_port}:{scenario.forward}"
        queue_dir = scenario.queue_dir if collector_name == "otlpd" else None
        if queue_dir:
            shutil.rmtree(queue_dir, ignore_errors=True)   # no backlog from an earlier pass
            os.makedirs(queue_dir)
        collector = otlpd_collector(args.otlpd_copy, workdir, grpc_port, http_port, telemetry_port,
                                    exporter, file_path, processors, queue_dir)
        if scenario.feed_clients and collector_name == "otlpd":
            # --seconds is only a backstop: stop() ends them right after the window.
            feed = FeedClients(telemetry_port, scenario.feed_clients, args.warmup + args.duration + 180)
    else:
        queue_dir = None
        if scenario.forward:
            sink_port, sink_telemetry = free_port(), free_port()
        collector = rotel_collector(args.rotel, workdir, grpc_port, http_port,
                                    (sink_port, scenario.forward) if scenario.forward else None)
    # The baseline of a forwarding scenario passes into nop: no sink.
    sink = None
    if scenario.forward and (collector_name == "otlpd" or collector_name == "rotel"):
        sink = sink_collector(args.otlpd_copy, workdir, sink_port, sink_telemetry)
    port = grpc_port if scenario.protocol == "grpc" else http_port
    log_path = os.path.join(workdir, "h2load.log")
    checker = Checker(scenario, port, args.duration)
    idle_busy = wait_for_quiet(args.wait_idle)
    if max(idle_busy) > 30:
        run.notes.append(f"the machine was busy before the run (CPU 0 / 1: {idle_busy[0]:.0f} / {idle_busy[1]:.0f} %)")
    try:
        if sink:
            sink.start([sink_port])
        collector.start([grpc_port, http_port])
        if feed:
            feed.start()   # otlpd is ready; h2load (and its warm-up) starts once every client has its first event
        checker.start()
        launch_us = time.time_ns() // 1000
        h2 = subprocess.Popen(h2load_argv(scenario, port, args.warmup, args.duration, log_path),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        lines, marks, io, strace = [], {}, {}, None
        strace_out = os.path.join(workdir, "strace.txt")
        killer = threading.Timer(args.warmup + args.duration + 120, h2.kill)
        killer.start()
        try:
            for line in h2.stdout:
                lines.append(line)
                if "Main benchmark duration is started" in line and "start" not in marks:
                    marks["start"] = (time.monotonic(), cpu_seconds(collector.pid), cpu_seconds(h2.pid),
                                      cpu_times(), accepted_at(sink_telemetry) if sink else 0)
                    if queue_dir:
                        io["start"] = write_bytes(collector.pid)
                        io["commits_start"] = queue_syncs(telemetry_port)
                    if trace_syncs:
                        # -c counts calls per system call; -f takes in every thread (the fsyncs run on
                        # otlpd's blocking-I/O pool). This script's CPU, not the collector's.
                        strace = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync",
                                                   "-p", str(collector.pid), "-o", strace_out],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                        strace_started = time.monotonic()
                    checker.go.set()
                elif "Main benchmark duration is over" in line and "end" not in marks:
                    marks["end"] = (time.monotonic(), cpu_seconds(collector.pid), cpu_seconds(h2.pid),
                                    cpu_times(), accepted_at(sink_telemetry) if sink else 0)
                    if strace:
                        strace.send_signal(signal.SIGINT)   # detaches and writes its summary
                        run.sync_window = time.monotonic() - strace_started
                    if queue_dir:
                        io["end"] = write_bytes(collector.pid)
                        io["commits_end"] = queue_syncs(telemetry_port)
                        segments, size = segment_files(queue_dir)
                        run.notes.append(f"queue: {segments} segment file(s), {size / 2**20:.0f} MiB on disk at the "
                                         "window's end (segments go as the sink confirms)")
                    if sink:
                        run.forwarded = int(marks["end"][4] - marks["start"][4])
                    run.rss_mib, run.threads = proc_status(collector.pid)
                    if collector_name.startswith("otlpd"):
                        run.mean_batch = mean_batch_size(telemetry_port)
            h2.wait()
        finally:
            killer.cancel()
            checker.go.set()
            if feed:
                feed.stop()
            if strace:
                if strace.poll() is None and "end" not in marks:
                    strace.send_signal(signal.SIGINT)
                try:
                    _, strace_err = strace.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    strace.kill()
                    _, strace_err = strace.communicate()
                if "attached" in strace_err and "end" in marks:
                    calls = strace_syncs(strace_out)
                    run.syncs = sum(calls.values())
                    run.notes.append(f"strace -f -c attached {run.sync_window:.1f} s: "
                                     + ", ".join(f"{calls.get(c, 0)} {c}" for c in ("fdatasync", "fsync")))
                else:
                    run.notes.append(f"strace counted nothing: {strace_err.strip()[-200:] or 'no output'}")
        if queue_dir and io.get("start") is not None and io.get("end") is not None:
            run.queue_written = io["end"] - io["start"]
        if queue_dir and io.get("commits_start") is not None and io.get("commits_end") is not None:
            run.commits = int(io["commits_end"] - io["commits_start"])
        if h2.returncode != 0:
            run.problems.append(f"h2load exited with {h2.returncode}: {''.join(lines[-5:]).strip()}")
        if "start" in marks and "end" in marks:
            run.window = marks["end"][0] - marks["start"][0]
            run.cpu = marks["end"][1] - marks["start"][1]
            run.loadgen_cpu = marks["end"][2] - marks["start"][2]
            run.cpu_busy, run.steal = busy_between(marks["start"][3], marks["end"][3])
            run.irq, _ = busy_between(marks["start"][3], marks["end"][3], irq_only=True)
            (task_busy, _), _ = busy_between(marks["start"][3], marks["end"][3], task_only=True)
            others = task_busy - run.cores * 100   # process time on CPU 0 that was not the collector's
            if others > 15:
                run.notes.append(f"other processes took {others:.0f} % of CPU {COLLECTOR_CPU} beside the collector's "
                                 f"{run.cores * 100:.0f} %: throughput understated (CPU-s per M items still holds)")
            if run.steal > 5:
                run.notes.append(f"{run.steal:.0f} % of the window was stolen by the hypervisor")
        else:
            run.problems.append("h2load's main-phase start/end lines were not seen: no CPU figures")
        if feed:
            if "start" in marks and "end" in marks:
                feed.check(run, marks["start"][0], marks["end"][0])
            else:
                run.problems.extend(feed.problems)
        parse_h2load_summary(run, lines)
        parse_h2load_log(run, log_path, launch_us + int(args.warmup * 1e6))
        checker.join(timeout=30)
        run.checks_ok, run.checks_total = checker.ok, checker.count
        if checker.is_alive():
            run.problems.append("checking client did not finish")
        for error in checker.errors:
            run.problems.append(f"checking client: {error}")
        if not collector.alive():
            run.problems.append(f"{collector_name} died during the run (exit {collector.proc.returncode}):\n"
                                f"{collector.tail()}")
        if file_dir is not None:
            check_file_output(run, file_dir)
        if queue_dir:
            if run.queue_written is None:
                run.notes.append("queue: /proc/PID/io unreadable, no disk bytes per span")
            elif run.queue_written == 0:
                run.problems.append(f"the persistent queue wrote nothing to disk under {queue_dir} in the window")
            else:
                run.notes.append(f"queue: {run.queue_written / 2**20:.0f} MiB to the storage layer in the window "
                                 f"(write_bytes), {run.disk_per_item:.0f} B per {scenario.unit[:-1]} answered")
    except RuntimeError as error:
        run.problems.append(str(error))
    finally:
        if feed:
            feed.stop()   # before otlpd: its shutdown ending the feed is not the clients' failure
        collector.stop()
        if sink:
            sink.stop()
            if not run.forwarded:
                run.problems.append("nothing reached the sink")
        noisy = collector.log_lines("\terror\t", "\tcritical\t", " ERROR", " WARN")
        if noisy:
            run.notes.append(f"{len(noisy)} error/warning log lines, e.g. {noisy[0].strip()[:200]}")
        if collector_name == "otlpd" and collector.proc is not None and collector.proc.returncode not in (0, None):
            run.notes.append(f"otlpd exited with {collector.proc.returncode} on SIGTERM")
        if file_dir is not None:
            shutil.rmtree(file_dir, ignore_errors=True)
        if queue_dir:
            shutil.rmtree(queue_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def metric_samples(port):
    """(series, value) of every sample at an otlpd's /metrics; empty if it cannot be read."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return []
    samples = []
    for line in data.decode(errors="replace").split("\r\n\r\n", 1)[-1].splitlines():
        name, _, value = line.rpartition(" ")
        if name and not line.startswith("#"):
            try:
                samples.append((name, float(value)))
            except ValueError:
                pass
    return samples


def queue_syncs(port):
    """The persistent queues' group commits so far (each an fsync), by otlpd's own counter; None if unread."""
    samples = [value for name, value in metric_samples(port) if name.startswith("otlpd_exporter_queue_syncs_total")]
    return sum(samples) if samples else None


def mean_batch_size(port):
    """The mean size of the batches otlpd's batch processors sent so far (the
    otelcol_processor_batch_batch_send_size histogram; only the scenario's
    signal is sent, so the other pipelines add nothing)."""
    samples = metric_samples(port)
    total = sum(v for n, v in samples if n.startswith("otelcol_processor_batch_batch_send_size_sum"))
    count = sum(v for n, v in samples if n.startswith("otelcol_processor_batch_batch_send_size_count"))
    return total / count if count else float("nan")


def check_file_output(run, file_dir):
    """The file exporter wrote OTLP/JSON lines: look at the first line still on disk."""
    files = sorted(os.listdir(file_dir)) if os.path.isdir(file_dir) else []
    size = sum(os.path.getsize(os.path.join(file_dir, n)) for n in files)
    if not files or size == 0:
        run.problems.append(f"file exporter wrote nothing under {file_dir}")
        return
    with open(os.path.join(file_dir, files[0]), "rb") as f:
        first = f.readline()
    try:
        if "resourceSpans" not in json.loads(first):
            run.problems.append("file exporter: first line has no resourceSpans")
    except ValueError as error:
        run.problems.append(f"file exporter: first line is not JSON ({error})")
    run.notes.append(f"{len(files)} file(s), {size / 2**20:.0f} MiB left under {file_dir} at the end")


# ---------------------------------------------------------------- report

def summarize(runs):
    """Median of each figure over the passes."""
    return {
        "rate": median([r.rate for r in runs]),
        "cores": median([r.cores for r in runs]),
        "loadgen_cores": median([r.loadgen_cores for r in runs]),
        "cpu_per_million": median([r.cpu_per_million for r in runs]),
        "rss_mib": median([r.rss_mib for r in runs]),
        "p50_ms": median([r.p50_ms for r in runs]),
        "p99_ms": median([r.p99_ms for r in runs]),
        "mean_batch": median([r.mean_batch for r in runs]),
        "answered_rate": median([r.answered_rate for r in runs]),
        "disk_per_item": median([r.disk_per_item for r in runs]),
        "syncs_per_s": median([r.syncs_per_second for r in runs]),
        "commits_per_s": median([r.commits_per_second for r in runs]),
        "problems": sum(len(r.problems) for r in runs),
        "spread": (max(r.rate for r in runs) - min(r.rate for r in runs)) / median([r.rate for r in runs]) * 100
        if runs and median([r.rate for r in runs]) else float("nan"),
        "passes": len(runs),
        "items": runs[0].items_per_request if runs else 0,
        # The fewest and most events a feed client got in a window, over the passes (status-page scenario).
        "feed_events": (min(e for r in runs for e in r.feed_events), max(e for r in runs for e in r.feed_events))
        if runs and all(r.feed_events for r in runs) else None,
    }


def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")


def check_targets(results):
    """One line per target: PASS/MISS with the margin (positive = headroom)."""
    lines = []

    valid = True  # False while the pair being checked had a failed run

    def verdict(ok):
        return ("PASS" if ok else "MISS") if valid else "INVALID"

    def at_most(name, measured, bound, detail):
        if measured != measured:
            return lines.append(f"SKIP  {name}: not measured")
        margin = (bound - measured) / bound * 100
        lines.append(f"{verdict(measured <= bound)}  {name}: {detail} (limit {bound:.3g}, margin {margin:+.0f} %)"
                     + ("" if valid else " -- some runs failed, figures not valid"))

    def at_least(name, measured, bound, detail):
        if measured != measured:
            return lines.append(f"SKIP  {name}: not measured")
        margin = (measured - bound) / bound * 100
        lines.append(f"{verdict(measured >= bound)}  {name}: {detail} (limit {bound:.3g}, margin {margin:+.0f} %)"
                     + ("" if valid else " -- some runs failed, figures not valid"))

    def pair(key):
        nonlocal valid
        s = results.get(key, {})
        o, r = s.get("otlpd"), s.get("rotel")
        valid = not ((o and o["problems"]) or (r and r["problems"]))
        return o, r

    o, r = pair("grpc-512")
    if o and r:
        q = ratio(o["cpu_per_million"], r["cpu_per_million"])
        at_most("gRPC 512-span → [batch] → nop: otlpd CPU-s per M spans ≤ 1/4 of rotel's", q, 0.25,
                f"{o['cpu_per_million']:.3f} vs {r['cpu_per_million']:.3f} CPU-s/M, ratio {q:.3f}")
        q = ratio(o["rss_mib"], r["rss_mib"])
        at_most("gRPC 512-span → [batch] → nop: otlpd peak RSS ≤ rotel's", q, 1.0,
                f"{o['rss_mib']:.1f} vs {r['rss_mib']:.1f} MiB, ratio {q:.2f}")
        base = results["grpc-512"].get(baseline_name(""))
        if base:
            valid = valid and not base["problems"]
            # "No worse than without batch", within this VM's pass-to-pass noise (10 %).
            q = ratio(o["cpu_per_million"], base["cpu_per_million"])
            at_most("gRPC 512-span: otlpd [batch] CPU-s per M spans no worse than otlpd [] (within 10 %)", q, 1.10,
                    f"{o['cpu_per_million']:.3f} vs {base['cpu_per_million']:.3f} CPU-s/M, ratio {q:.3f}; "
                    f"mean batch {o['mean_batch']:.0f} spans")
    else:
        lines.append("SKIP  gRPC 512-span → nop targets: scenario not run")
    o, r = pair("grpc-10")
    if o and r:
        q = ratio(o["rate"], r["rate"])
        at_least("gRPC 10-span → [batch]: otlpd spans/s ≥ 4× rotel's", q, 4.0,
                 f"{fmt(o['rate'])} vs {fmt(r['rate'])} spans/s, ratio {q:.2f}; mean batch {o['mean_batch']:.0f} spans")
        at_most("gRPC 10-span → [batch]: otlpd p99 ≤ 5 ms", o["p99_ms"], 5.0, f"p99 {o['p99_ms']:.2f} ms")
    else:
        lines.append("SKIP  gRPC 10-span targets: scenario not run")
    o, r = pair("http1-512")
    if o and r:
        q = ratio(r["cpu_per_million"], o["cpu_per_million"])  # spans per CPU-second, otlpd over rotel
        at_least("OTLP/HTTP/1.1 512-span → [batch] → nop: otlpd spans per CPU-second ≥ 4× rotel's", q, 4.0,
                 f"{fmt(1e6 / o['cpu_per_million'])} vs {fmt(1e6 / r['cpu_per_million'])} spans/CPU-s, ratio {q:.2f}")
    else:
        lines.append("SKIP  OTLP/HTTP/1.1 target: scenario not run")
    o, r = pair("file-json")
    if o and r:
        q = ratio(o["rate"], r["rate"])
        at_least("gRPC 512-span → [batch] → file (json, tmpfs): otlpd spans/s ≥ 2× rotel's blackhole", q, 2.0,
                 f"{fmt(o['rate'])} vs {fmt(r['rate'])} spans/s, ratio {q:.2f}")
        at_least("[batch] → file (json, tmpfs): otlpd ≥ 1 M spans/s", o["rate"], 1e6,
                 f"{fmt(o['rate'])} spans/s, mean batch {o['mean_batch']:.0f} spans")
        at_most("[batch] → file (json, tmpfs): otlpd ≤ 0.8 CPU-s per M spans (receive, batch, JSON, write)",
                o["cpu_per_million"], 0.8, f"{o['cpu_per_million']:.3f} CPU-s/M")
        at_most("[batch] → file (json, tmpfs): otlpd p99 ≤ 50 ms", o["p99_ms"], 50.0, f"p99 {o['p99_ms']:.2f} ms")
        disk = results.get("file-json", {}).get("otlpd (disk)")
        if disk:
            lines.append(f"INFO  the same into a file on the repo's disk (no target: bound by the VM's disk): "
                         f"{fmt(disk['rate'])} vs rotel's {fmt(r['rate'])} spans/s, ratio {ratio(disk['rate'], r['rate']):.2f}")
    else:
        lines.append("SKIP  file target: scenario not run")
    o, r = pair("attributes")
    base = results.get("attributes", {}).get(baseline_name("batch"))
    if o and base:
        valid = valid and not base["problems"]
        # Cost per span against otlpd with batch alone, run in turn with it: at most 30 % of its throughput per core.
        q = ratio(1e6 / o["cpu_per_million"], 1e6 / base["cpu_per_million"])
        at_least("[attributes (3 actions), batch] → nop: otlpd spans per CPU-second ≥ 70 % of otlpd [batch]'s", q, 0.70,
                 f"{fmt(1e6 / o['cpu_per_million'])} vs {fmt(1e6 / base['cpu_per_million'])} spans/CPU-s, ratio {q:.2f}; "
                 f"throughput {fmt(o['rate'])} vs {fmt(base['rate'])} spans/s"
                 + (f"; rotel pass-through {fmt(r['rate'])} spans/s, {fmt(1e6 / r['cpu_per_million'])} spans/CPU-s" if r else ""))
    else:
        lines.append("SKIP  attributes target: scenario not run")
    o, r = pair("forward")
    base = results.get("forward", {}).get(baseline_name("batch"))
    if o and r:
        q = ratio(o["cpu_per_million"], r["cpu_per_million"])
        at_most("forward, no compression: otlpd CPU-s per M forwarded spans ≤ 1/10 of rotel's", q, 0.10,
                f"{o['cpu_per_million']:.3f} vs {r['cpu_per_million']:.3f} CPU-s/M, ratio {q:.3f}; "
                f"{fmt(o['rate'])} vs {fmt(r['rate'])} spans/s arrived")
        if base:
            valid = valid and not base["problems"]
            q = ratio(o["cpu_per_million"], base["cpu_per_million"])
            at_most("forward, no compression: otlpd CPU-s per M forwarded spans ≤ 2× its own pass-through into nop", q, 2.0,
                    f"{o['cpu_per_million']:.3f} vs {base['cpu_per_million']:.3f} CPU-s/M, ratio {q:.3f}")
        at_most("forward: otlpd peak RSS ≤ 256 MiB", o["rss_mib"], 256.0,
                f"{o['rss_mib']:.1f} MiB (rotel {r['rss_mib']:.1f} MiB)")
    else:
        lines.append("SKIP  forwarding targets: scenario not run")
    o, r = pair("forward-gzip")
    if o and r:
        q = ratio(o["cpu_per_million"], r["cpu_per_million"])
        at_most("forward, gzip on both: otlpd CPU-s per M forwarded spans ≤ 1/5 of rotel's", q, 0.20,
                f"{o['cpu_per_million']:.3f} vs {r['cpu_per_million']:.3f} CPU-s/M, ratio {q:.3f}; "
                f"{fmt(o['rate'])} vs {fmt(r['rate'])} spans/s arrived")
    else:
        lines.append("SKIP  forwarding with gzip target: scenario not run")
    o, r = pair("forward-disk")
    if o and r:
        q = ratio(o["rate"], r["rate"])
        at_least("forward through a persistent queue (file_storage, fsync, repo disk): otlpd forwarded spans/s "
                 "≥ 2× rotel's (which forwards from memory: it has no persistent queue)", q, 2.0,
                 f"{fmt(o['rate'])} vs {fmt(r['rate'])} spans/s arrived, ratio {q:.2f}; "
                 f"{fmt(o['disk_per_item'], 0)} B to disk per span answered")
    else:
        lines.append("SKIP  persistent-queue target: scenario not run")
    s = results.get("status-page", {})
    o, base = s.get("otlpd"), s.get(baseline_name("batch"))
    if o and base:
        # rotel's row is there for reference; its failures do not touch this otlpd-to-otlpd ratio.
        valid = not (o["problems"] or base["problems"])
        q = ratio(o["cpu_per_million"], base["cpu_per_million"])
        events = o["feed_events"]
        clients = next(scn.feed_clients for scn in SCENARIOS if scn.key == "status-page")
        at_most(f"status page: otlpd [batch] CPU-s per M spans with {clients} feed clients on /events ≤ 1.05× "
                "without (passes in turn)", q, 1.05,
                f"{o['cpu_per_million']:.3f} vs {base['cpu_per_million']:.3f} CPU-s/M, ratio {q:.3f}; "
                f"{fmt(o['rate'])} vs {fmt(base['rate'])} spans/s; "
                + (f"{events[0]}–{events[1]} events per client in each window" if events else "feed events not counted"))
    else:
        lines.append("SKIP  status-page target: scenario not run")
    return lines


def queue_note(scn, res):
    """The persistent-queue row's note: what rotel lacks, and how the queue's two figures were taken."""
    with open(os.path.join(PAYLOAD_DIR, scn.payload + ".pb"), "rb") as f:
        wire = len(f.read())
    o, st = res.get("otlpd", {}), res.get("otlpd (strace)", {})
    unit = scn.unit[:-1]
    note = (f"{scn.number} `{scn.key}`: rotel has no persistent queue, so its row is its plain forwarding from memory "
            "(its answer means the data is in memory; otlpd's, that it is fsync'ed on disk). "
            f"Disk B per {unit}: growth of otlpd's /proc/PID/io write_bytes over the window / {scn.unit} answered "
            f"in it, median over the passes (page-granular: a partly filled page fsync'ed and written again "
            f"counts again; the request itself is {wire / (o.get('items') or 1):.0f} B per {unit} of protobuf). ")
    note += (f"fsyncs/s: the queue's group commits in the measured window, by otlpd's own counter "
             f"(otlpd_exporter_queue_syncs_total; one fsync each, which the answers of that group waited for): "
             f"{fmt(o.get('commits_per_s', float('nan')) / o['answered_rate'] * 1e6 if o.get('answered_rate') else float('nan'), 0)} "
             f"per M {scn.unit} answered. ")
    if "unavailable" in st:
        note += f"All fsync calls: n/a ({st['unavailable']})."
    elif st and st["syncs_per_s"] != st["syncs_per_s"]:
        note += "All fsync calls: n/a (the strace pass counted nothing: see its note below)."
    elif st:
        rate = st["answered_rate"]
        note += (f"All fsync + fdatasync calls (segment syncs, confirmed-position saves, folder syncs), counted by "
                 f"`strace -f -c` attached for the window of one extra otlpd pass after the measured ones (ptrace "
                 f"slows otlpd, so that pass is not in the medians: it answered {fmt(rate)} {scn.unit}/s): "
                 f"{fmt(st['syncs_per_s'], 0)}/s, "
                 f"{fmt(st['syncs_per_s'] / rate * 1e6 if rate else float('nan'), 0)} per M {scn.unit} answered.")
    return note


def report(args, machine, scenarios, all_runs, results, targets):
    out = []
    out.append(f"# otlpd benchmark, {machine['date']}\n")
    out.append(f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), kernel {machine['kernel']}")
    out.append(f"- otlpd: `{machine['otlpd']}` ({args.otlpd}, {machine['otlpd_id']})")
    out.append(f"- rotel: `{machine['rotel']}` ({args.rotel}), exporter blackhole; in the forwarding scenarios its "
               "otlp exporter over gRPC with the scenario's compression")
    if any(s.forward for s in scenarios):
        out.append("- forwarding scenarios: both collectors send to a sink, otlpd receiving OTLP/gRPC into nop, pinned to "
                   f"CPU {LOAD_CPU} with h2load (never the collector's CPU); items/s and CPU-s per M count the spans "
                   "that reached the sink in the window, not what h2load got answered")
    if any(s.queue_dir for s in scenarios):
        out.append(f"- persistent queue: otlpd's `file_storage` folder `{QUEUE_DIR}` ({mount_of(OUT_DIR)}), fsync "
                   "on, wiped before each run; rotel has no persistent queue (it forwards from memory)")
    out.append(f"- load: `{machine['h2load']}`; collector on CPU {COLLECTOR_CPU}, h2load on CPU {LOAD_CPU}")
    out.append(f"- each run: {args.warmup} s warm-up, {args.duration} s measured window; "
               f"{args.passes} pass(es) per collector, alternating; figures are medians over the passes")
    out.append(f"- load average before / after: {machine['loadavg']} / {machine['loadavg_after']}")
    out.append(f"- command: `{' '.join(sys.argv)}`\n")
    out.append("| # | scenario | collector | items/s | collector cores | CPU-s per M items | peak RSS MiB "
               "| p50 ms | p99 ms | h2load cores | spread of items/s over passes | mean batch "
               "| queue: disk B per item · fsyncs/s | failures |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    row_notes = []
    for scn in scenarios:
        res = results.get(scn.key, {})
        baseline = [] if scn.baseline_processors is None else [baseline_name(scn.baseline_processors)]
        for name in ["otlpd", *baseline, "rotel", "otlpd (disk)"]:
            s = res.get(name)
            if not s:
                continue
            title = scn.title if name == "otlpd" else ""
            coll = collector_label(scn, name) if name != "otlpd (disk)" else "otlpd, file on repo disk (disk-bound, 1 pass)"
            queue = ""
            if scn.queue_dir and name == "otlpd":
                queue = f"{fmt(s['disk_per_item'], 0)} · {fmt(s['commits_per_s'], 0)}"
            elif scn.queue_dir and name == "rotel":
                queue = "no persistent queue"
            out.append(f"| {scn.number if name == 'otlpd' else ''} | {title} | {coll} | {fmt(s['rate'])} {scn.unit}/s "
                       f"| {s['cores']:.2f} | {s['cpu_per_million']:.3f} | {s['rss_mib']:.1f} | {s['p50_ms']:.2f} "
                       f"| {s['p99_ms']:.2f} | {s['loadgen_cores']:.2f} | "
                       f"{'–' if s['passes'] < 2 else format(s['spread'], '.0f') + ' %'} "
                       f"| {'' if s['mean_batch'] != s['mean_batch'] else format(s['mean_batch'], '.0f')} | {queue} "
                       f"| {s['problems'] or ''} |")
        o, r = res.get("otlpd"), res.get("rotel")
        if o and r:
            out.append(f"| | | **otlpd / rotel** | **{ratio(o['rate'], r['rate']):.2f}×** | "
                       f"{ratio(o['cores'], r['cores']):.2f}× | **{ratio(o['cpu_per_million'], r['cpu_per_million']):.3f}×** "
                       f"| {ratio(o['rss_mib'], r['rss_mib']):.2f}× | {ratio(o['p50_ms'], r['p50_ms']):.3f}× "
                       f"| {ratio(o['p99_ms'], r['p99_ms']):.3f}× | | | | | |")
        base = res.get(baseline_name(scn.baseline_processors)) if scn.baseline_processors is not None else None
        if scn.feed_clients and o and base:
            out.append(f"| | | **with feed / without** | {ratio(o['rate'], base['rate']):.3f}× | "
                       f"{ratio(o['cores'], base['cores']):.3f}× | **{ratio(o['cpu_per_million'], base['cpu_per_million']):.3f}×** "
                       f"| {ratio(o['rss_mib'], base['rss_mib']):.2f}× | {ratio(o['p50_ms'], base['p50_ms']):.3f}× "
                       f"| {ratio(o['p99_ms'], base['p99_ms']):.3f}× | | | | | |")
            row_notes.append(f"{scn.number} `{scn.key}`: {scn.feed_clients} clients (bench/feed_clients.py, on CPU "
                             f"{LOAD_CPU}) read otlpd's `/events` from before the warm-up to after the window, every "
                             f"event parsed; {baseline_name(scn.baseline_processors)} is the same otlpd with none, run "
                             "in turn with it. **with feed / without** is the cost of the status page's live feed "
                             "on the data path.")
        if scn.queue_dir:
            row_notes.append(queue_note(scn, res))
    out.append("")
    if row_notes:
        out.extend(f"- {n}" for n in row_notes)
        out.append("")
    out.append("## Targets\n")
    out.append("```")
    out.extend(targets)
    out.append("```\n")
    out.append("## Every pass\n")
    out.append("| scenario | collector | pass | items/s | cores | CPU-s/M | RSS MiB | threads | p50 ms | p99 ms "
               "| window s | CPU0 / CPU1 busy % | of which irq+softirq % | steal % | mean batch | real-client checks | h2load |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in all_runs:
        out.append(f"| {r.scenario} | {r.collector} | {r.pass_no} | {fmt(r.rate)} | {r.cores:.2f} | "
                   f"{r.cpu_per_million:.3f} | {r.rss_mib:.1f} | {r.threads} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.window:.2f} | "
                   f"{r.cpu_busy[0]:.0f} / {r.cpu_busy[1]:.0f} | {r.irq[0]:.0f} / {r.irq[1]:.0f} | {r.steal:.1f} | "
                   f"{'' if r.mean_batch != r.mean_batch else format(r.mean_batch, '.0f')} | "
                   f"{r.checks_ok}/{r.checks_total} OK | {r.h2load_summary} |")
    problems = [(r, p) for r in all_runs for p in r.problems]
    notes = [(r, n) for r in all_runs for n in r.notes]
    if problems:
        out.append("\n## FAILURES\n")
        for r, p in problems:
            out.append(f"- **{r.scenario} / {r.collector} / pass {r.pass_no}**: {p}")
    if notes:
        out.append("\n## Notes\n")
        for r, n in notes:
            out.append(f"- {r.scenario} / {r.collector} / pass {r.pass_no}: {n}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

def select_scenarios(spec):
    if not spec:
        return SCENARIOS
    chosen = []
    for token in [t.strip() for t in spec.split(",") if t.strip()]:
        match = [s for s in SCENARIOS if token == str(s.number) or token == s.key]
        if not match:
            raise SystemExit(f"unknown scenario {token!r}; known: " +
                             ", ".join(f"{s.number}={s.key}" for s in SCENARIOS))
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen, key=lambda s: s.number)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otlpd", required=True, help="the otlpd binary (a release build)")
    parser.add_argument("--rotel", help="the rotel-agent binary (default: the one in the installed rotel wheel)")
    parser.add_argument("--quick", action="store_true", help="a sanity run: 1 s warm-up, 3 s windows, 1 pass")
    parser.add_argument("--scenarios", help="comma-separated numbers or keys: " +
                        ", ".join(f"{s.number}={s.key}" for s in SCENARIOS))
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each run, wait up to this long for both CPUs to be idle (a shared machine)")
    parser.add_argument("--no-disk", action="store_true", help="skip the extra disk-bound file row")
    parser.add_argument("--passes", type=int, metavar="N",
                        help="passes per collector (default 2, --quick 1): more narrow a ratio the VM's noise blurs")
    args = parser.parse_args()

    args.warmup, args.duration, passes = (1, 3, 1) if args.quick else (3, 12, 2)
    args.passes = args.passes or passes
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    scenarios = select_scenarios(args.scenarios)
    args.otlpd = os.path.abspath(args.otlpd)
    if not os.access(args.otlpd, os.X_OK):
        print(f"otlpd binary not found or not executable: {args.otlpd}", file=sys.stderr)
        return 2
    args.rotel = args.rotel or find_rotel()
    if not args.rotel:
        print("rotel-agent not found: install the rotel wheel (make venv) or pass --rotel", file=sys.stderr)
        return 2
    for tool in ("h2load", "taskset"):
        if not shutil.which(tool):
            print(f"{tool} not found (Debian: nghttp2-client, util-linux)", file=sys.stderr)
            return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("needs two CPUs (0 for the collector, 1 for h2load)", file=sys.stderr)
        return 2

    nproc = len(os.sched_getaffinity(0))
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    # A snapshot of the binary: the one at --otlpd may be replaced while this runs.
    snapshot_dir = tempfile.mkdtemp(prefix="otlpd-bench-bin-")
    args.otlpd_copy = os.path.join(snapshot_dir, "otlpd")
    shutil.copy2(args.otlpd, args.otlpd_copy)  # copy2 keeps the mtime, reported as the build time
    machine = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": nproc, "cpu": cpu_model, "kernel": platform.release(),
        "otlpd": run_text([args.otlpd_copy, "version"]),
        "otlpd_id": binary_id(args.otlpd_copy),
        "rotel": run_text([args.rotel, "--version"]),
        "h2load": run_text(["h2load", "--version"]),
        "loadavg": loadavg(),
    }
    # This script (and the checking client) shares CPU 1 with h2load, never CPU 0.
    os.sched_setaffinity(0, {int(LOAD_CPU)})

    counts = make_payloads()
    log(f"{machine['otlpd']} / {machine['rotel']}; payload items: {counts}")
    all_runs, results = [], {}
    started = time.monotonic()
    try:
        for scn in scenarios:
            log(f"== {scn.number}. {scn.title} (h2load -c {scn.clients} -m {scn.streams})")
            # A scenario with processors also runs otlpd without them, in turn with
            # the others, so its cost is measured against a baseline taken in the
            # same minutes (this VM's speed drifts between scenarios).
            names = ("otlpd", "rotel") if scn.baseline_processors is None else \
                ("otlpd", baseline_name(scn.baseline_processors), "rotel")
            by_collector = {name: [] for name in names}
            for pass_no in range(1, args.passes + 1):
                order = names
                if scn.feed_clients and pass_no % 2 == 0:
                    # With and without the feed swap places every other pass (F B R, B F R): a steady drift
                    # of the VM's speed then weighs on both alike, which a 5 % margin needs.
                    order = (names[1], names[0], *names[2:])
                for name in order:
                    file_dir = SHM_DIR if (name == "otlpd" and scn.otlpd_exporter == "file") else None
                    run = one_run(scn, name, pass_no, args, counts, file_dir)
                    by_collector[name].append(run)
                    all_runs.append(run)
                    log(f"   {name:5} pass {pass_no}: {fmt(run.rate)} {scn.unit}/s, {run.cores:.2f} cores, "
                        + ("" if run.mean_batch != run.mean_batch else f"mean batch {run.mean_batch:.0f}, ") +
                        f"{run.cpu_per_million:.3f} CPU-s/M, RSS {run.rss_mib:.1f} MiB, "
                        f"p50/p99 {run.p50_ms:.2f}/{run.p99_ms:.2f} ms, h2load {run.loadgen_cores:.2f} cores, "
                        f"checks {run.checks_ok}/{run.checks_total}"
                        + (f", feed events {min(run.feed_events)}–{max(run.feed_events)} per client" if run.feed_events else "")
                        + (" FAILED: " + "; ".join(run.problems)
                                                                         if run.problems else ""))
            results[scn.key] = {name: summarize(runs) for name, runs in by_collector.items()}
            if scn.otlpd_exporter == "file" and not args.no_disk:
                run = one_run(scn, "otlpd", 1, args, counts, DISK_DIR)
                all_runs.append(run)
                results[scn.key]["otlpd (disk)"] = summarize([run])
                log(f"   otlpd, file on disk: {fmt(run.rate)} {scn.unit}/s, {run.cores:.2f} cores, "
                    f"{run.cpu_per_million:.3f} CPU-s/M" + (" FAILED: " + "; ".join(run.problems)
                                                            if run.problems else ""))
            if scn.queue_dir:
                # fsyncs are counted in a pass of their own: strace stops otlpd at every system call,
                # which would drag the measured passes down.
                if shutil.which("strace"):
                    run = one_run(scn, "otlpd", 1, args, counts, trace_syncs=True)
                    all_runs.append(run)
                    results[scn.key]["otlpd (strace)"] = summarize([run])
                    log(f"   otlpd under strace: {fmt(run.syncs_per_second, 0)} fsyncs/s, "
                        f"{fmt(run.answered_rate)} {scn.unit}/s answered" + (" FAILED: " + "; ".join(run.problems)
                                                                             if run.problems else ""))
                else:
                    # otlpd counts its syncs (PersistentQueue.syncCount) but exports no metric of them.
                    results[scn.key]["otlpd (strace)"] = {
                        "unavailable": "strace is not installed and otlpd's /metrics has no fsync counter"}
    finally:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
        shutil.rmtree(SHM_DIR, ignore_errors=True)
        shutil.rmtree(DISK_DIR, ignore_errors=True)
        shutil.rmtree(QUEUE_DIR, ignore_errors=True)
    log(f"took {time.monotonic() - started:.0f} s")
    machine["loadavg_after"] = loadavg()

    targets = check_targets(results)
    text = report(args, machine, scenarios, all_runs, results, targets)
    print(text)
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, f"results-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.md")
    with open(path, "w") as f:
        f.write(text)
    failed = [r for r in all_runs if r.problems]
    if failed:
        print(f"\n!!! {len(failed)} run(s) had failures: see FAILURES above. Results in {path}", file=sys.stderr)
        return 1
    print(f"\nwritten to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
