#!/usr/bin/env python3
"""The soak: otlpd over time, with everything that happens to a collector in
production happening to it, and every acknowledged record counted by id.

    soak.py --otlpd BINARY --minutes M --out DIR

Six services send traces, metrics and logs through the OpenTelemetry Python
SDK's own OTLP exporters (gRPC and HTTP, each to its own port and to the
other's), at a few hundred records a second in all, to a main otlpd whose
pipeline is otlp -> [attributes, batch] -> [file, otlp_grpc with a persistent
queue (file_storage, a small max_size)] into an upstream otlpd (-> file).
Meanwhile the upstream is stopped (SIGTERM or SIGKILL) and started again every
few minutes, the main config is changed and reloaded (SIGHUP) every minute,
the main otlpd is killed with `kill -9` once in the middle and started again
on the same queue, and once the upstream stays away until the queue's
max_size is reached (clients are refused, RESOURCE_EXHAUSTED / 429, and
retry) and a while longer.

At the end: every acknowledged record is in the main file and at the upstream
(duplicates counted, losses none), RSS after warm-up grew less than 10 %, the
open fds are back to their baseline, and /metrics and /services count what
the soak had acknowledged. Writes DIR/soak-summary.json, DIR/soak.md and
DIR/soak.png (RSS, fds and queue bytes over time, the events marked); exits
0 only if every check holds, else 1 with the failing checks listed.

The 3-minute version runs in `make test` (Tests/IntegrationTests/test_soak.py);
`make soak MINUTES=30` runs the long one.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import shutil
import signal
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "IntegrationTests"))

from otlpd_harness import Otlpd, to_yaml, wait_until  # noqa: E402
from upstreams import free_port  # noqa: E402

from opentelemetry._logs import SeverityNumber  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

SIGNALS = ("traces", "metrics", "logs")
ITEM_WORDS = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}
SERVICE_KEYS = {"traces": "spans", "metrics": "metricPoints", "logs": "logRecords"}

# The services: (service.name, the SDK exporter's protocol, the port it is pointed at).
# Two of them are pointed at the other protocol's port, which otlpd must serve as well.
SERVICES = [
    ("checkout", "grpc", "grpc"),
    ("cart", "http", "http"),
    ("payments", "grpc", "grpc"),
    ("catalog", "http", "http"),
    ("inventory", "grpc", "http"),   # gRPC to the OTLP/HTTP port
    ("shipping", "http", "grpc"),    # OTLP/HTTP to the OTLP/gRPC port
]
# Each (service, signal) exports every EXPORT_INTERVAL seconds this many records:
# 6 x (10 + 5 + 8) / 0.5 s = 276 records/s in all.
EXPORT_INTERVAL = 0.5
PER_EXPORT = {"traces": 10, "metrics": 5, "logs": 8}
# A batch whose export failed is exported again (same ids) at the next tick, up to this many times in all.
MAX_ATTEMPTS = 3

ROUTES = [("GET /api/cart", {"http.request.method": "GET", "http.route": "/api/cart", "http.response.status_code": 200}),
          ("POST /api/orders", {"http.request.method": "POST", "http.route": "/api/orders", "http.response.status_code": 201}),
          ("SELECT shop.orders", {"db.system": "postgresql", "db.operation.name": "SELECT"}),
          ("redis GET", {"db.system": "redis", "server.address": "cache.internal"})]

SPAN_ID = re.compile(rb'"spanId":"([0-9a-f]{16})"')
SOAK_ID = re.compile(rb'"key":"soak\.id","value":\{"stringValue":"([^"]+)"\}')
CONFIG_REV = re.compile(rb'"key":"soak\.config","value":\{"stringValue":"([^"]+)"\}')
METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$')


# --------------------------------------------------------------------------
# The plan: when what happens, from the soak's length


@dataclass
class Plan:
    seconds: float
    warmup: float            # RSS/fd baselines are taken after this, from each process's own start
    baseline: float          # ... over this long
    end_window: float        # the end figures: the last this-many seconds before the senders stop
    reload_times: list[float]
    upstream_windows: list[tuple[float, float, str]]   # (down at, up at, signal used)
    kill_at: float
    quota_at: float
    quota_max_down: float    # the quota episode's upstream stays down until the queue is full, + quota_hold, at most this
    quota_hold: float
    queue_max_size: str

    @staticmethod
    def make(minutes: float, queue_max_size: str | None) -> "Plan":
        seconds = minutes * 60
        short = seconds < 600
        warmup, baseline = (30.0, 30.0) if short else (60.0, 60.0)
        reload_every = 30.0 if short else 60.0
        period, down = (40.0, 12.0) if short else (240.0, 30.0)
        reloads = [t for t in frange(reload_every / 2, seconds - 10, reload_every)]
        slots = [t for t in frange(warmup + 10, seconds - down - 25, period)]
        # kill -9 in the upstream-down window nearest the middle, half-way into it: the queue holds data then.
        middle = seconds / 2
        kill_slot = min(slots, key=lambda s: abs(s + down / 2 - middle))
        kill_at = kill_slot + down / 2
        # The quota episode: the first slot after the restarted process's warm-up and baseline.
        later = [s for s in slots if s >= kill_at + warmup + (0 if short else baseline)]
        quota_at = later[0] if later else slots[-1]
        windows = []
        kinds = [signal.SIGTERM, signal.SIGKILL]
        for index, start in enumerate(slots):
            if quota_at - period < start < quota_at or (start > quota_at and start < quota_at + period):
                continue          # leave room around the quota episode
            if start == quota_at:
                continue
            windows.append((start, start + down, kinds[index % 2].name))
        # Reloads are not sent within 3 s of the kill -9 (the restart is its own event).
        reloads = [t for t in reloads if abs(t - kill_at) > 3]
        quota_max_down = 60.0 if short else 240.0
        quota_hold = 8.0 if short else 20.0
        return Plan(seconds, warmup, baseline, 30.0, reloads, windows, kill_at, quota_at, quota_max_down, quota_hold,
                    queue_max_size or ("2MiB" if short else "5MiB"))


def frange(start: float, stop: float, step: float):
    t = start
    while t < stop:
        yield t
        t += step


# --------------------------------------------------------------------------
# Small helpers


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for line in http_get(url).decode().splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        if not match:
            continue
        labels = frozenset(re.findall(r'([a-zA-Z_]+)="([^"]*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def metric_sum(samples: dict, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and wanted <= set(l))


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fd_targets(pid: int) -> list[str] | None:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    out = []
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        out.append(re.sub(r"\[\d+\]", "", target))
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# The senders: the SDK's exporters, called with SDK-made data


def sdk_exporter(signal_name: str, protocol: str, port: int):
    """The SDK's own OTLP exporter for the signal, default settings apart from the endpoint."""
    if protocol == "grpc":
        endpoint = f"http://127.0.0.1:{port}"
        if signal_name == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as cls
        elif signal_name == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as cls
        else:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as cls
    else:
        endpoint = f"http://127.0.0.1:{port}/v1/{signal_name}"
        if signal_name == "traces":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as cls
        elif signal_name == "metrics":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as cls
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as cls
    return cls(endpoint=endpoint)


