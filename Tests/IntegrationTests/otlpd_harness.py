"""Harness for otlpd's integration tests: starts the real binary, reads its
logs and output files, builds OTLP payloads with the PyPI opentelemetry-proto
package (never with otlpd's own code), and talks to it with real clients
(grpcio, curl).
"""
from __future__ import annotations

import base64
import gzip
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

READY_LINE = "otlpd is ready"
START_TIMEOUT = 20.0

# --------------------------------------------------------------------------
# Polling


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02):
    """Polls `predicate` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# A minimal YAML writer (block style, the way users write otlpd configs)


def _yaml_scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:\-${}*@]+", text) and not text.startswith(("*", "@", "{", "-")) \
            and text not in ("true", "false", "null", "yes", "no", "on", "off"):
        return text
    return json.dumps(text)


def to_yaml(obj: Any, indent: int = 0) -> str:
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict):
                if value:
                    lines.append(f"{pad}{key}:")
                    lines.append(to_yaml(value, indent + 1))
                else:
                    lines.append(f"{pad}{key}: {{}}")
            elif isinstance(value, list):
                if all(not isinstance(v, (dict, list)) for v in value):
                    lines.append(f"{pad}{key}: [{', '.join(_yaml_scalar(v) for v in value)}]")
                else:
                    lines.append(f"{pad}{key}:")
                    for item in value:
                        body = to_yaml(item, indent + 2).lstrip()
                        lines.append(f"{pad}  - {body}")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(value)}")
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(line for line in lines if line != "")


# --------------------------------------------------------------------------
# Configs

SIGNALS = ("traces", "metrics", "logs")

# Endpoints on which the OS picks the ports.
GRPC_ENDPOINT = "127.0.0.1:0"
HTTP_ENDPOINT = "127.0.0.1:0"


def base_config(workdir: Path, *, exporters: dict | None = None, processors: dict | None = None,
                pipeline_processors: list | None = None, pipeline_exporters: list | None = None,
                grpc: dict | None = None, http: dict | None = None, signals: Iterable[str] = SIGNALS,
                shutdown_timeout: str | None = None) -> dict:
    """A config with the otlp receiver on OS-chosen ports and, by default, one
    `file` exporter at WORKDIR/out.jsonl fed by all three signals (so it writes
    out.traces.jsonl, out.metrics.jsonl and out.logs.jsonl)."""
    grpc_section = {"endpoint": GRPC_ENDPOINT}
    grpc_section.update(grpc or {})
    http_section = {"endpoint": HTTP_ENDPOINT}
    http_section.update(http or {})
    if exporters is None:
        exporters = {"file": {"path": str(workdir / "out.jsonl")}}
    pipeline = {"receivers": ["otlp"]}
    if processors:
        pipeline["processors"] = pipeline_processors if pipeline_processors is not None else list(processors)
    pipeline["exporters"] = pipeline_exporters if pipeline_exporters is not None else list(exporters)
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": grpc_section, "http": http_section}}},
    }
    if processors:
        config["processors"] = processors
    config["exporters"] = exporters
    # The telemetry server on an OS-chosen port too, so tests never clash on 8888.
    service: dict = {"pipelines": {s: dict(pipeline) for s in signals},
                     "telemetry": {"metrics": {"address": "127.0.0.1:0"}}}
    if shutdown_timeout:
        service["shutdown_timeout"] = shutdown_timeout
    config["service"] = service
    return config


# --------------------------------------------------------------------------
# The daemon


@dataclass
class LogLine:
    raw: str
    time: str
    level: str
    message: str
    fields: dict[str, str]


def parse_log_line(line: str) -> LogLine | None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 3:
        return None
    fields = {}
    for part in parts[3:]:
        key, sep, value = part.partition("=")
        if not sep:
            continue
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        fields[key] = value
    return LogLine(raw=line, time=parts[0], level=parts[1], message=parts[2], fields=fields)


class Otlpd:
    """One otlpd process. stdout and stderr go to files in its work dir."""

    def __init__(self, binary: str, workdir: Path, args: list[str], env: dict | None = None,
                 cwd: Path | None = None, name: str = "otlpd", stdout_pipe: bool = False):
        self.binary = binary
        # A pipe nobody reads: once its 64 KiB are full, writes to stdout block.
        self.stdout_pipe = stdout_pipe
        self.dir = workdir
        self.args = args
        self.env = env
        self.cwd = cwd or workdir
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self.telemetry_port: int | None = None
        self.returncode: int | None = None

    # -- lifecycle

    def start(self, wait_ready: bool = True) -> "Otlpd":
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("OTEL_"):
                del env[key]
        env.update(self.env or {})
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self._stderr_offset = self.stderr_path.stat().st_size
        stdout = subprocess.PIPE if self.stdout_pipe else self._out
        self.proc = subprocess.Popen([self.binary, *self.args], stdout=stdout, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=str(self.cwd), env=env)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr_since_start()
            if READY_LINE in text:
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"otlpd exited with {self.proc.returncode} before it was ready; stderr:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"otlpd did not log '{READY_LINE}' within {timeout}s; stderr:\n{text}")
            time.sleep(0.01)
        for line in self.log_lines(since_start=True):
            if line.message == "listening":
                port = int(line.fields["endpoint"].rsplit(":", 1)[1])
                if line.fields.get("protocol") == "OTLP/gRPC":
                    self.grpc_port = port
                elif line.fields.get("protocol") == "OTLP/HTTP":
                    self.http_port = port
            elif line.message == "serving self-telemetry":
                self.telemetry_port = int(line.fields["endpoint"].rsplit(":", 1)[1])

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Sends `sig` and returns the exit code; fails if the process outlives `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"otlpd did not exit within {timeout}s of signal {sig}; stderr:\n{self.stderr()}")
        finally:
            self._out.close()
            self._err.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return self.returncode

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f is not None and not f.closed:
                f.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- output

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stderr_since_start(self) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(self._stderr_offset)
            return f.read().decode(errors="replace")

    def log_lines(self, since_start: bool = True) -> list[LogLine]:
        text = self.stderr_since_start() if since_start else self.stderr()
        result = []
        for line in text.splitlines():
            parsed = parse_log_line(line)
            if parsed:
                result.append(parsed)
        return result

    def logs_matching(self, message_part: str, **fields: str) -> list[LogLine]:
        return [line for line in self.log_lines()
                if message_part in line.message and all(line.fields.get(k) == v for k, v in fields.items())]

    def wait_for_log(self, message_part: str, timeout: float = 5.0, **fields: str) -> list[LogLine]:
        return wait_until(lambda: self.logs_matching(message_part, **fields), timeout,
                          f"a log line containing {message_part!r} with {fields} in:\n{self.stderr()}")

    # -- addresses

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def http_url(self, path: str = "/v1/traces", port: int | None = None, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{port or self.http_port}{path}"

    def telemetry_url(self, path: str = "/metrics") -> str:
        assert self.telemetry_port, "this otlpd serves no self-telemetry"
        return f"http://127.0.0.1:{self.telemetry_port}{path}"


class OtlpdFactory:
    def __init__(self, binary: str, base: Path):
        self.binary = binary
        self.base = base
        self.started: list[Otlpd] = []
        self._count = itertools.count()

    def write_config(self, config: dict | str, name: str = "config.yaml", workdir: Path | None = None) -> Path:
        path = (workdir or self.base) / name
        path.write_text(config if isinstance(config, str) else to_yaml(config) + "\n")
        return path

    def start(self, config: dict | str | None = None, *, configs: list | None = None, args: Iterable[str] = (),
              env: dict | None = None, cwd: Path | None = None, wait_ready: bool = True,
              workdir: Path | None = None, stdout_pipe: bool = False) -> Otlpd:
        workdir = workdir or self.base
        index = next(self._count)
        argv: list[str] = []
        for i, c in enumerate(configs if configs is not None else ([config] if config is not None else [])):
            path = c if isinstance(c, Path) else self.write_config(c, f"config-{index}-{i}.yaml", workdir)
            argv += ["--config", str(path)]
        argv += list(args)
        daemon = Otlpd(self.binary, workdir, argv, env=env, cwd=cwd, name=f"otlpd-{index}", stdout_pipe=stdout_pipe)
        self.started.append(daemon)
        return daemon.start(wait_ready=wait_ready)

    def close(self):
        for daemon in self.started:
            daemon.ensure_stopped()


def run_otlpd(binary: str, *args: str, env: dict | None = None, cwd: Path | None = None,
              timeout: float = 20) -> subprocess.CompletedProcess:
    """Runs a one-shot otlpd command (validate, print-config, components, version)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env or {})
    return subprocess.run([binary, *args], capture_output=True, text=True, env=full_env,
                          cwd=str(cwd) if cwd else None, timeout=timeout)


