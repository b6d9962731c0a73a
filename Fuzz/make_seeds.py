#!/usr/bin/env python3
"""Seed corpora for otlpd's fuzz targets: Fuzz/corpus/TARGET/, a handful of
small files each, from real payloads and real peers, never from otlpd's own
encoders:

  wire      Export*ServiceRequests: the golden fixtures (PyPI
            opentelemetry-proto) and what the OpenTelemetry Python SDK's
            OTLP encoders make of real spans, metrics and log records
  json      the golden OTLP/JSON fixtures, and the SDK's requests in OTLP/JSON
  grpc      gRPC messages as clients frame them: plain, gzip, deflate, zstd,
            a small body that inflates past the limit, a cut frame
  sniffer   what real clients send on a connection (grpcio, the SDK's gRPC and
            HTTP exporters, curl over HTTP/1.1, HTTP/2 and h2c upgrade),
            captured by a proxy in front of a running otlpd
  h2client  what that otlpd sent back on those connections (HTTP/2 and HTTP/1.1)
  segments  persistent-queue segment files laid out as SegmentLog writes them
            (whole, cut short by a kill, one record failing its checksum)
  config    the committed configs under config/, and two that use ${env:...} and `#set`

sniffer and h2client inputs start with one control byte (see
Sources/OTLPDFuzz/SnifferHarness.swift and H2ClientHarness.swift): the
listener's role and the sizes of the pieces the bytes arrive in.

Run with the repo's venv, with a built otlpd:
  .venv/bin/python Fuzz/make_seeds.py [--otlpd .build/release/otlpd] [--out Fuzz/corpus]
Ids, timestamps and HPACK state vary from run to run: the seeds are committed
as made once, not checked for staleness.
"""
import argparse
import gzip
import importlib.util
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "OTLPDWireTests" / "Fixtures"
MAX_SEED = 8 << 10

# --------------------------------------------------------------------------
# Requests made by the OpenTelemetry Python SDK


class CountingIds:
    """Trace and span ids from a counter, so that reruns give the same ids."""

    def __init__(self):
        self.next = 0x0102030405060708

    def generate_span_id(self):
        self.next += 1
        return self.next

    def generate_trace_id(self):
        self.next += 1
        return self.next << 64 | 0x4BF92F3577B34DA6

    def is_trace_id_random(self):
        return False


def sdk_spans():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "service.version": "1.4.2", "host.name": "web-1"}),
        id_generator=CountingIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fuzz.seeds", "0.1.0")
    t0 = 1_765_000_000_000_000_000
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, start_time=t0,
                                      attributes={"http.method": "GET", "http.status_code": 500, "http.route": "/cart",
                                                  "retry": True, "ratio": 0.25, "tags": ["a", "b"]},
                                      end_on_exit=False) as root:
        child = tracer.start_span("SELECT cart", kind=SpanKind.CLIENT, start_time=t0 + 1_000_000,
                                  attributes={"db.system": "postgresql", "db.rows": 3},
                                  links=[Link(root.get_span_context(), {"link.kind": "follows"})])
        child.add_event("retry", {"attempt": 2}, timestamp=t0 + 2_000_000)
        child.end(end_time=t0 + 5_000_000)
        root.set_status(Status(StatusCode.ERROR, "payment failed"))
        root.record_exception(ValueError("card declined"), timestamp=t0 + 6_000_000)
        root.end(end_time=t0 + 12_300_000)
    provider.shutdown()
    return exporter.get_finished_spans()


def sdk_traces_request():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    return encode_spans(sdk_spans())


def sdk_metrics_request():
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "checkout"}), metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation(max_size=20))])
    meter = provider.get_meter("fuzz.seeds", "0.1.0")
    requests = meter.create_counter("http.requests", unit="1", description="requests served")
    latency = meter.create_histogram("http.latency", unit="ms")
    sizes = meter.create_histogram("payload.size", unit="By")
    active = meter.create_up_down_counter("http.active")
    meter.create_observable_gauge("cpu.utilization", callbacks=[lambda options: [Observation(0.75, {"cpu": "0"}), Observation(-1.5, {"cpu": "1"})]])
    for route, ms in (("/cart", 12.5), ("/pay", 250.0), ("/cart", 3.0)):
        requests.add(1, {"http.route": route})
        latency.record(ms, {"http.route": route})
        sizes.record(ms * 100, {"http.route": route})
    active.add(3)
    active.add(-1)
    request = encode_metrics(reader.get_metrics_data())
    provider.shutdown()
    return request