class SpanMaker:
    """Spans made by a TracerProvider (a root and its children), caught in memory as ReadableSpans."""

    def __init__(self, resource: Resource, name: str):
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("soak.web", "1.0.0")

    def make(self, count: int, sequence: int):
        route, attributes = ROUTES[sequence % len(ROUTES)]
        with self.tracer.start_as_current_span(route, kind=SpanKind.SERVER, attributes=attributes):
            for i in range(count - 1):
                child, child_attributes = ROUTES[(sequence + i + 1) % len(ROUTES)]
                with self.tracer.start_as_current_span(child, kind=SpanKind.CLIENT, attributes=child_attributes) as span:
                    span.set_attribute("request.sequence", sequence)
        spans = self.memory.get_finished_spans()
        self.memory.clear()
        return spans, [format(s.context.span_id, "016x") for s in spans]


class LogMaker:
    """Log records emitted through a LoggerProvider, caught in memory as ReadableLogRecords."""

    def __init__(self, resource: Resource, name: str):
        self.name = name
        self.memory = InMemoryLogRecordExporter()
        self.provider = LoggerProvider(resource=resource)
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.memory))
        self.logger = self.provider.get_logger("soak.web", "1.0.0")

    def make(self, count: int, sequence: int):
        ids = []
        for i in range(count):
            soak_id = f"{self.name}-l-{sequence}-{i}"
            ids.append(soak_id)
            self.logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO",
                             body=f"order {sequence}/{i} placed", attributes={"soak.id": soak_id, "order.items": i + 1})
        records = self.memory.get_finished_logs()
        self.memory.clear()
        return records, ids


class MetricMaker:
    """Data points from a MeterProvider (a counter and a histogram, delta temporality, so each
    collection holds only the points recorded since the last), each with its own soak.id."""

    def __init__(self, resource: Resource, name: str):
        self.name = name
        self.reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA,
                                                                  Histogram: AggregationTemporality.DELTA})
        self.provider = MeterProvider(resource=resource, metric_readers=[self.reader])
        meter = self.provider.get_meter("soak.web", "1.0.0")
        self.counter = meter.create_counter("soak.orders", unit="1", description="orders placed")
        self.histogram = meter.create_histogram("soak.latency", unit="ms", description="request latency")

    def make(self, count: int, sequence: int):
        for i in range(count):
            soak_id = f"{self.name}-m-{sequence}-{i}"
            if i % 2:
                self.histogram.record(5.0 + (sequence + i) % 40, {"soak.id": soak_id, "http.route": "/api/cart"})
            else:
                self.counter.add(1 + i, {"soak.id": soak_id, "http.route": "/api/orders"})
        data = self.reader.get_metrics_data()
        ids = [str(point.attributes["soak.id"]) for rm in data.resource_metrics for sm in rm.scope_metrics
               for metric in sm.metrics for point in metric.data.data_points]
        return data, ids


MAKERS = {"traces": SpanMaker, "metrics": MetricMaker, "logs": LogMaker}


class Sender(threading.Thread):
    """One service's exporter for one signal: every EXPORT_INTERVAL a new batch (or the last
    one again, with the same ids, after a FAILURE), export() called directly."""

    def __init__(self, soak: "Soak", service: str, signal_name: str, protocol: str, port_kind: str):
        super().__init__(name=f"{service}-{signal_name}", daemon=True)
        self.soak, self.service, self.signal, self.protocol, self.port_kind = soak, service, signal_name, protocol, port_kind
        self.ready = threading.Event()
        self.done_sending = threading.Event()
        self.error: str | None = None

    def run(self):
        try:
            self._run()
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            import traceback
            self.error = f"{self.name}: {error!r}\n{traceback.format_exc()}"
            self.ready.set()
            self.done_sending.set()

    def _run(self):
        soak = self.soak
        port = soak.grpc_port if self.port_kind == "grpc" else soak.http_port
        exporter = sdk_exporter(self.signal, self.protocol, port)
        resource = Resource.create({"service.name": self.service, "service.version": "2.3.1",
                                    "service.instance.id": f"{self.service}-1", "deployment.environment.name": "soak"})
        maker = MAKERS[self.signal](resource, self.service)
        count = PER_EXPORT[self.signal]
        self.ready.set()
        soak.go.wait()
        sequence = 0
        pending = None
        attempts = 0
        next_tick = time.monotonic()
        while not soak.stop_sending.is_set():
            wait = next_tick - time.monotonic()
            if wait > 0 and soak.stop_sending.wait(wait):
                break
            # Fall behind by at most one tick: after a long export, no burst to catch up.
            next_tick = max(next_tick + EXPORT_INTERVAL, time.monotonic())
            if pending is None:
                pending = maker.make(count, sequence)
                sequence += 1
                attempts = 0
            data, ids = pending
            generation = soak.generation
            started = time.monotonic()
            result = exporter.export(data)
            ended = time.monotonic()
            ok = getattr(result, "name", str(result)) == "SUCCESS"
            attempts += 1
            soak.record(self, ids, ok, started, ended, generation, attempts)
            if ok:
                pending = None
            elif attempts >= MAX_ATTEMPTS:
                soak.record_dropped(self, ids)
                pending = None
        self.done_sending.set()
        soak.close_senders.wait()
        exporter.shutdown()


class SdkLog(logging.Handler):
    """What the SDK's exporters log (transient errors and retries, failures): counted, and kept in a file."""

    def __init__(self, path: Path):
        super().__init__(logging.DEBUG)
        self.file = open(path, "a")
        self.counts = collections.Counter()
        self.lock_counts = threading.Lock()

    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001
            text = str(record.msg)
        kind = "other"
        for word in ("RESOURCE_EXHAUSTED", "Too Many Requests", "UNAVAILABLE", "Service Unavailable", "DEADLINE_EXCEEDED", "Connection", "timeout, max retries"):
            if word in text:
                kind = word
                break
        lead = "transient" if "Transient error" in text else ("failed" if record.levelno >= logging.ERROR else "other")
        with self.lock_counts:
            self.counts[f"{lead} {kind}"] += 1
            self.file.write(f"{time.strftime('%H:%M:%S')} {record.levelname} {record.name}: {text}\n")
            self.file.flush()


