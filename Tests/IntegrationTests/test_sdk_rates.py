"""The OpenTelemetry Python SDK at production rates against the pipeline of
otlpd's embedded default config (otlp -> batch {} -> debug (normal) + file).

otlpd's batch processor answers a request only once its batch is written;
with group commit, a partial batch goes as soon as no other request is on its
way, so an SDK exporting one request at a time is answered in about one write,
not after the 200 ms batch timeout. These tests hold otlpd to that with the
SDK's own processors at their DEFAULT settings:

- BatchSpanProcessor (queue 2048, batches of 512, 5 s schedule) at a steady
  5,000 and 20,000 spans/s: the SDK drops nothing ("Queue full, dropping
  Span." is never logged) and every span is in the file exactly once. Where
  one SDK process cannot make and encode 20,000 spans/s at all (a 2-core
  machine), a control run without otlpd shows it, and the test is an xfail
  with the figures, still holding otlpd to every exported span written once
  and prompt answers;
- SimpleSpanProcessor (one synchronous export per span): span.end() returns in
  milliseconds, not in the batch timeout;
- ten SDK processes at once, over both protocols.

This file is also the client program of the ten-process test: run as a script
(`python test_sdk_rates.py --child ...`), it sends spans and writes a report.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

PROTOCOLS = ["grpc", "http"]

# The SDK logs a drop through this logger ("Queue full, dropping Span.", from
# opentelemetry.sdk._shared_internal.BatchProcessor.emit, 1.45.2); export
# failures and retries through the exporters' loggers, all under "opentelemetry".
SDK_LOGGER = "opentelemetry"
DROP_WORDS = ("dropping", "queue full")

# Requests of a web service: (span name, kind, attributes).
ROUTES = [
    ("GET /api/cart", trace_api.SpanKind.SERVER,
     {"http.request.method": "GET", "http.route": "/api/cart", "http.response.status_code": 200}),
    ("POST /api/orders", trace_api.SpanKind.SERVER,
     {"http.request.method": "POST", "http.route": "/api/orders", "http.response.status_code": 201}),
    ("SELECT shop.orders", trace_api.SpanKind.CLIENT,
     {"db.system": "postgresql", "db.namespace": "shop", "db.operation.name": "SELECT"}),
    ("GET /api/products/{id}", trace_api.SpanKind.SERVER,
     {"http.request.method": "GET", "http.route": "/api/products/{id}", "http.response.status_code": 404}),
    ("redis GET", trace_api.SpanKind.CLIENT,
     {"db.system": "redis", "server.address": "cache.internal", "server.port": 6379}),
]


# --------------------------------------------------------------------------
# The SDK side (also run in the child processes)


class _SdkWarnings(logging.Handler):
    """Every WARNING or worse the SDK and its exporters log."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._lock_messages = threading.Lock()

    def emit(self, record):
        try:
            text = f"{record.name}: {record.getMessage()}"
        except Exception:  # noqa: BLE001 - a badly formatted record is still a record
            text = f"{record.name}: {record.msg!r}"
        with self._lock_messages:
            self.messages.append(text)

    def drops(self) -> list[str]:
        return [m for m in self.messages if any(w in m.lower() for w in DROP_WORDS)]


def capture_sdk_warnings() -> _SdkWarnings:
    handler = _SdkWarnings()
    logging.getLogger(SDK_LOGGER).addHandler(handler)
    # The SDK's BatchProcessor logger carries a DuplicateFilter that swallows a
    # message equal to the previous one within 20 s; forget what an earlier
    # test in this process logged, so a drop here is logged here.
    try:
        from opentelemetry.sdk import _shared_internal
        for f in _shared_internal._logger.filters:
            if hasattr(f, "last_log"):
                del f.last_log
    except (ImportError, AttributeError):
        pass
    return handler


def release_sdk_warnings(handler: _SdkWarnings) -> None:
    logging.getLogger(SDK_LOGGER).removeHandler(handler)