# --------------------------------------------------------------------------
# Reading output files


def read_jsonl(path: Path) -> list[dict]:
    """Every line of an OTLP/JSON file, each parsed; fails on a line that is not one JSON object."""
    if not Path(path).exists():
        return []
    return parse_jsonl(Path(path).read_bytes(), str(path))


def parse_jsonl(data: bytes, what: str = "file") -> list[dict]:
    result = []
    text = data.decode("utf-8")
    if text and not text.endswith("\n"):
        # The file exporter may be in the middle of a write; only complete lines count.
        text = text[: text.rfind("\n") + 1]
    for number, line in enumerate(text.splitlines(), 1):
        try:
            obj = json.loads(line)
        except ValueError as error:
            raise AssertionError(f"{what}:{number} is not a JSON object ({error}): {line[:200]!r}")
        assert isinstance(obj, dict), f"{what}:{number} is not a JSON object: {line[:200]!r}"
        result.append(obj)
    return result


RESOURCE_KEYS = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
SCOPE_KEYS = {"traces": "scopeSpans", "metrics": "scopeMetrics", "logs": "scopeLogs"}
ITEM_KEYS = {"traces": "spans", "metrics": "metrics", "logs": "logRecords"}


def any_value(value: dict) -> Any:
    """An OTLP/JSON AnyValue as a Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attrs(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def attrs(key_values: list | None) -> dict:
    return {kv["key"]: any_value(kv.get("value", {})) for kv in (key_values or [])}


def service_of(resource_entry: dict) -> str | None:
    return attrs(resource_entry.get("resource", {}).get("attributes")).get("service.name")


def records(lines: list[dict], signal_name: str) -> list[tuple[dict, dict, dict]]:
    """(resource entry, scope entry, item) for every span / metric / log record in `lines`."""
    out = []
    for line in lines:
        for resource in line.get(RESOURCE_KEYS[signal_name], []):
            for scope in resource.get(SCOPE_KEYS[signal_name], []):
                for item in scope.get(ITEM_KEYS[signal_name], []):
                    out.append((resource, scope, item))
    return out


def spans_by_id(lines: list[dict]) -> dict[str, tuple[dict, dict, dict]]:
    return {span["spanId"]: (res, scope, span) for res, scope, span in records(lines, "traces")}


def span_ids_in(lines: list[dict]) -> list[str]:
    return [span.get("spanId", "") for _, _, span in records(lines, "traces")]


def assert_one_resource_per_line(lines: list[dict], signal_name: str, what: str = "file"):
    key = RESOURCE_KEYS[signal_name]
    for number, line in enumerate(lines, 1):
        assert list(line.keys()) == [key], f"{what}:{number}: expected only key {key!r}, got {list(line.keys())}"
        assert len(line[key]) == 1, f"{what}:{number}: expected exactly one resource per line, got {len(line[key])}"


def read_length_prefixed(data: bytes, message_type) -> list:
    """Parses a `format: proto` file: 4-byte big-endian length + message bytes, repeated."""
    out = []
    offset = 0
    while offset < len(data):
        assert offset + 4 <= len(data), f"truncated length prefix at byte {offset} of {len(data)}"
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        offset += 4
        assert offset + length <= len(data), f"record at byte {offset} claims {length} bytes, only {len(data) - offset} left"
        message = message_type()
        message.ParseFromString(data[offset:offset + length])
        out.append(message)
        offset += length
    return out


# --------------------------------------------------------------------------
# Payloads (opentelemetry-proto)

_id_counter = itertools.count(1)
_id_lock = threading.Lock()
_RUN_SALT = os.getpid() & 0xFFFF


def new_span_id() -> bytes:
    with _id_lock:
        n = next(_id_counter)
    return struct.pack(">HHI", 0xA5A5, _RUN_SALT, n)


def new_trace_id() -> bytes:
    with _id_lock:
        n = next(_id_counter)
    return struct.pack(">QQ", 0x7E57_0000_0000_0000 | _RUN_SALT, n)


def kv(key: str, value: Any) -> common_pb2.KeyValue:
    if isinstance(value, bool):
        v = common_pb2.AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = common_pb2.AnyValue(int_value=value)
    elif isinstance(value, float):
        v = common_pb2.AnyValue(double_value=value)
    else:
        v = common_pb2.AnyValue(string_value=str(value))
    return common_pb2.KeyValue(key=key, value=v)


def resource(service: str | None, **extra) -> resource_pb2.Resource:
    attributes = []
    if service is not None:
        attributes.append(kv("service.name", service))
    attributes += [kv(k, v) for k, v in extra.items()]
    return resource_pb2.Resource(attributes=attributes)


NOW_NS = 1_763_700_000_000_000_000


def make_spans(count: int, name: str = "GET /cart", attribute_size: int = 0) -> list[trace_pb2.Span]:
    trace_id = new_trace_id()
    spans = []
    for i in range(count):
        start = NOW_NS + i * 1_000_000
        attributes = [kv("http.route", f"/cart/{i}"), kv("index", i)]
        if attribute_size:
            attributes.append(kv("padding", "p" * attribute_size))
        spans.append(trace_pb2.Span(
            trace_id=trace_id, span_id=new_span_id(), name=f"{name} {i}", kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start, end_time_unix_nano=start + 12_300_000, attributes=attributes,
            status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK)))
    return spans


def trace_request(service: str | None = "checkout", count: int = 3, *, name: str = "GET /cart",
                  attribute_size: int = 0, resources: list | None = None) -> trace_service_pb2.ExportTraceServiceRequest:
    """One resource (service) with `count` spans, or several: resources=[(service, count), ...]."""
    resources = resources or [(service, count)]
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(
            resource=resource(svc),
            scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="it", version="1.0"),
                                              spans=make_spans(n, name=name, attribute_size=attribute_size))])
        for svc, n in resources])


def request_span_ids(request: trace_service_pb2.ExportTraceServiceRequest) -> list[str]:
    return [span.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def metrics_request(service: str = "checkout") -> metrics_service_pb2.ExportMetricsServiceRequest:
    point_attrs = [kv("route", "/cart")]
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource(service),
        scope_metrics=[metrics_pb2.ScopeMetrics(scope=common_pb2.InstrumentationScope(name="it"), metrics=[
            metrics_pb2.Metric(name="requests", unit="1", sum=metrics_pb2.Sum(
                aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True,
                data_points=[metrics_pb2.NumberDataPoint(attributes=point_attrs, start_time_unix_nano=NOW_NS,
                                                         time_unix_nano=NOW_NS + 10, as_int=42)])),
            metrics_pb2.Metric(name="cpu.load", unit="1", gauge=metrics_pb2.Gauge(
                data_points=[metrics_pb2.NumberDataPoint(attributes=point_attrs, time_unix_nano=NOW_NS + 10,
                                                         as_double=0.75)])),
            metrics_pb2.Metric(name="latency", unit="ms", histogram=metrics_pb2.Histogram(
                aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
                data_points=[metrics_pb2.HistogramDataPoint(attributes=point_attrs, start_time_unix_nano=NOW_NS,
                                                            time_unix_nano=NOW_NS + 10, count=10, sum=123.5,
                                                            bucket_counts=[1, 2, 3, 4], explicit_bounds=[1.0, 5.0, 10.0])])),
        ])])])


def logs_request(service: str = "checkout", count: int = 2) -> logs_service_pb2.ExportLogsServiceRequest:
    trace_id = new_trace_id()
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource(service),
        scope_logs=[logs_pb2.ScopeLogs(scope=common_pb2.InstrumentationScope(name="it"), log_records=[
            logs_pb2.LogRecord(time_unix_nano=NOW_NS + i, observed_time_unix_nano=NOW_NS + i,
                               severity_number=logs_pb2.SEVERITY_NUMBER_WARN, severity_text="WARN",
                               body=common_pb2.AnyValue(string_value=f"payment {i} declined"),
                               attributes=[kv("order.id", i)], trace_id=trace_id, span_id=new_span_id())
            for i in range(count)])])])


REQUEST_TYPES = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
RESPONSE_TYPES = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
GRPC_PATHS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}

_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def _hex_ids(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_FIELDS and isinstance(v, str) else _hex_ids(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hex_ids(v) for v in obj]
    return obj


def to_otlp_json(message) -> dict:
    """OTLP/JSON as the OTLP spec writes it: lowerCamelCase, hex ids, enums as integers."""
    return _hex_ids(json_format.MessageToDict(message, use_integers_for_enums=True))


def grpc_frame(body: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", 1 if compressed else 0, len(body)) + body


# --------------------------------------------------------------------------
# gRPC


def grpc_export(channel: grpc.Channel, request, signal_name: str = "traces", *, timeout: float = 10,
                compression=None, with_call: bool = False):
    method = channel.unary_unary(GRPC_PATHS[signal_name], request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=RESPONSE_TYPES[signal_name].FromString)
    if with_call:
        return method.with_call(request, timeout=timeout, compression=compression)
    return method(request, timeout=timeout, compression=compression)


def grpc_raw_call(channel: grpc.Channel, path: str, body: bytes, *, timeout: float = 10):
    """Sends raw bytes as the request message; returns (response bytes, call) or raises grpc.RpcError."""
    method = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    return method.with_call(body, timeout=timeout)


def rpc_status_details(error: grpc.RpcError):
    """The google.rpc.Status of an error's `grpc-status-details-bin` trailer, or None."""
    from google.rpc import status_pb2
    for key, value in (error.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


# --------------------------------------------------------------------------
# curl


@dataclass
class CurlResult:
    returncode: int
    statuses: list[int]
    http_versions: list[str]
    local_ports: list[int]
    headers: str
    body: bytes
    verbose: str

    @property
    def status(self) -> int:
        return self.statuses[-1] if self.statuses else 0

    def header(self, name: str) -> str | None:
        """The last value of response header `name` (last response block)."""
        value = None
        for line in self.headers.splitlines():
            key, sep, rest = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                value = rest.strip()
        return value


def curl(*args: str, data: bytes | None = None, workdir: Path, timeout: float = 30) -> CurlResult:
    """Runs curl with `args` (URLs included; '--next' separates transfers); `data` is POSTed from a file
    (in the first transfer). Per-transfer status, HTTP version and local port come from -w."""
    stamp = time.monotonic_ns()
    segments = [[]]
    for arg in args:
        if arg == "--next":
            segments.append([])
        else:
            segments[-1].append(arg)
    if data is not None:
        data_file = workdir / f"curl-data-{stamp}"
        data_file.write_bytes(data)
        segments[0] = ["--data-binary", f"@{data_file}", *segments[0]]
    argv = ["curl", "-sS", "-v"]
    header_files, body_files = [], []
    for index, segment in enumerate(segments):
        if index:
            argv.append("--next")
        header_files.append(workdir / f"curl-headers-{stamp}-{index}")
        body_files.append(workdir / f"curl-body-{stamp}-{index}")
        argv += ["-D", str(header_files[-1]), "-o", str(body_files[-1]),
                 "-w", "\\n@@curl %{http_code} %{http_version} %{local_port}@@\\n", *segment]
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    statuses, versions, ports = [], [], []
    for match in re.finditer(rb"@@curl (\d+) (\S+) (\d*)@@", proc.stdout):
        statuses.append(int(match.group(1)))
        versions.append(match.group(2).decode())
        ports.append(int(match.group(3)) if match.group(3) else 0)
    headers = "".join(f.read_text(errors="replace") for f in header_files if f.exists())
    body = body_files[-1].read_bytes() if body_files[-1].exists() else b""
    return CurlResult(proc.returncode, statuses, versions, ports, headers, body, proc.stderr.decode(errors="replace"))


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


def zstd_bytes(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------
# nghttp (nghttp2's client): HTTP/2 where curl 7.88 falls short (it cannot reuse an h2c
# prior-knowledge connection, curl/curl#10634, and fails on an early response to an upload
# ended by RST_STREAM(NO_ERROR), which RFC 9113 8.1 allows, curl/curl#22984).


@dataclass
class NghttpResult:
    returncode: int
    statuses: list[int]
    headers: list[dict]
    body: bytes
    verbose: str

    @property
    def status(self) -> int:
        return self.statuses[-1] if self.statuses else 0

    def header(self, name: str) -> str | None:
        return self.headers[-1].get(name.lower()) if self.headers else None


def nghttp(*urls: str, data: bytes | None = None, headers: Iterable[str] = (), workdir: Path,
           timeout: float = 30) -> NghttpResult:
    """Requests `urls` as streams of one h2c connection; the body is that of the last URL."""
    argv = ["nghttp"]
    for header in headers:
        argv += ["-H", header]
    if data is not None:
        data_file = workdir / f"nghttp-data-{time.monotonic_ns()}"
        data_file.write_bytes(data)
        argv += ["-d", str(data_file)]
    verbose = subprocess.run([*argv, "-v", "-n", *urls], capture_output=True, timeout=timeout)
    text = verbose.stdout.decode(errors="replace") + verbose.stderr.decode(errors="replace")
    streams: dict[str, dict] = {}
    for stream, key, value in re.findall(r"recv \(stream_id=(\d+)\) ([^:\s][^:]*|:status): (.*)", text):
        streams.setdefault(stream, {})[key.lower()] = value.strip()
    ordered = [streams[k] for k in sorted(streams, key=int)]
    statuses = [int(h[":status"]) for h in ordered if ":status" in h]
    body = subprocess.run([*argv, urls[-1]], capture_output=True, timeout=timeout).stdout
    return NghttpResult(verbose.returncode, statuses, ordered, body, text)