# --------------------------------------------------------------------------
# The soak


class Soak:
    def __init__(self, binary: str, plan: Plan, out: Path):
        self.plan = plan
        self.out = out
        self.binary = binary
        self.main_dir = out / "main"
        self.upstream_dir = out / "upstream"
        self.grpc_port, self.http_port, self.telemetry_port, self.upstream_port = (free_port() for _ in range(4))
        self.config_path = self.main_dir / "otlpd.yaml"
        self.revision = 0
        self.go = threading.Event()
        self.stop_sending = threading.Event()
        self.close_senders = threading.Event()
        self.lock = threading.Lock()
        self.generation = 1            # the main process the senders talk to (None while it is down)
        self.t0 = time.monotonic()
        self.events: list[dict] = []
        self.samples: list[dict] = []
        self.problems: list[str] = []
        # What the senders were told.
        self.acked: dict[str, set] = {s: set() for s in SIGNALS}
        self.acked_count = collections.Counter()       # (signal) -> records acknowledged (with repeats of a resent batch)
        self.attempted = collections.Counter()          # (signal) -> records in export() calls
        self.failed_exports = collections.Counter()     # (signal, protocol) -> export() calls that returned FAILURE
        self.failed_records = collections.Counter()
        self.dropped = collections.Counter()            # (signal) -> records given up after MAX_ATTEMPTS
        self.resent_ok = collections.Counter()          # (signal) -> records acknowledged on a later attempt
        self.by_generation = collections.Counter()      # (generation, signal, service, protocol) -> records acknowledged
        self.straddling = collections.Counter()         # acknowledged by an export that began before the kill and ended after the restart
        self.failures_in: list[tuple[float, str, int]] = []  # (time, signal, records) of each FAILURE
        self.export_seconds = collections.defaultdict(list)
        self.main: Otlpd | None = None
        self.upstream: Otlpd | None = None
        self.main_pids: list[int] = []
        self.main_starts: list[float] = []
        self.main_lock = threading.Lock()      # a SIGHUP and the kill -9 never overlap
        self.kill_time: float | None = None
        self.restart_ready: float | None = None
        self.quota: dict = {}
        self.reloads_done = 0
        self.upstream_restarts = 0
        self.last_services: dict | None = None

    # -- time and events

    def now(self) -> float:
        return time.monotonic() - self.t0

    def event(self, kind: str, **details):
        entry = {"t": round(self.now(), 2), "kind": kind, **details}
        self.events.append(entry)
        print(f"[{entry['t']:7.1f}s] {kind} {' '.join(f'{k}={v}' for k, v in details.items())}", flush=True)

    def problem(self, text: str):
        self.problems.append(text)
        print(f"PROBLEM: {text}", flush=True)

    # -- configs

    def main_config(self) -> dict:
        rev = f"rev-{self.revision}"
        return {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                                                 "http": {"endpoint": f"127.0.0.1:{self.http_port}"}}}},
            "processors": {
                "attributes/soak": {"actions": [{"key": "soak.config", "value": rev, "action": "insert"}]},
                # A changed value at every reload: the batch is built anew each time.
                "batch": {"timeout": f"{200 + 10 * (self.revision % 5)}ms", "send_batch_size": 8192 - self.revision},
            },
            "exporters": {
                "file": {"path": str(self.main_dir / "out.jsonl")},
                "otlp_grpc": {"endpoint": f"127.0.0.1:{self.upstream_port}", "tls": {"insecure": True},
                              "sending_queue": {"storage": "file_storage"},
                              "retry_on_failure": {"enabled": True, "initial_interval": "500ms", "max_interval": "2s"}},
            },
            "extensions": {"file_storage": {"directory": str(self.main_dir / "queue"), "max_size": self.plan.queue_max_size}},
            "service": {
                "extensions": ["file_storage"],
                "pipelines": {s: {"receivers": ["otlp"], "processors": ["attributes/soak", "batch"],
                                  "exporters": ["file", "otlp_grpc"]} for s in SIGNALS},
                "telemetry": {"metrics": {"address": f"127.0.0.1:{self.telemetry_port}"}},
            },
        }

    def upstream_config(self) -> dict:
        return {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.upstream_port}"}}}},
            "exporters": {"file": {"path": str(self.upstream_dir / "out.jsonl")}},
            "service": {"pipelines": {s: {"receivers": ["otlp"], "exporters": ["file"]} for s in SIGNALS},
                        "telemetry": {"metrics": {"address": "127.0.0.1:0"}}},
        }

    def write_main_config(self):
        self.config_path.write_text(to_yaml(self.main_config()) + "\n")

    # -- processes

    def start_main(self) -> Otlpd:
        daemon = Otlpd(self.binary, self.main_dir, ["--config", str(self.config_path)], name="main")
        started = self.now()
        daemon.start()
        self.main_pids.append(daemon.proc.pid)
        self.main_starts.append(max(started, 0.0))
        return daemon

    def start_upstream(self):
        if self.upstream is None:
            self.upstream = Otlpd(self.binary, self.upstream_dir, ["--config", str(self.upstream_dir / "otlpd.yaml")],
                                  name="upstream")
        self.upstream.start()

    def services(self) -> dict | None:
        try:
            data = json.loads(http_get(f"http://127.0.0.1:{self.telemetry_port}/services", timeout=2))
            self.last_services = data
            return data
        except Exception:  # noqa: BLE001 - the main process may be down (kill -9) or busy
            return None

    # -- the senders' bookkeeping

    def record(self, sender: Sender, ids: list[str], ok: bool, started: float, ended: float, generation, attempts: int):
        signal_name = sender.signal
        with self.lock:
            self.attempted[signal_name] += len(ids)
            self.export_seconds[signal_name].append(ended - started)
            if ok:
                self.acked[signal_name].update(ids)
                self.acked_count[signal_name] += len(ids)
                if attempts > 1:
                    self.resent_ok[signal_name] += len(ids)
                now_generation = self.generation
                if now_generation is None:
                    now_generation = "during-restart"
                if generation != now_generation and now_generation == 2:
                    self.straddling[signal_name] += len(ids)
                self.by_generation[(now_generation, signal_name, sender.service, sender.protocol)] += len(ids)
            else:
                self.failed_exports[(signal_name, sender.protocol)] += 1
                self.failed_records[signal_name] += len(ids)
                self.failures_in.append((self.now(), signal_name, len(ids)))

    def record_dropped(self, sender: Sender, ids: list[str]):
        with self.lock:
            self.dropped[sender.signal] += len(ids)

    # -- sampling

    def sampler(self, stop: threading.Event):
        while not stop.wait(1.0):
            entry = {"t": round(self.now(), 2), "generation": self.generation}
            main = self.main
            if main is not None and main.proc is not None and main.proc.poll() is None:
                pid = main.proc.pid
                entry["pid"] = pid
                entry["rss"] = rss_bytes(pid)
                fds = fd_targets(pid)
                entry["fds"] = len(fds) if fds is not None else None
                services = self.services()
                if services:
                    exporters = services.get("exporters") or []
                    entry["queue_bytes"] = sum((e.get("queue") or {}).get("bytes", 0) for e in exporters)
                    entry["queue_requests"] = sum((e.get("queue") or {}).get("requests", 0) for e in exporters)
                    full = [e["queue"]["full"] for e in exporters if (e.get("queue") or {}).get("full")]
                    entry["queue_full"] = full[0] if full else None
            upstream = self.upstream
            if upstream is not None and upstream.running:
                entry["upstream_rss"] = rss_bytes(upstream.proc.pid)
            self.samples.append(entry)

    # -- the events

    def reloads(self):
        for at in self.plan.reload_times:
            while self.now() < at:
                time.sleep(min(0.2, max(0.0, at - self.now())))
            with self.main_lock:
                self.reload()

    def reload(self):
        self.revision += 1
        self.write_main_config()
        before = len(self.main.logs_matching("reloaded"))
        self.main.send_signal(signal.SIGHUP)
        try:
            wait_until(lambda: len(self.main.logs_matching("reloaded")) > before, 15, "the reload's log line", interval=0.1)
            self.reloads_done += 1
            self.event("SIGHUP", revision=f"rev-{self.revision}", result="reloaded")
        except AssertionError:
            tail = "\n".join(self.main.stderr_since_start().splitlines()[-5:])
            self.event("SIGHUP", revision=f"rev-{self.revision}", result="NOT reloaded")
            self.problem(f"SIGHUP rev-{self.revision}: no 'reloaded' log line within 15 s; log tail:\n{tail}")

    def upstream_down(self, how: str):
        sig = getattr(signal, how)
        code = self.upstream.stop(sig)
        self.event("upstream stop", signal=how, exit=code)
        if how == "SIGTERM" and code != 0:
            self.problem(f"the upstream exited {code} on SIGTERM")

    def upstream_up(self):
        self.start_upstream()
        self.upstream_restarts += 1
        self.event("upstream start", pid=self.upstream.proc.pid)

    def kill_main(self):
        with self.main_lock:
            self._kill_main()

    def _kill_main(self):
        # Process 1's own counts just before it dies (not checked: requests are in flight).
        try:
            self.metrics_before_kill = scrape(f"http://127.0.0.1:{self.telemetry_port}/metrics")
        except Exception:  # noqa: BLE001
            self.metrics_before_kill = {}
        old = self.main
        with self.lock:
            self.generation = None
        self.kill_time = self.now()
        old.proc.send_signal(signal.SIGKILL)
        old.proc.wait()
        old.ensure_stopped()
        self.event("kill -9", pid=old.proc.pid)
        self.main = self.start_main()
        with self.lock:
            self.generation = 2
        self.restart_ready = self.now()
        recovered = self.main.logs_matching("holds data from before the start")
        self.event("main restarted", pid=self.main.proc.pid, after=f"{self.restart_ready - self.kill_time:.2f}s",
                   queue_recovered=recovered[0].fields.get("requests") if recovered else "nothing")

    def quota_episode(self):
        plan = self.plan
        self.upstream_down("SIGTERM")
        down_at = self.now()
        self.event("quota episode: upstream down until the queue is full")
        metrics_before = self._refused_now()
        started = time.monotonic()
        full_at = None
        while time.monotonic() - started < plan.quota_max_down:
            services = self.services()
            full = [e["queue"]["full"] for e in (services or {}).get("exporters", []) if (e.get("queue") or {}).get("full")]
            if full:
                full_at = self.now()
                self.quota["reason"] = full[0]
                break
            time.sleep(0.25)
        if full_at is None:
            self.problem(f"the quota episode did not happen: the queue was not full after {plan.quota_max_down:.0f} s "
                         f"of upstream down (max_size {plan.queue_max_size})")
            self.quota["happened"] = False
        else:
            self.quota["happened"] = True
            self.quota["full_at"] = full_at
            self.quota["full_after_down"] = round(full_at - down_at, 2)
            self.event("queue full", reason=self.quota["reason"])
            time.sleep(plan.quota_hold)
        self.quota["refused_while_down"] = {s: self._refused_now().get(s, 0) - metrics_before.get(s, 0) for s in SIGNALS}
        self.upstream_up()
        up_at = self.now()
        # The queue drains; wait until it takes requests again.
        cleared_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            services = self.services()
            if services is not None and not any((e.get("queue") or {}).get("full") for e in services.get("exporters", [])):
                cleared_at = self.now()
                break
            time.sleep(0.25)
        if self.quota.get("happened"):
            if cleared_at is None:
                self.problem("the queue was still full 60 s after the upstream came back")
            else:
                self.quota["cleared_at"] = cleared_at
                self.quota["refusing_seconds"] = round(cleared_at - self.quota["full_at"], 2)
                self.event("queue takes requests again", refused_for=f"{self.quota['refusing_seconds']}s")
        self.quota["refused_total"] = {s: self._refused_now().get(s, 0) - metrics_before.get(s, 0) for s in SIGNALS}
        self.quota["down_at"] = down_at
        self.quota["up_at"] = up_at
        self.quota["upstream_down_seconds"] = round(up_at - down_at, 2)
        self.quota["window"] = [down_at, self.now()]

    def probe(self):
        """One span through the pipeline before the senders start, so the idle fd count
        includes the connection to the upstream; its exporter is closed again."""
        exporter = sdk_exporter("traces", "grpc", self.grpc_port)
        spans, ids = SpanMaker(Resource.create({"service.name": "soak-probe"}), "soak-probe").make(1, 0)
        ok = exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()
        if not ok:
            self.problem("the probe span before the start was not acknowledged")
            return
        with self.lock:
            self.acked["traces"].update(ids)
            self.acked_count["traces"] += len(ids)
            self.attempted["traces"] += len(ids)
            self.by_generation[(1, "traces", "soak-probe", "grpc")] += len(ids)

    def _refused_now(self) -> dict:
        try:
            samples = scrape(f"http://127.0.0.1:{self.telemetry_port}/metrics")
        except Exception:  # noqa: BLE001
            return {}
        return {s: metric_sum(samples, f"otelcol_receiver_refused_{ITEM_WORDS[s]}_total") for s in SIGNALS}

    # -- the run

    def run(self) -> dict:
        plan = self.plan
        for d in (self.main_dir, self.upstream_dir):
            d.mkdir(parents=True, exist_ok=True)
        (self.upstream_dir / "otlpd.yaml").write_text(to_yaml(self.upstream_config()) + "\n")
        self.write_main_config()
        sdk_log = SdkLog(self.out / "sdk.log")
        otel_logger = logging.getLogger("opentelemetry")
        otel_logger.addHandler(sdk_log)
        otel_logger.setLevel(logging.WARNING)
        otel_logger.propagate = False

        self.start_upstream()
        self.main = self.start_main()
        self.t0 = time.monotonic()
        self.main_starts[0] = 0.0
        self.event("started", main_pid=self.main.proc.pid, upstream_pid=self.upstream.proc.pid,
                   grpc=self.grpc_port, http=self.http_port, telemetry=self.telemetry_port, upstream=self.upstream_port)
        self.probe()
        time.sleep(2.0)
        idle_fds = fd_targets(self.main.proc.pid)
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=self.sampler, args=(stop_sampling,), daemon=True)
        sampler.start()

        senders = [Sender(self, service, s, protocol, port_kind) for service, protocol, port_kind in SERVICES for s in SIGNALS]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.ready.wait(60)
        self.go.set()
        self.event("senders started", senders=len(senders),
                   rate=f"{sum(PER_EXPORT.values()) * len(SERVICES) / EXPORT_INTERVAL:.0f} records/s")

        # The timeline: reloads on their own thread (on time, whatever else is under way, the
        # quota episode included), the rest in order here.
        reloader = threading.Thread(target=self.reloads, daemon=True)
        reloader.start()
        actions = []
        for down, up, how in plan.upstream_windows:
            actions += [(down, "upstream_down", how), (up, "upstream_up", None)]
        actions += [(plan.kill_at, "kill", None), (plan.quota_at, "quota", None)]
        actions.sort(key=lambda a: a[0])
        for at, what, arg in actions:
            while self.now() < at:
                time.sleep(min(0.2, max(0.0, at - self.now())))
            try:
                if what == "upstream_down":
                    if self.upstream.running:
                        self.upstream_down(arg)
                elif what == "upstream_up":
                    if not self.upstream.running:
                        self.upstream_up()
                elif what == "kill":
                    self.kill_main()
                elif what == "quota":
                    self.quota_episode()
            except Exception as error:  # noqa: BLE001 - a failed step is a finding; the soak goes on to its checks
                self.problem(f"{what} at {at:.0f} s: {error}")
        while self.now() < plan.seconds:
            time.sleep(0.2)
        reloader.join(30)

        # The end: the senders stop (their connections stay open for the fd figure).
        self.stop_sending.set()
        for sender in senders:
            sender.done_sending.wait(60)
        self.event("senders stopped")
        connected_fds = fd_targets(self.main.proc.pid)
        if not self.upstream.running:
            self.upstream_up()
        drained_at = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            services = self.services()
            if services and all((e.get("queue") or {}).get("requests", 1) == 0 for e in services.get("exporters", [])):
                drained_at = self.now()
                break
            time.sleep(0.5)
        if drained_at is None:
            self.problem(f"the queue did not drain within 120 s of the senders' stop: {self.last_services and self.last_services.get('exporters')}")
        else:
            self.event("queue drained")
        final_metrics = scrape(f"http://127.0.0.1:{self.telemetry_port}/metrics")
        final_services = self.services()
        # The senders close their connections: the fds go back to the idle count.
        self.close_senders.set()
        for sender in senders:
            sender.join(30)
        time.sleep(3.0)
        closed_fds = fd_targets(self.main.proc.pid)
        stop_sampling.set()
        sampler.join(5)
        main_code = upstream_code = None
        try:
            main_code = self.main.stop(signal.SIGTERM, timeout=40)
        except AssertionError as error:
            self.problem(f"the main otlpd at the end: {str(error)[:2000]}")
        try:
            upstream_code = self.upstream.stop(signal.SIGTERM, timeout=40)
        except AssertionError as error:
            self.problem(f"the upstream otlpd at the end: {str(error)[:2000]}")
        self.event("stopped", main_exit=main_code, upstream_exit=upstream_code)
        if main_code not in (0, None):
            self.problem(f"the main otlpd exited {main_code} on SIGTERM")
        if upstream_code not in (0, None):
            self.problem(f"the upstream otlpd exited {upstream_code} on SIGTERM")
        for sender in senders:
            if sender.error:
                self.problem(f"a sender broke: {sender.error}")
        otel_logger.removeHandler(sdk_log)
        return self.verify(idle_fds, connected_fds, closed_fds, final_metrics, final_services, sdk_log)

    # -- the checks

    def count_ids(self, directory: Path) -> tuple[dict[str, collections.Counter], dict[str, collections.Counter], list[str]]:
        counts = {}
        revisions = {}
        files = []
        for s in SIGNALS:
            counter = collections.Counter()
            revs = collections.Counter()
            pattern = SPAN_ID if s == "traces" else SOAK_ID
            for path in sorted(directory.glob(f"out.{s}*.jsonl")):
                files.append(path.name)
                with open(path, "rb") as f:
                    for line in f:
                        counter.update(m.decode() for m in pattern.findall(line))
                        revs.update(m.decode() for m in CONFIG_REV.findall(line))
            counts[s] = counter
            revisions[s] = revs
        return counts, revisions, files

    def verify(self, idle_fds, connected_fds, closed_fds, final_metrics, final_services, sdk_log) -> dict:
        plan = self.plan
        checks: list[tuple[str, bool, str]] = []

        def check(name: str, ok: bool, detail: str):
            checks.append((name, bool(ok), detail))

        # 1. Every acknowledged record in the main file and at the upstream, by id.
        main_counts, main_revs, main_files = self.count_ids(self.main_dir)
        upstream_counts, upstream_revs, upstream_files = self.count_ids(self.upstream_dir)
        delivery = {}
        for s in SIGNALS:
            acked = self.acked[s]
            row = {"attempted": self.attempted[s], "acknowledged": len(acked), "acknowledged_with_repeats": self.acked_count[s],
                   "failed_records": self.failed_records[s], "dropped_after_retries": self.dropped[s],
                   "acknowledged_on_a_later_attempt": self.resent_ok[s]}
            for where, counts in (("file", main_counts[s]), ("upstream", upstream_counts[s])):
                present = set(counts)
                lost = acked - present
                row[where] = {"records": sum(counts.values()), "distinct": len(present),
                              "duplicates": sum(n - 1 for n in counts.values() if n > 1),
                              "lost": len(lost), "lost_examples": sorted(lost)[:10],
                              "unacknowledged_present": len(present - acked)}
                check(f"{s}: every acknowledged record in the {where}", not lost,
                      f"{len(acked)} acknowledged, {len(lost)} missing (e.g. {sorted(lost)[:5]}), "
                      f"{row[where]['duplicates']} duplicates, {row[where]['unacknowledged_present']} unacknowledged present")
            delivery[s] = row
            check(f"{s}: records acknowledged", len(acked) > 0, f"{len(acked)}")

        revisions_seen = sorted(set().union(*(set(r) for r in main_revs.values())), key=lambda r: int(r.split("-")[1]))
        expected_revisions = [f"rev-{i}" for i in range(self.revision + 1)]
        missing_revisions = [r for r in expected_revisions if r not in revisions_seen]
        check("every config revision's attribute value reached the file", not missing_revisions,
              f"seen {len(revisions_seen)} of {len(expected_revisions)}; missing {missing_revisions}")

        # 2. Reloads, upstream restarts, kill -9, the quota episode all happened.
        check("reloads", self.reloads_done == len(plan.reload_times), f"{self.reloads_done} of {len(plan.reload_times)} logged 'reloaded'")
        check("upstream restarts", self.upstream_restarts >= len(plan.upstream_windows) + 1,
              f"{self.upstream_restarts} (planned windows {len(plan.upstream_windows)} + the quota episode)")
        check("kill -9 and restart", self.restart_ready is not None, f"restart ready {self.restart_ready}")
        quota_refused = sum(self.quota.get("refused_total", {}).values())
        check("quota episode: the queue reached max_size and clients were refused",
              self.quota.get("happened") and quota_refused > 0 and "cleared_at" in self.quota,
              f"{self.quota}")

        # 3. RSS and fds of each main process.
        rss = {}
        for generation, pid in enumerate(self.main_pids, 1):
            own = [e for e in self.samples if e.get("pid") == pid and e.get("rss")]
            if not own:
                continue
            start = self.main_starts[generation - 1]
            end = own[-1]["t"]
            base = [e for e in own if start + plan.warmup <= e["t"] < start + plan.warmup + plan.baseline]
            tail = [e for e in own if e["t"] >= end - plan.end_window]
            base_rss, tail_rss = median(e["rss"] for e in base), median(e["rss"] for e in tail)
            growth = (tail_rss / base_rss - 1) if base_rss and tail_rss else None
            rss[generation] = {"pid": pid, "lived": [start, end], "baseline_window": [start + plan.warmup, start + plan.warmup + plan.baseline],
                               "baseline_mib": base_rss and base_rss / 2**20, "end_mib": tail_rss and tail_rss / 2**20,
                               "peak_mib": max(e["rss"] for e in own) / 2**20, "growth": growth,
                               "baseline_fds": median(e["fds"] for e in base), "end_fds": median(e["fds"] for e in tail),
                               "max_fds": max((e["fds"] or 0) for e in own), "samples": len(own)}
            after = [e for e in own if e["t"] >= start + plan.warmup]
            if len(after) > 10:
                xs = [e["t"] for e in after]
                ys = [e["rss"] / 2**20 for e in after]
                mx, my = statistics.fmean(xs), statistics.fmean(ys)
                slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
                rss[generation]["slope_mib_per_minute"] = slope * 60
            windows_overlap = bool(base) and bool(tail) and base[-1]["t"] > tail[0]["t"]
            rss[generation]["windows_overlap"] = windows_overlap
        final = rss.get(len(self.main_pids))
        if final and final["growth"] is not None:
            check("RSS after warm-up grows < 10 % (the process alive at the end)", final["growth"] < 0.10,
                  f"pid {final['pid']}: {final['baseline_mib']:.1f} MiB -> {final['end_mib']:.1f} MiB "
                  f"({final['growth'] * 100:+.1f} %), peak {final['peak_mib']:.1f} MiB")
        else:
            check("RSS after warm-up grows < 10 % (the process alive at the end)", False, f"not enough samples: {final}")
        first = rss.get(1)
        if first and len(self.main_pids) > 1 and first["growth"] is not None:
            check("RSS after warm-up grows < 10 % (the process killed in the middle, until the kill)", first["growth"] < 0.10,
                  f"pid {first['pid']}: {first['baseline_mib']:.1f} MiB -> {first['end_mib']:.1f} MiB ({first['growth'] * 100:+.1f} %)")
        fd_slack_connected, fd_slack_idle = 4, 2
        if final:
            check("open fds with the senders connected: end <= baseline + 4",
                  final["end_fds"] is not None and final["baseline_fds"] is not None and final["end_fds"] <= final["baseline_fds"] + fd_slack_connected,
                  f"baseline (median after warm-up) {final['baseline_fds']}, last {plan.end_window:.0f} s {final['end_fds']}, "
                  f"at the senders' stop {len(connected_fds or [])}, max {final['max_fds']}")
        check("open fds after the senders closed: back to the idle count (+2)",
              closed_fds is not None and idle_fds is not None and len(closed_fds) <= len(idle_fds) + fd_slack_idle,
              f"idle at start {len(idle_fds or [])}, after the senders closed {len(closed_fds or [])}; "
              f"extra: {sorted((collections.Counter(closed_fds or []) - collections.Counter(idle_fds or [])).elements())}")

        # 4. /metrics and /services against what the soak acknowledged since the restart.
        final_generation = len(self.main_pids)
        counted = {"metrics": {}, "services": {}}
        for s in SIGNALS:
            acked_here = sum(n for (g, sig, _, _), n in self.by_generation.items() if g == final_generation and sig == s)
            by_protocol = {p: sum(n for (g, sig, _, proto), n in self.by_generation.items() if g == final_generation and sig == s and proto == p)
                           for p in ("grpc", "http")}
            name = f"otelcol_receiver_accepted_{ITEM_WORDS[s]}_total"
            accepted = metric_sum(final_metrics, name)
            by_transport = {t: metric_sum(final_metrics, name, transport=t) for t in ("grpc", "http")}
            refused = metric_sum(final_metrics, f"otelcol_receiver_refused_{ITEM_WORDS[s]}_total")
            counted["metrics"][s] = {"acknowledged_since_restart": acked_here, "by_protocol": by_protocol,
                                     "accepted": accepted, "accepted_by_transport": by_transport, "refused": refused,
                                     "file_sent": metric_sum(final_metrics, f"otelcol_exporter_sent_{ITEM_WORDS[s]}_total", exporter="file"),
                                     "upstream_sent": metric_sum(final_metrics, f"otelcol_exporter_sent_{ITEM_WORDS[s]}_total", exporter="otlp_grpc")}
            check(f"{s}: /metrics {name} = acknowledged since the restart", accepted == acked_here,
                  f"/metrics {accepted:.0f}, the soak {acked_here} (by transport {by_transport}, by the SDK's protocol {by_protocol}; "
                  f"straddling the kill {self.straddling[s]})")
        services_by_name = {svc["name"]: svc for svc in (final_services or {}).get("services", [])}
        for service, protocol, port_kind in SERVICES:
            view = services_by_name.get(service, {})
            for s in SIGNALS:
                acked_here = sum(n for (g, sig, svc, _), n in self.by_generation.items() if g == final_generation and sig == s and svc == service)
                shown = view.get(SERVICE_KEYS[s])
                counted["services"].setdefault(service, {})[s] = {"acknowledged_since_restart": acked_here, "services_page": shown}
                check(f"/services {service} {SERVICE_KEYS[s]} = acknowledged since the restart", shown == acked_here,
                      f"/services {shown}, the soak {acked_here}")
            counted["services"][service]["view"] = {k: view.get(k) for k in ("protocols", "ports", "wrongPort", "instances", "duplicateSpans", "errors")}

        window = self.quota.get("window")
        if window:
            during = [f for f in self.failures_in if window[0] <= f[0] <= window[1] + 15]
            self.quota["failed_exports_during"] = len(during)
            self.quota["failed_records_during"] = sum(f[2] for f in during)
        outside = [f for f in self.failures_in if not (window and window[0] <= f[0] <= window[1] + 15)]
        failures_outside = [(round(t, 1), sig, n) for t, sig, n in outside]

        failed = [c for c in checks if not c[1]]
        for text in self.problems:
            failed.append(("problem", False, text))
        summary = {
            "ok": not failed,
            "minutes": plan.seconds / 60,
            "plan": {"warmup": plan.warmup, "baseline": plan.baseline, "end_window": plan.end_window, "reloads": plan.reload_times,
                     "upstream_windows": plan.upstream_windows, "kill_at": plan.kill_at, "quota_at": plan.quota_at,
                     "queue_max_size": plan.queue_max_size},
            "services": [{"name": s, "protocol": p, "port": k} for s, p, k in SERVICES],
            "rate_records_per_second": sum(PER_EXPORT.values()) * len(SERVICES) / EXPORT_INTERVAL,
            "delivery": delivery,
            "failed_exports": {f"{s}/{p}": n for (s, p), n in sorted(self.failed_exports.items())},
            "failed_exports_outside_the_quota_episode": failures_outside,
            "export_seconds": {s: {"median": median(v), "p99": sorted(v)[int(0.99 * (len(v) - 1))] if v else None, "max": max(v) if v else None}
                               for s, v in self.export_seconds.items()},
            "sdk_log": dict(sdk_log.counts),
            "rss": rss,
            "fds": {"idle_at_start": len(idle_fds or []), "at_senders_stop": len(connected_fds or []),
                    "after_senders_closed": len(closed_fds or []),
                    "idle_list": sorted(collections.Counter(idle_fds or []).items()),
                    "closed_list": sorted(collections.Counter(closed_fds or []).items())},
            "counts": counted,
            "process_1_metrics_before_kill": {s: metric_sum(getattr(self, "metrics_before_kill", {}), f"otelcol_receiver_accepted_{ITEM_WORDS[s]}_total")
                                              for s in SIGNALS},
            "reloads": {"planned": len(plan.reload_times), "done": self.reloads_done, "revisions_in_file": {s: dict(r) for s, r in main_revs.items()}},
            "upstream_restarts": self.upstream_restarts,
            "kill": {"at": self.kill_time, "restart_ready": self.restart_ready,
                     "straddling_records": dict(self.straddling)},
            "quota": self.quota,
            "files": {"main": main_files, "upstream": upstream_files},
            "events": self.events,
            "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
            "failed": [{"name": n, "detail": d} for n, _, d in failed],
        }
        return summary