class _Counting:
    """Mixed into the SDK's own OTLPSpanExporter class: counts what the processor hands it,
    the results, the span ids it got answered (SUCCESS), and how long each export took."""

    def _init_counts(self):
        self.exports = 0
        self.spans_exported = 0
        self.failures = 0
        self.exported_ids: list[int] = []
        self.durations: list[float] = []
        self.answer_waits: list[float] = []
        self._count_lock = threading.Lock()

    def export(self, spans):
        started = time.perf_counter()
        result = super().export(spans)
        elapsed = time.perf_counter() - started
        with self._count_lock:
            self.exports += 1
            self.spans_exported += len(spans)
            self.durations.append(elapsed)
            if result == SpanExportResult.SUCCESS:
                self.exported_ids.extend(s.get_span_context().span_id for s in spans)
            else:
                self.failures += 1
        return result

    def _time_answers(self, target, attribute: str):
        """Times the call that sends the encoded request and waits for otlpd's answer (the
        gRPC stub's Export, the HTTP transport's request): an upper bound on otlpd's share
        of an export (it includes taking the GIL back)."""
        send = getattr(target, attribute)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return send(*args, **kwargs)
            finally:
                self.answer_waits.append(time.perf_counter() - started)

        setattr(target, attribute, timed)


class _EncodeOnlySpanExporter(SpanExporter):
    """The control: the SDK's OTLP encoding and nothing else, as if a collector answered at
    once with no network in between. What one process can export with otlpd out of the picture."""

    def export(self, spans):
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def sdk_exporter(protocol: str, grpc_port: int = 0, http_port: int = 0):
    """The SDK's OTLPSpanExporter with its default settings, only the endpoint set (or, for
    protocol "encode-only", the control that encodes and sends nothing)."""
    if protocol == "encode-only":
        exporter = type("CountingEncodeOnlySpanExporter", (_Counting, _EncodeOnlySpanExporter), {})()
        exporter._init_counts()
        return exporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        endpoint = f"http://127.0.0.1:{grpc_port}"
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        endpoint = f"http://127.0.0.1:{http_port}/v1/traces"
    cls = type(f"Counting{protocol.upper()}OTLPSpanExporter", (_Counting, OTLPSpanExporter), {})
    exporter = cls(endpoint=endpoint)
    exporter._init_counts()
    if protocol == "grpc":
        exporter._time_answers(exporter._client, "Export")
    else:
        exporter._time_answers(exporter._client._transport, "request")
    return exporter


def new_provider(service: str, processor) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "1.4.2",
                                                        "deployment.environment.name": "it"}))
    provider.add_span_processor(processor)
    return provider


def make_span(tracer, n: int):
    name, kind, attributes = ROUTES[n % len(ROUTES)]
    span = tracer.start_span(name, kind=kind, attributes=attributes)
    span.set_attribute("request.sequence", n)
    span.end()
    return span.get_span_context().span_id


def generate(tracer, rate: int, duration: float, tick: float = 0.010) -> tuple[list[int], float]:
    """rate * duration spans at a steady `rate`: every `tick`, the spans then due. If the
    process cannot keep up it makes them without sleeping, so the count is always exact
    and the achieved rate (count / elapsed) tells how far behind it fell."""
    total = int(rate * duration)
    ticks = int(round(duration / tick))
    ids: list[int] = []
    start = time.monotonic()
    for k in range(1, ticks + 1):
        due_at = start + k * tick
        wait = due_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        target = total * k // ticks
        while len(ids) < target:
            ids.append(make_span(tracer, len(ids)))
    return ids, time.monotonic() - start


def run_batch_client(service: str, protocol: str, grpc_port: int, http_port: int, rate: int,
                     duration: float) -> dict:
    """One SDK with BatchSpanProcessor at its defaults sending `rate` spans/s for `duration` s."""
    warnings_ = capture_sdk_warnings()
    try:
        exporter = sdk_exporter(protocol, grpc_port, http_port)
        processor = BatchSpanProcessor(exporter)  # all defaults
        settings = {k: getattr(processor._batch_processor, f"_{k}", None)
                    for k in ("max_queue_size", "schedule_delay_millis", "max_export_batch_size")}
        provider = new_provider(service, processor)
        tracer = provider.get_tracer("shop.web", "1.4.2")
        ids, elapsed = generate(tracer, rate, duration)
        flush_started = time.monotonic()
        flushed = provider.force_flush()
        flush_seconds = time.monotonic() - flush_started
        provider.shutdown()
    finally:
        release_sdk_warnings(warnings_)
    durations = sorted(exporter.durations)
    waits = sorted(exporter.answer_waits)
    return {
        "service": service, "protocol": protocol, "rate": rate, "duration": duration,
        "settings": settings,
        "span_ids": [format(i, "016x") for i in ids],
        "created": len(ids), "elapsed": elapsed, "achieved_rate": len(ids) / elapsed,
        "flushed": flushed, "flush_seconds": flush_seconds,
        "exports": exporter.exports, "spans_exported": exporter.spans_exported, "failures": exporter.failures,
        "export_ms_median": statistics.median(durations) * 1000 if durations else None,
        "export_ms_max": durations[-1] * 1000 if durations else None,
        "answer_ms_median": statistics.median(waits) * 1000 if waits else None,
        "answer_ms_max": waits[-1] * 1000 if waits else None,
        "exported_ids": [format(i, "016x") for i in exporter.exported_ids],
        "warnings": warnings_.messages, "drops": warnings_.drops(),
    }