def sdk_logs_request():
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("fuzz.seeds")
    logger.propagate = False
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    tracer_spans = sdk_spans()
    logger.warning("payment failed for cart %s", "c-42", extra={"cart.items": 3, "user.id": "u-7"})
    logger.info("ünïcødé ✓ 日本 🚀 with a tab\tand a quote \"")
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("lookup failed")
    logger.removeHandler(handler)
    provider.shutdown()
    del tracer_spans
    return encode_logs(exporter.get_finished_logs())


def to_otlp_json(message):
    """OTLP/JSON: protobuf's JSON mapping with hex ids and integer enums, as make_fixtures.py writes it."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    node = json_format.MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(fixtures.to_hex_ids(node), separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------
# gRPC framing and compression


def frame(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout


def deflate(data: bytes) -> bytes:
    return zlib.compress(data, 6)


# --------------------------------------------------------------------------
# Persistent queue segments (SegmentLog.swift: length, CRC-32C of what
# follows it, append time, item count, all big-endian, then the payload)


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def segment_record(payload: bytes, items: int, appended_at: int) -> bytes:
    stamp = struct.pack(">qI", appended_at, items)
    return struct.pack(">II", len(payload), crc32c(stamp + payload)) + stamp + payload


# --------------------------------------------------------------------------
# Capturing real peers: a proxy in front of otlpd that keeps both directions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CapturingProxy:
    """Listens on a port, forwards each connection to `upstream`, and keeps
    what each side sent: `take()` returns [(client_bytes, server_bytes)] of
    the connections since the last call, after closing them."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            record = {"client": bytearray(), "server": bytearray(), "sockets": (client, server)}
            with self.lock:
                self.connections.append(record)
            threading.Thread(target=self._pump, args=(client, server, record["client"]), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, record["server"]), daemon=True).start()

    @staticmethod
    def _pump(source, destination, kept):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    destination.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            kept.extend(data)
            try:
                destination.sendall(data)
            except OSError:
                return

    def take(self, settle: float = 0.5):
        time.sleep(settle)
        with self.lock:
            taken, self.connections = self.connections, []
        for record in taken:
            for s in record["sockets"]:
                try:
                    s.close()
                except OSError:
                    pass
        return [(bytes(r["client"]), bytes(r["server"])) for r in taken if r["client"]]

    def close(self):
        self.listener.close()


class Otlpd:
    """otlpd with an OTLP receiver on two fresh ports and every signal into nop."""

    def __init__(self, binary: str, workdir: Path):
        self.grpc_port, self.http_port = free_port(), free_port()
        config = workdir / "otlpd.yaml"
        config.write_text(f"""receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{self.grpc_port}
      http:
        endpoint: 127.0.0.1:{self.http_port}
exporters:
  nop: {{}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [nop]}}
    metrics: {{receivers: [otlp], exporters: [nop]}}
    logs: {{receivers: [otlp], exporters: [nop]}}
  telemetry:
    metrics:
      address: 127.0.0.1:0
""")
        self.stderr = open(workdir / "otlpd.stderr", "w+b")
        self.proc = subprocess.Popen([binary, "--config", str(config)], stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, cwd=str(workdir))
        deadline = time.monotonic() + 20
        while b"otlpd is ready" not in (workdir / "otlpd.stderr").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("otlpd did not start:\n" + (workdir / "otlpd.stderr").read_text())
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.stderr.close()