# --------------------------------------------------------------------------
# Output


def write_markdown(summary: dict, path: Path):
    lines = [f"# otlpd soak, {summary['minutes']:g} minutes: {'PASS' if summary['ok'] else 'FAIL'}", ""]
    lines += ["| signal | attempted | acknowledged | failed (refused) | dropped | file: records / distinct / dup / lost | upstream: records / distinct / dup / lost |",
              "|---|---|---|---|---|---|---|"]
    for s, row in summary["delivery"].items():
        f, u = row["file"], row["upstream"]
        lines.append(f"| {s} | {row['attempted']} | {row['acknowledged']} | {row['failed_records']} | {row['dropped_after_retries']} | "
                     f"{f['records']} / {f['distinct']} / {f['duplicates']} / **{f['lost']}** | "
                     f"{u['records']} / {u['distinct']} / {u['duplicates']} / **{u['lost']}** |")
    lines += ["", "| process | baseline RSS | end RSS | growth | slope after warm-up | peak | baseline fds | end fds |",
              "|---|---|---|---|---|---|---|---|"]
    for generation, r in summary["rss"].items():
        growth = f"{r['growth'] * 100:+.1f} %" if r["growth"] is not None else "n/a"
        slope = f"{r['slope_mib_per_minute']:+.2f} MiB/min" if r.get("slope_mib_per_minute") is not None else "n/a"
        lines.append(f"| {generation} (pid {r['pid']}) | {r['baseline_mib'] or 0:.1f} MiB | {r['end_mib'] or 0:.1f} MiB | {growth} | {slope} | "
                     f"{r['peak_mib']:.1f} MiB | {r['baseline_fds']} | {r['end_fds']} |")
    fds = summary["fds"]
    quota = summary["quota"]
    lines += ["", f"- fds: idle at start {fds['idle_at_start']}, at the senders' stop {fds['at_senders_stop']}, after they closed {fds['after_senders_closed']}",
              f"- reloads: {summary['reloads']['done']} of {summary['reloads']['planned']}; upstream restarts: {summary['upstream_restarts']}; "
              f"kill -9 at {summary['kill']['at']:.1f} s, ready again {summary['kill']['restart_ready'] - summary['kill']['at']:.2f} s later",
              f"- quota episode: full {quota.get('full_after_down')} s after the upstream stopped, refused for {quota.get('refusing_seconds')} s, "
              f"refused records {quota.get('refused_total')} ({quota.get('reason')})",
              f"- failed exports (SDK FAILURE): {summary['failed_exports']}; SDK log: {summary['sdk_log']}",
              ""]
    lines += ["| check | result | detail |", "|---|---|---|"]
    for c in summary["checks"]:
        lines.append(f"| {c['name']} | {'ok' if c['ok'] else '**FAIL**'} | {c['detail'].replace('|', '/')} |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(soak: Soak, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = soak.samples
    fig, axes = plt.subplots(3, 1, figsize=(13, 9), sharex=True)
    for generation, pid in enumerate(soak.main_pids, 1):
        own = [e for e in samples if e.get("pid") == pid and e.get("rss")]
        t = [e["t"] for e in own]
        axes[0].plot(t, [e["rss"] / 2**20 for e in own], label=f"main otlpd, process {generation} (pid {pid})")
        axes[1].plot(t, [e["fds"] for e in own], label=f"process {generation}")
        axes[2].plot(t, [(e.get("queue_bytes") or 0) / 2**20 for e in own], label=f"process {generation}")
    up = [e for e in samples if e.get("upstream_rss")]
    axes[0].plot([e["t"] for e in up], [e["upstream_rss"] / 2**20 for e in up], color="grey", alpha=0.5, linewidth=0.8, label="upstream otlpd")
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].set_ylabel("open fds")
    axes[2].set_ylabel("persistent queue (MiB)")
    axes[2].set_xlabel("seconds since the start")
    for summary_rss in soak_summary_rss(soak):
        for ax in axes[:1]:
            ax.axvspan(*summary_rss, color="tab:blue", alpha=0.06)
    marks = {"SIGHUP": ("tab:grey", ":"), "upstream stop": ("tab:red", "--"), "upstream start": ("tab:green", "--"),
             "kill -9": ("black", "-")}
    seen = set()
    for e in soak.events:
        style = marks.get(e["kind"])
        if not style:
            continue
        label = e["kind"] if e["kind"] not in seen else None
        seen.add(e["kind"])
        for ax in axes:
            ax.axvline(e["t"], color=style[0], linestyle=style[1], linewidth=0.9, alpha=0.8, label=label if ax is axes[1] else None)
    quota = soak.quota
    if quota.get("full_at") is not None:
        end = quota.get("cleared_at", quota["full_at"])
        for ax in axes:
            ax.axvspan(quota["full_at"], end, color="tab:orange", alpha=0.25, label="queue full (clients refused)" if ax is axes[1] else None)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].legend(loc="upper left", fontsize=8, ncol=3)
    max_size = soak.plan.queue_max_size
    axes[2].set_title(f"persistent queue on disk (max_size {max_size})", fontsize=9)
    axes[0].set_title(f"otlpd soak, {soak.plan.seconds / 60:g} min: RSS and open fds of the main otlpd "
                      f"(shaded blue: RSS baseline windows)", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def soak_summary_rss(soak: Soak):
    for pid, start in zip(soak.main_pids, soak.main_starts):
        own = [e for e in soak.samples if e.get("pid") == pid and e.get("rss")]
        if own:
            yield (start + soak.plan.warmup, start + soak.plan.warmup + soak.plan.baseline)
            yield (own[-1]["t"] - soak.plan.end_window, own[-1]["t"])


def print_summary(summary: dict):
    print()
    print(f"soak {summary['minutes']:g} min: {'PASS' if summary['ok'] else 'FAIL'}")
    for s, row in summary["delivery"].items():
        f, u = row["file"], row["upstream"]
        print(f"  {s:8} attempted {row['attempted']:7} acknowledged {row['acknowledged']:7} failed {row['failed_records']:5} "
              f"dropped {row['dropped_after_retries']:4} | file {f['distinct']:7} distinct, {f['duplicates']} dup, {f['lost']} lost | "
              f"upstream {u['distinct']:7} distinct, {u['duplicates']} dup, {u['lost']} lost")
    for generation, r in summary["rss"].items():
        growth = f"{r['growth'] * 100:+.1f}%" if r["growth"] is not None else "n/a"
        print(f"  process {generation} (pid {r['pid']}): RSS {r['baseline_mib'] or 0:.1f} -> {r['end_mib'] or 0:.1f} MiB ({growth}), "
              f"peak {r['peak_mib']:.1f} MiB, slope {r.get('slope_mib_per_minute') or 0:+.2f} MiB/min; fds {r['baseline_fds']} -> {r['end_fds']}")
    fds = summary["fds"]
    print(f"  fds: idle {fds['idle_at_start']}, senders connected at the end {fds['at_senders_stop']}, after they closed {fds['after_senders_closed']}")
    print(f"  reloads {summary['reloads']['done']}/{summary['reloads']['planned']}, upstream restarts {summary['upstream_restarts']}, "
          f"kill -9 at {summary['kill']['at']}, quota {json.dumps({k: v for k, v in summary['quota'].items()})}")
    for c in summary["checks"]:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}")
    if summary["failed"]:
        print("FAILED CHECKS:")
        for f in summary["failed"]:
            print(f"  - {f['name']}: {f['detail']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otlpd", required=True, help="the otlpd binary (copied into OUT first, so a rebuild cannot swap it mid-run)")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out", required=True, help="output folder (emptied first)")
    parser.add_argument("--queue-max-size", default=None, help="file_storage max_size (default: 2MiB for < 10 min, else 5MiB)")
    args = parser.parse_args(argv)
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            del os.environ[key]
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    binary = out / "otlpd"
    shutil.copy2(args.otlpd, binary)
    import hashlib
    stat = os.stat(args.otlpd)
    binary_info = {"path": str(Path(args.otlpd).resolve()), "bytes": stat.st_size, "sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
                   "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))}
    plan = Plan.make(args.minutes, args.queue_max_size)
    soak = Soak(str(binary), plan, out)
    try:
        summary = soak.run()
    finally:
        for daemon in (soak.main, soak.upstream):
            if daemon is not None:
                daemon.ensure_stopped()
    summary["binary"] = binary_info
    (out / "soak-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "samples.json").write_text(json.dumps(soak.samples))
    write_markdown(summary, out / "soak.md")
    try:
        write_plot(soak, out / "soak.png")
    except Exception as error:  # noqa: BLE001 - the figures stand without the plot
        summary["ok"] = False
        summary["failed"].append({"name": "plot", "detail": repr(error)})
    binary.unlink()
    print_summary(summary)
    print(f"\nwritten: {out / 'soak-summary.json'}, {out / 'soak.md'}, {out / 'soak.png'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