def _child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    for name in ("service", "protocol", "report", "ready", "go"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("grpc-port", "http-port", "rate"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args(argv)
    # Imports done, exporter classes loaded: tell the parent, then wait for everyone.
    sdk_exporter(args.protocol, args.grpc_port, args.http_port).shutdown()
    Path(args.ready).write_text("ready")
    deadline = time.monotonic() + 60
    while not Path(args.go).exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal within 60 s")
        time.sleep(0.005)
    report = run_batch_client(args.service, args.protocol, args.grpc_port, args.http_port, args.rate, args.duration)
    Path(args.report).write_text(json.dumps(report))


if __name__ == "__main__" and "--child" in sys.argv:
    _child_main(sys.argv[1:])
    sys.exit(0)


# --------------------------------------------------------------------------
# The tests

import pytest  # noqa: E402

from upstreams import free_port
from otlpd_harness import base_config, read_jsonl, records, service_of, wait_until  # noqa: E402

# An SDK's defaults come from OTEL_BSP_* and OTEL_EXPORTER_OTLP_*; these tests use the defaults.
@pytest.fixture(autouse=True)
def _sdk_defaults(monkeypatch):
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


def default_pipeline_config(tmp_path: Path) -> dict:
    """The pipeline of the embedded default config (`otlpd print-config` with no --config), on
    OS-chosen ports, the file in tmp_path. Debug at normal verbosity writes a line per span to
    stdout, which the harness sends to a file (not a pipe nobody reads)."""
    return base_config(tmp_path, processors={"batch": {}},
                       exporters={"debug": {"verbosity": "normal"},
                                  "file": {"path": str(tmp_path / "otlpd.jsonl"), "format": "json"}})


def start_default(otlpd, tmp_path):
    daemon = otlpd.start(default_pipeline_config(tmp_path))
    assert not daemon.stdout_pipe and daemon.proc.stdout is None, "debug output goes to a file"
    return daemon


def span_counts_of(path: Path, services: set[str]) -> dict[str, collections.Counter]:
    """For each service, how many times each span id is in the file."""
    counts = {s: collections.Counter() for s in services}
    if not path.exists():
        return counts
    for resource, _, span in records(read_jsonl(path), "traces"):
        service = service_of(resource)
        if service in counts:
            counts[service][span.get("spanId", "")] += 1
    return counts


def check_exactly_once(path: Path, sent: dict[str, list[str]], daemon, settle: float = 3) -> dict[str, collections.Counter]:
    """Waits briefly for every sent span (acknowledged means written, so they should be there at
    once; `settle` is longer where a queue delivers them later), then asserts each is in the file
    exactly once and nothing else is there for the service."""
    total = sum(len(ids) for ids in sent.values())

    def all_there():
        counts = span_counts_of(path, set(sent))
        return counts if all(set(ids) <= set(counts[s]) for s, ids in sent.items()) else None

    try:
        counts = wait_until(all_there, settle, f"all {total} spans in {path.name}")
    except AssertionError:
        counts = span_counts_of(path, set(sent))
    problems = []
    for service, ids in sent.items():
        found = counts[service]
        missing = set(ids) - set(found)
        extra = set(found) - set(ids)
        twice = {i: n for i, n in found.items() if n > 1}
        assert len(set(ids)) == len(ids), f"{service}: the SDK made duplicate span ids"
        if missing or extra or twice:
            problems.append(f"{service}: sent {len(ids)}, in file {sum(found.values())} "
                            f"({len(found)} distinct); missing {len(missing)}, not sent {len(extra)}, "
                            f"written more than once {len(twice)} (e.g. {list(twice.items())[:3]})")
    assert not problems, "\n".join(problems) + "\notlpd stderr (tail):\n" + "\n".join(daemon.stderr().splitlines()[-30:])
    return counts


def describe(report: dict) -> str:
    answers = ("no collector" if report["answer_ms_median"] is None else
               f"otlpd's answer median {report['answer_ms_median']:.1f} ms, max {report['answer_ms_max']:.1f} ms")
    return (f"{report['service']} over {report['protocol']}: target {report['rate']}/s for {report['duration']}s, "
            f"created {report['created']} in {report['elapsed']:.2f}s ({report['achieved_rate']:.0f}/s), "
            f"exported {report['spans_exported']} in {report['exports']} exports "
            f"(export() median {report['export_ms_median'] or 0:.1f} ms, max {report['export_ms_max'] or 0:.1f} ms; "
            f"{answers}), "
            f"{report['failures']} failed, force_flush {report['flush_seconds'] * 1000:.0f} ms, "
            f"drop logs {len(report['drops'])}, warnings {report['warnings'][:3]}")


def wait_for_debug_lines(daemon, service: str, span_ids: list[str]) -> None:
    """The debug exporter (verbosity normal) wrote a line per span of `service` to stdout."""
    wanted = set(span_ids)

    def written():
        seen = set()
        for line in daemon.stdout().splitlines():
            if f"  {service}  " in line:
                seen.add(line.rsplit("span=", 1)[-1].split()[0])
        return seen if wanted <= seen else None

    try:
        wait_until(written, 3, f"{len(wanted)} debug lines of {service}")
    except AssertionError:
        seen = set()
        for line in daemon.stdout().splitlines():
            if f"  {service}  " in line:
                seen.add(line.rsplit("span=", 1)[-1].split()[0])
        raise AssertionError(f"debug exporter: {len(wanted - seen)} of {len(wanted)} spans of {service} have no line "
                             f"on stdout ({len(daemon.stdout().splitlines())} lines in all)")


# Rates and durations, and the lowest achieved rate accepted, as a fraction of the target.
RATES = [pytest.param(5_000, 4.0, 0.95, id="5k"), pytest.param(20_000, 3.0, 0.95, id="20k")]
# With the SDK dropping on its own (see below), otlpd is still held to answering an export
# of up to 512 spans in this much (median): the batch timeout is 200 ms.
MAX_MEDIAN_ANSWER_MS = 50


@pytest.mark.parametrize("rate,duration,min_fraction", RATES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batch_span_processor_defaults_keep_every_span(otlpd, tmp_path, protocol, rate, duration, min_fraction):
    """BatchSpanProcessor at its defaults at a steady rate: no "Queue full, dropping Span.",
    every span in the file exactly once (and a debug line for each on stdout).

    One Python thread makes a span with a few attributes in ~40 us and the SDK's OTLP
    encoder needs ~40 us more for it, in the worker thread under the same GIL: one SDK
    process may not keep up with 20,000 spans/s on a small machine whatever the collector
    does. When the SDK drops, the same load runs again against the control (the SDK's
    encoder with no collector and no network): if it drops too, and otlpd answered its
    exports promptly, the rate is beyond this machine's SDK and the test is an xfail with
    the figures; if the control keeps up, otlpd is what made the SDK drop, and it fails."""
    daemon = start_default(otlpd, tmp_path)
    service = f"shop-bsp-{protocol}-{rate}"
    hold_rate(daemon, daemon, tmp_path / "otlpd.traces.jsonl", service, protocol, rate, duration, min_fraction)
    assert daemon.stop() == 0


@pytest.mark.parametrize("rate,duration,min_fraction", RATES)
def test_batch_span_processor_through_a_forwarding_otlpd(otlpd, tmp_path, rate, duration, min_fraction):
    """The same SDK at its defaults, through otlpd's [batch] -> otlp_grpc into a second otlpd
    (file): an answer waits for the upstream's confirmation, and still the SDK drops nothing,
    every span arrives upstream exactly once."""
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    upstream = otlpd.start(base_config(upstream_dir, signals=("traces",),
                                       exporters={"file": {"path": str(upstream_dir / "otlpd.jsonl")}}), workdir=upstream_dir)
    forwarder = otlpd.start(base_config(tmp_path, processors={"batch": {}}, signals=("traces",), exporters={
        "otlp_grpc": {"endpoint": upstream.grpc_target, "tls": {"insecure": True}}}))
    service = f"shop-forwarded-{rate}"
    hold_rate(forwarder, upstream, upstream_dir / "otlpd.jsonl", service, "grpc", rate, duration, min_fraction, debug_lines=False)
    assert forwarder.logs_matching("does not confirm") == []
    assert forwarder.stop() == 0 and upstream.stop() == 0


def persistent_forwarder_config(tmp_path: Path, port: int) -> dict:
    """[batch] -> otlp_grpc to 127.0.0.1:PORT through a persistent queue (fsync on) in tmp_path/queue."""
    config = base_config(tmp_path, processors={"batch": {}}, signals=("traces",), exporters={"otlp_grpc": {
        "endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True}, "sending_queue": {"storage": "file_storage"},
        "retry_on_failure": {"initial_interval": "100ms", "max_interval": "500ms"}}})
    config["extensions"] = {"file_storage": {"directory": str(tmp_path / "queue"), "fsync": True}}
    config["service"]["extensions"] = ["file_storage"]
    return config


@pytest.mark.parametrize("rate,duration,min_fraction", RATES)
def test_batch_span_processor_into_a_persistent_queue_while_the_upstream_is_down(otlpd, tmp_path, rate, duration, min_fraction):
    """The SDK at its defaults through [batch] -> otlp_grpc with a persistent queue (fsync on)
    while the upstream is down: answers wait for the disk, not the upstream, so the SDK drops
    nothing; once the upstream starts, every span reaches it exactly once."""
    port = free_port()
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    forwarder = otlpd.start(persistent_forwarder_config(tmp_path, port))
    upstream = []

    def start_upstream():
        upstream.append(otlpd.start(base_config(upstream_dir, signals=("traces",), grpc={"endpoint": f"127.0.0.1:{port}"},
                                                exporters={"file": {"path": str(upstream_dir / "otlpd.jsonl")}}), workdir=upstream_dir))

    service = f"shop-queued-{rate}"
    hold_rate(forwarder, forwarder, upstream_dir / "otlpd.jsonl", service, "grpc", rate, duration, min_fraction, debug_lines=False,
              after_run=start_upstream, settle=30)
    assert forwarder.stop() == 0 and upstream[0].stop() == 0


def hold_rate(daemon, writer, path: Path, service: str, protocol: str, rate: int, duration: float, min_fraction: float,
              debug_lines: bool = True, after_run=None, settle: float = 3) -> None:
    """Runs the SDK against `daemon` and holds it to every span once in `path` (written by `writer`),
    or, where the SDK itself cannot keep the rate (the control), to an xfail with the figures.
    `after_run` runs once the SDK is done, before the file is read (an upstream started then)."""
    report = run_batch_client(service, protocol, daemon.grpc_port, daemon.http_port, rate, duration)
    if after_run:
        after_run()
    print(describe(report))
    assert report["settings"] == {"max_queue_size": 2048, "schedule_delay_millis": 5000,
                                  "max_export_batch_size": 512}, f"SDK defaults: {report['settings']}"
    assert report["failures"] == 0, f"exports failed: {describe(report)}\notlpd stderr:\n{daemon.stderr()[-3000:]}"
    other_warnings = [w for w in report["warnings"] if w not in report["drops"]]
    assert not other_warnings, f"the SDK logged warnings: {other_warnings[:10]}"
    # Whatever the SDK handed otlpd and got answered is in the file, exactly once.
    assert set(report["exported_ids"]) <= set(report["span_ids"]), "the exporter got spans this test did not make"
    check_exactly_once(path, {service: report["exported_ids"]}, writer, settle=settle)
    if debug_lines:
        wait_for_debug_lines(daemon, service, report["exported_ids"])

    dropped = report["created"] - report["spans_exported"]
    if report["drops"] or dropped:
        control = run_batch_client(f"{service}-control", "encode-only", 0, 0, rate, duration)
        print("control without otlpd: " + describe(control))
        figures = (f"with otlpd: {describe(report)}\nwithout otlpd (control): {describe(control)}")
        control_dropped = control["created"] - control["spans_exported"]
        assert control["drops"] or control_dropped, \
            f"otlpd made the SDK drop {dropped} spans: the control (the SDK's encoder, no collector) kept up\n{figures}"
        assert report["answer_ms_median"] <= MAX_MEDIAN_ANSWER_MS, \
            f"otlpd answered slowly while the SDK dropped {dropped} spans\n{figures}"
        pytest.xfail(f"one SDK process cannot hold {rate} spans/s here even without otlpd: with otlpd it exported "
                     f"{report['spans_exported']} of {report['created']} (logged {report['drops']}), the control "
                     f"{control['spans_exported']} of {control['created']}; otlpd answered in a median "
                     f"{report['answer_ms_median']:.1f} ms, and every exported span arrived once\n{figures}")

    assert not report["drops"] and report["spans_exported"] == report["created"]
    check_exactly_once(path, {service: report["span_ids"]}, writer)
    assert report["achieved_rate"] >= min_fraction * rate, \
        f"this process could not hold the rate (not otlpd's doing): {describe(report)}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_simple_span_processor_answers_in_milliseconds(otlpd, tmp_path, protocol):
    """SimpleSpanProcessor exports each span synchronously in span.end(): a lone request is
    answered in about one write, not after the batch processor's 200 ms timeout."""
    daemon = start_default(otlpd, tmp_path)
    service = f"shop-simple-{protocol}"
    warnings_ = capture_sdk_warnings()
    try:
        exporter = sdk_exporter(protocol, daemon.grpc_port, daemon.http_port)
        provider = new_provider(service, SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("shop.web", "1.4.2")
        ids, times = [], []
        for n in range(200):
            name, kind, attributes = ROUTES[n % len(ROUTES)]
            span = tracer.start_span(name, kind=kind, attributes=attributes)
            span.set_attribute("request.sequence", n)
            started = time.perf_counter()
            span.end()
            times.append(time.perf_counter() - started)
            ids.append(format(span.get_span_context().span_id, "016x"))
        provider.shutdown()
    finally:
        release_sdk_warnings(warnings_)
    ordered = sorted(times)
    median_ms = statistics.median(times) * 1000
    p90_ms = ordered[int(0.9 * len(ordered)) - 1] * 1000
    figures = (f"{protocol}: span.end() median {median_ms:.2f} ms, p90 {p90_ms:.2f} ms, "
               f"max {ordered[-1] * 1000:.1f} ms, first {times[0] * 1000:.1f} ms over {len(times)} spans")
    print(figures)
    assert exporter.failures == 0 and exporter.spans_exported == 200, \
        f"{exporter.failures} failed exports, {exporter.spans_exported} spans exported; {warnings_.messages[:5]}"
    assert not warnings_.messages, f"the SDK logged warnings: {warnings_.messages[:10]}"
    assert median_ms <= 5, f"a lone export waits for its batch: {figures}"
    check_exactly_once(tmp_path / "otlpd.traces.jsonl", {service: ids}, daemon)
    wait_for_debug_lines(daemon, service, ids)
    assert daemon.stop() == 0


def run_sdk_processes(daemon, tmp_path: Path, count: int, rate: int, duration: float, prefix: str,
                      protocols=PROTOCOLS) -> list[dict]:
    """`count` processes, each an SDK with BatchSpanProcessor defaults at `rate` spans/s for
    `duration` s, started together; returns their reports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    go = tmp_path / f"go-{prefix}"
    children = []
    for i in range(count):
        protocol = protocols[i % len(protocols)]
        service = f"{prefix}-{i}-{protocol}"
        paths = {k: tmp_path / f"{prefix}-{i}.{k}" for k in ("report", "ready", "out")}
        argv = [sys.executable, __file__, "--child", "--service", service, "--protocol", protocol,
                "--grpc-port", str(daemon.grpc_port), "--http-port", str(daemon.http_port),
                "--rate", str(rate), "--duration", str(duration), "--report", str(paths["report"]),
                "--ready", str(paths["ready"]), "--go", str(go)]
        out = open(paths["out"], "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(Path(__file__).parent))
        children.append((service, proc, out, paths))
    try:
        def all_ready():
            for service, proc, _, paths in children:
                if proc.poll() is not None and not paths["ready"].exists():
                    raise AssertionError(f"{service} exited with {proc.returncode}:\n{paths['out'].read_text()}")
            return all(paths["ready"].exists() for *_, paths in children)

        wait_until(all_ready, 60, f"{count} SDK processes ready", interval=0.05)
        go.write_text("go")
        for service, proc, out, paths in children:
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{service} still running 60 s after go:\n{paths['out'].read_text()}")
            assert code == 0, f"{service} exited with {code}:\n{paths['out'].read_text()}"
    finally:
        for _, proc, out, _ in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
    return [json.loads(paths["report"].read_text()) for *_, paths in children]


def test_ten_sdk_processes_at_once(otlpd, tmp_path):
    """Ten processes, each an SDK with BatchSpanProcessor defaults at 1,000 spans/s for 3 s,
    half over gRPC, half over HTTP: every span of every process in the file exactly once."""
    daemon = start_default(otlpd, tmp_path)
    reports = run_sdk_processes(daemon, tmp_path, 10, 1000, 3, "shop-proc")
    for report in reports:
        print(describe(report))
    dropped = [describe(r) + f" logged {r['drops']}" for r in reports if r["drops"]]
    assert not dropped, "SDKs dropped spans:\n" + "\n".join(dropped)
    failed = [describe(r) for r in reports if r["failures"] or r["spans_exported"] != r["created"] or r["warnings"]]
    assert not failed, "SDKs failed exports or logged warnings:\n" + "\n".join(failed) + \
        f"\notlpd stderr:\n{daemon.stderr()[-3000:]}"
    assert sum(r["created"] for r in reports) == 30_000
    check_exactly_once(tmp_path / "otlpd.traces.jsonl", {r["service"]: r["span_ids"] for r in reports}, daemon)
    for r in reports:
        wait_for_debug_lines(daemon, r["service"], r["span_ids"])
    slow = [describe(r) for r in reports if r["achieved_rate"] < 0.9 * r["rate"]]
    assert not slow, "processes could not hold 1,000 spans/s:\n" + "\n".join(slow)
    assert daemon.stop() == 0


def test_four_sdk_processes_at_20000_spans_a_second_into_a_persistent_queue(otlpd, tmp_path):
    """20,000 spans/s in all from four SDK processes (BatchSpanProcessor defaults, 5,000 spans/s
    each, gRPC) through [batch] -> otlp_grpc with a persistent queue (fsync on) while the
    upstream is down: no SDK drops a span, and once the upstream starts every span reaches it
    exactly once. Four SDK processes at this rate take most of a 2-core machine: where one
    drops, the same four run again against the control (the SDK's encoder, no collector); if
    the control drops too, and otlpd answered promptly, the machine is what dropped (an xfail
    with the figures); if the control keeps up, otlpd is, and the test fails."""
    port = free_port()
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    forwarder = otlpd.start(persistent_forwarder_config(tmp_path, port))
    reports = run_sdk_processes(forwarder, tmp_path, 4, 5000, 3, "shop-queued-proc", protocols=("grpc",))
    for report in reports:
        print(describe(report))
    assert not [r for r in reports if r["failures"] or set(r["warnings"]) - set(r["drops"])], "\n".join(describe(r) for r in reports)
    total = sum(r["created"] for r in reports) / max(r["elapsed"] for r in reports)
    print(f"in all: {sum(r['created'] for r in reports)} spans at {total:.0f}/s")
    upstream = otlpd.start(base_config(upstream_dir, signals=("traces",), grpc={"endpoint": f"127.0.0.1:{port}"},
                                       exporters={"file": {"path": str(upstream_dir / "otlpd.jsonl")}}), workdir=upstream_dir)
    # Whatever the SDKs handed otlpd and got answered reaches the upstream exactly once.
    check_exactly_once(upstream_dir / "otlpd.jsonl", {r["service"]: r["exported_ids"] for r in reports}, forwarder, settle=30)
    assert forwarder.stop() == 0 and upstream.stop() == 0
    dropped = [r for r in reports if r["drops"] or r["spans_exported"] != r["created"]]
    if dropped:
        controls = run_sdk_processes(forwarder, tmp_path, 4, 5000, 3, "shop-queued-control", protocols=("encode-only",))
        figures = "\n".join(describe(r) for r in reports + controls)
        assert any(c["drops"] or c["spans_exported"] != c["created"] for c in controls), \
            f"otlpd made an SDK drop spans: the control (the same four SDKs, no collector) kept up\n{figures}"
        slow = [r for r in reports if r["answer_ms_median"] > MAX_MEDIAN_ANSWER_MS]
        assert not slow, f"otlpd answered slowly while SDKs dropped\n{figures}"
        pytest.xfail(f"four SDK processes at 5,000 spans/s each drop spans on this machine even without a collector; "
                     f"every span otlpd answered arrived once\n{figures}")
    assert total >= 0.9 * 20_000, f"the four processes made only {total:.0f} spans/s here"