def capture_peers(binary: str, requests: dict, workdir: Path):
    """Returns {name: (client_bytes, server_bytes)} for each real client's exchange with otlpd."""
    otlpd = Otlpd(binary, workdir)
    grpc_proxy = CapturingProxy(otlpd.grpc_port)
    http_proxy = CapturingProxy(otlpd.http_port)
    captured = {}

    def keep(name, proxy):
        exchanges = proxy.take()
        if not exchanges:
            raise SystemExit(f"nothing captured for {name}")
        captured[name] = exchanges[0]

    try:
        # grpcio, a plain and a gzip-compressed Export.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_proxy.port}") as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(requests["traces"], timeout=10)
        keep("grpcio-traces", grpc_proxy)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_proxy.port}", compression=grpc.Compression.Gzip) as channel:
            metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(requests["metrics"], timeout=10)
        keep("grpcio-metrics-gzip", grpc_proxy)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_proxy.port}") as channel:
            try:
                channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Nope")(b"\x0a\x00", timeout=10)
            except grpc.RpcError:
                pass
        keep("grpcio-unknown-method", grpc_proxy)

        # The SDK's own exporters, gRPC and HTTP/protobuf.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCSpanExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter
        spans = sdk_spans()
        exporter = GRPCSpanExporter(endpoint=f"127.0.0.1:{grpc_proxy.port}", insecure=True, timeout=10)
        exporter.export(spans)
        exporter.shutdown()
        keep("sdk-grpc-traces", grpc_proxy)
        exporter = HTTPSpanExporter(endpoint=f"http://127.0.0.1:{http_proxy.port}/v1/traces", timeout=10)
        exporter.export(spans)
        exporter.shutdown()
        keep("sdk-http-traces", http_proxy)

        # curl: OTLP/JSON over HTTP/1.1, protobuf over HTTP/2 (prior knowledge and the h2c upgrade), a gzip'd chunked body.
        body = workdir / "body"

        def curl(name, data, *args, path="/v1/logs"):
            body.write_bytes(data)
            subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "10", *args, "--data-binary", f"@{body}",
                            f"http://127.0.0.1:{http_proxy.port}{path}"], check=True)
            keep(name, http_proxy)

        curl("curl-http1-json", (FIXTURES / "logs.json").read_bytes(), "-H", "Content-Type: application/json")
        curl("curl-h2-protobuf", requests["logs"].SerializeToString(), "--http2-prior-knowledge",
             "-H", "Content-Type: application/x-protobuf")
        curl("curl-h2c-upgrade", requests["logs"].SerializeToString(), "--http2",
             "-H", "Content-Type: application/x-protobuf")
        curl("curl-http1-gzip-chunked", gzip.compress(requests["traces"].SerializeToString(), mtime=0),
             "-H", "Content-Type: application/x-protobuf", "-H", "Content-Encoding: gzip", "-H", "Transfer-Encoding: chunked",
             path="/v1/traces")
        curl("curl-http1-not-found", b"{}", "-H", "Content-Type: application/json", path="/v1/nothing")
    finally:
        grpc_proxy.close()
        http_proxy.close()
        otlpd.stop()
    return captured


# --------------------------------------------------------------------------


def write(out: Path, target: str, name: str, data: bytes):
    if len(data) > MAX_SEED:
        raise SystemExit(f"{target}/{name}: {len(data)} bytes, more than the {MAX_SEED} a seed may have")
    folder = out / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otlpd", default=str(ROOT / ".build" / "release" / "otlpd"))
    parser.add_argument("--out", default=str(ROOT / "Fuzz" / "corpus"))
    args = parser.parse_args()
    out = Path(args.out)
    for target in ("wire", "json", "grpc", "sniffer", "h2client", "segments", "config"):
        shutil.rmtree(out / target, ignore_errors=True)

    requests = {
        "traces": sdk_traces_request(),
        "metrics": sdk_metrics_request(),
        "logs": sdk_logs_request(),
    }
    golden = {signal: (FIXTURES / f"{signal}.binpb").read_bytes() for signal in ("traces", "metrics", "logs")}

    # wire: the golden requests and the SDK's, and an empty request.
    for signal in ("traces", "metrics", "logs"):
        write(out, "wire", f"golden-{signal}.binpb", golden[signal])
        write(out, "wire", f"sdk-{signal}.binpb", requests[signal].SerializeToString())
    write(out, "wire", "empty.binpb", b"")

    # json: the golden OTLP/JSON (canonical and the lenient spellings) and the SDK's requests.
    for signal in ("traces", "metrics", "logs"):
        write(out, "json", f"golden-{signal}.json", (FIXTURES / f"{signal}.json").read_bytes())
        write(out, "json", f"golden-{signal}.input.json", (FIXTURES / f"{signal}.input.json").read_bytes())
        write(out, "json", f"sdk-{signal}.json", to_otlp_json(requests[signal]))

    # grpc: messages as clients frame them.
    traces = requests["traces"].SerializeToString()
    write(out, "grpc", "plain.grpc", frame(traces))
    write(out, "grpc", "gzip.grpc", frame(gzip.compress(traces, mtime=0), compressed=True))
    write(out, "grpc", "deflate.grpc", frame(deflate(golden["metrics"]), compressed=True))
    write(out, "grpc", "zstd.grpc", frame(zstd(golden["logs"]), compressed=True))
    write(out, "grpc", "gzip-past-the-limit.grpc", frame(gzip.compress(b"\0" * (300 << 10), mtime=0), compressed=True))
    write(out, "grpc", "gzip-body.gz", gzip.compress(golden["traces"], mtime=0))
    write(out, "grpc", "cut-short.grpc", frame(traces)[:40])

    with tempfile.TemporaryDirectory() as scratch:
        captured = capture_peers(args.otlpd, requests, Path(scratch))
    # sniffer: control byte (bit 0: 0 gRPC port, 1 HTTP port; bits 1-7: piece sizes, 0 = one piece), then the client's bytes.
    sniffer_controls = {
        "grpcio-traces": 0x00, "grpcio-metrics-gzip": 0x0E, "grpcio-unknown-method": 0x40, "sdk-grpc-traces": 0x02,
        "sdk-http-traces": 0x01, "curl-http1-json": 0x21, "curl-h2-protobuf": 0x01, "curl-h2c-upgrade": 0x07,
        "curl-http1-gzip-chunked": 0x05, "curl-http1-not-found": 0x01,
    }
    for name, control in sniffer_controls.items():
        client, _ = captured[name]
        write(out, "sniffer", f"{name}.bin", bytes([control]) + client)
    # h2client: control byte (piece sizes), then the server's bytes: otlpd's answers over HTTP/2, and an HTTP/1.1 answer.
    for name, control in {"grpcio-traces": 0x00, "grpcio-unknown-method": 0x03, "sdk-grpc-traces": 0x10, "curl-h2-protobuf": 0x01,
                          "sdk-http-traces": 0x00}.items():
        _, server = captured[name]
        write(out, "h2client", f"{name}.bin", bytes([control]) + server)

    # segments: records as the queue appends them (a request as received, its items, when).
    t0 = 1_765_000_000_000_000_000
    records = [segment_record(golden["traces"], 3, t0), segment_record(requests["logs"].SerializeToString(), 3, t0 + 1),
               segment_record(golden["metrics"], 9, t0 + 2)]
    write(out, "segments", "whole.log", b"".join(records))
    write(out, "segments", "cut-by-kill.log", b"".join(records[:2]) + records[2][:100])
    bad = bytearray(records[1])
    bad[40] ^= 0xFF
    write(out, "segments", "checksum-failure.log", records[0] + bytes(bad) + records[2])
    write(out, "segments", "lost-framing.log", records[0] + b"\xff\xff\xff\xff" + records[1][4:])
    write(out, "segments", "empty-payload.log", segment_record(b"", 0, t0))

    # config: the committed configs, and one with ${env:...} and --set overrides.
    for path in sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / "config" / "examples").glob("*.yaml")):
        write(out, "config", path.name, path.read_bytes())
    write(out, "config", "env-and-set.yaml", b"""#set exporters.debug.verbosity=detailed
#set service::telemetry::logs::level=${env:LEVEL}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:OTLPD_ENDPOINT}
      http:
        endpoint: localhost:4318
        cors:
          allowed_origins: ["https://*.example.com"]
processors:
  batch:
    send_batch_size: 512
    timeout: 200ms
  attributes/scrub:
    actions:
      - {key: user.email, action: hash}
      - {key: env, value: prod, action: upsert}
      - {key: db.statement, pattern: "^(?P<verb>\\\\w+)", action: extract}
  memory_limiter:
    limit_mib: 512
    check_interval: 1s
exporters:
  debug: {verbosity: basic}
  file:
    path: ${env:HOME}/otlpd-*-$${literal}.jsonl
    group_by: {enabled: true, resource_attribute: service.name}
    rotation: {max_megabytes: 10, max_backups: 3}
  otlp:
    endpoint: upstream:4317
    sending_queue: {storage: file_storage}
extensions:
  file_storage: {directory: /tmp/otlpd-queue}
service:
  extensions: [file_storage]
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter, attributes/scrub, batch], exporters: [debug, file, otlp]}
    logs/x: {receivers: [otlp], exporters: [debug]}
""")
    for target in sorted(p.name for p in out.iterdir() if p.is_dir()):
        files = list((out / target).iterdir())
        print(f"{target}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
