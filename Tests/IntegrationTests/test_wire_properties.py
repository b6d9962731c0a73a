"""otlpd's fast paths held to general references, on requests made at
random (a fixed seed, so a failure repeats) with the PyPI opentelemetry-proto
package: every AnyValue kind nested in arrays and maps, unicode and control
characters, extreme numbers, empty and unset fields, every metric type.

- JSON out: each line the file exporter writes is, field for field, what
  protobuf's own JSON printer (with OTLP's hex ids) makes of that resource.
- Batch split: through `batch` with a small `send_batch_max_size`, the
  items written are exactly the items sent (as a multiset of resource,
  scope and item), however the requests were cut and merged.

Keyed attribute edits against the general path are a unit test
(AttributesProcessorTests, random lists and actions)."""
import base64
import collections
import json
import math
import random
import sys
from pathlib import Path

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

from otlpd_harness import base_config, grpc_export, read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OTLPDWireTests" / "Fixtures"))
from make_fixtures import to_hex_ids  # noqa: E402  the golden files' own conversion

REQUESTS = 60
TEXTS = ["", "checkout", "ünïcødé ✓", "quote \" backslash \\ slash /", "line\nbreak\ttab\r", "\u0000\u0001\u001f\u007f",
         "emoji 🚀", "<script>alert(1)</script>", "x" * 300, "\u2028\u2029"]


def any_value(rng: random.Random, depth: int = 0) -> common_pb2.AnyValue:
    kind = rng.choice(["string", "bool", "int", "double", "bytes", "array", "kvlist", "unset"] if depth < 3 else
                      ["string", "bool", "int", "double", "bytes", "unset"])
    value = common_pb2.AnyValue()
    if kind == "string":
        value.string_value = rng.choice(TEXTS)
    elif kind == "bool":
        value.bool_value = rng.random() < 0.5
    elif kind == "int":
        value.int_value = rng.choice([0, 1, -1, 2 ** 53 + 1, -(2 ** 63), 2 ** 63 - 1, rng.randint(-10 ** 12, 10 ** 12)])
    elif kind == "double":
        value.double_value = rng.choice([0.0, -0.0, 1.5, -2.25e-308, 1.7976931348623157e308, 5e-324, 0.1, 1e21, 123456789.125,
                                         rng.uniform(-1e6, 1e6)])
    elif kind == "bytes":
        value.bytes_value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
    elif kind == "array":
        value.array_value.values.extend(any_value(rng, depth + 1) for _ in range(rng.randrange(0, 4)))
    elif kind == "kvlist":
        value.kvlist_value.values.extend(key_value(rng, depth + 1) for _ in range(rng.randrange(0, 4)))
    return value


def key_value(rng: random.Random, depth: int = 0) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=rng.choice(TEXTS[:7] + ["service.name", "http.method"]), value=any_value(rng, depth))


def attributes(rng: random.Random) -> list:
    return [key_value(rng) for _ in range(rng.randrange(0, 5))]


def resource(rng: random.Random, index: int) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        attributes=[common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=f"svc-{index}"))] + attributes(rng),
        dropped_attributes_count=rng.choice([0, 0, 3]))


def scope(rng: random.Random) -> common_pb2.InstrumentationScope:
    return common_pb2.InstrumentationScope(name=rng.choice(TEXTS[:3]), version=rng.choice(["", "1.2.3"]), attributes=attributes(rng),
                                           dropped_attributes_count=rng.choice([0, 1]))


def ident(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(size))


def times(rng: random.Random) -> int:
    return rng.choice([0, 1, 1_763_700_000_000_000_000 + rng.randrange(10 ** 12), 2 ** 64 - 1])


def span(rng: random.Random) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=ident(rng, 16), span_id=ident(rng, 8), parent_span_id=rng.choice([b"", ident(rng, 8)]),
        trace_state=rng.choice(["", "k=v,x=y"]), flags=rng.choice([0, 1, 257]), name=rng.choice(TEXTS),
        kind=rng.randrange(0, 6), start_time_unix_nano=times(rng), end_time_unix_nano=times(rng), attributes=attributes(rng),
        dropped_attributes_count=rng.choice([0, 2]),
        events=[trace_pb2.Span.Event(time_unix_nano=times(rng), name=rng.choice(TEXTS), attributes=attributes(rng))
                for _ in range(rng.randrange(0, 3))],
        links=[trace_pb2.Span.Link(trace_id=ident(rng, 16), span_id=ident(rng, 8), attributes=attributes(rng), flags=rng.choice([0, 1]))
               for _ in range(rng.randrange(0, 2))],
        status=trace_pb2.Status(code=rng.randrange(0, 3), message=rng.choice(TEXTS[:4])))


def log_record(rng: random.Random) -> logs_pb2.LogRecord:
    return logs_pb2.LogRecord(
        time_unix_nano=times(rng), observed_time_unix_nano=times(rng), severity_number=rng.randrange(0, 25),
        severity_text=rng.choice(["", "INFO", "ERROR"]), body=any_value(rng), attributes=attributes(rng),
        flags=rng.choice([0, 1]), trace_id=rng.choice([b"", ident(rng, 16)]), span_id=rng.choice([b"", ident(rng, 8)]),
        event_name=rng.choice(["", "login"]))


def number_point(rng: random.Random) -> metrics_pb2.NumberDataPoint:
    point = metrics_pb2.NumberDataPoint(attributes=attributes(rng), start_time_unix_nano=times(rng), time_unix_nano=times(rng),
                                        flags=rng.choice([0, 1]))
    if rng.random() < 0.5:
        point.as_int = rng.choice([0, -5, 2 ** 63 - 1])
    else:
        point.as_double = rng.choice([0.0, 2.5, -1e-10])
    if rng.random() < 0.3:
        point.exemplars.append(metrics_pb2.Exemplar(time_unix_nano=times(rng), as_double=1.25, span_id=ident(rng, 8), trace_id=ident(rng, 16),
                                                    filtered_attributes=attributes(rng)))
    return point


def metric(rng: random.Random) -> metrics_pb2.Metric:
    out = metrics_pb2.Metric(name=rng.choice(TEXTS[1:4]), description=rng.choice(TEXTS[:3]), unit=rng.choice(["", "ms", "{request}"]),
                             metadata=attributes(rng))
    kind = rng.choice(["gauge", "sum", "histogram", "exponential", "summary"])
    if kind == "gauge":
        out.gauge.data_points.extend(number_point(rng) for _ in range(rng.randrange(1, 4)))
    elif kind == "sum":
        out.sum.data_points.extend(number_point(rng) for _ in range(rng.randrange(1, 4)))
        out.sum.aggregation_temporality = rng.randrange(0, 3)
        out.sum.is_monotonic = rng.random() < 0.5
    elif kind == "histogram":
        out.histogram.aggregation_temporality = rng.randrange(0, 3)
        for _ in range(rng.randrange(1, 3)):
            point = out.histogram.data_points.add(attributes=attributes(rng), time_unix_nano=times(rng), count=rng.randrange(0, 10 ** 6),
                                                  bucket_counts=[rng.randrange(100) for _ in range(3)], explicit_bounds=[0.5, 10.0])
            if rng.random() < 0.5:
                point.sum, point.min, point.max = 12.5, -1.0, 100.0
    elif kind == "exponential":
        out.exponential_histogram.aggregation_temporality = rng.randrange(0, 3)
        point = out.exponential_histogram.data_points.add(attributes=attributes(rng), count=7, scale=rng.randrange(-10, 20),
                                                          zero_count=rng.randrange(3), zero_threshold=rng.choice([0.0, 1e-9]))
        point.positive.offset = rng.randrange(-5, 5)
        point.positive.bucket_counts.extend([1, 2, 3])
        point.negative.bucket_counts.extend([rng.randrange(4)])
    else:
        point = out.summary.data_points.add(attributes=attributes(rng), count=3, sum=9.75, time_unix_nano=times(rng))
        point.quantile_values.add(quantile=0.5, value=3.0)
        point.quantile_values.add(quantile=0.99, value=7.5)
    return out


def request(rng: random.Random, signal: str, first_service: int):
    resources = range(first_service, first_service + rng.randrange(1, 4))
    if signal == "traces":
        return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
            trace_pb2.ResourceSpans(resource=resource(rng, i), schema_url=rng.choice(["", "https://opentelemetry.io/schemas/1.21.0"]),
                                    scope_spans=[trace_pb2.ScopeSpans(scope=scope(rng), spans=[span(rng) for _ in range(rng.randrange(1, 6))])
                                                 for _ in range(rng.randrange(1, 3))]) for i in resources])
    if signal == "logs":
        return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[
            logs_pb2.ResourceLogs(resource=resource(rng, i), scope_logs=[
                logs_pb2.ScopeLogs(scope=scope(rng), log_records=[log_record(rng) for _ in range(rng.randrange(1, 6))])
                for _ in range(rng.randrange(1, 3))]) for i in resources])
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[
        metrics_pb2.ResourceMetrics(resource=resource(rng, i), scope_metrics=[
            metrics_pb2.ScopeMetrics(scope=scope(rng), metrics=[metric(rng) for _ in range(rng.randrange(1, 5))])
            for _ in range(rng.randrange(1, 3))]) for i in resources])


RESOURCE_FIELDS = {"traces": ("resource_spans", "resourceSpans"), "metrics": ("resource_metrics", "resourceMetrics"),
                   "logs": ("resource_logs", "resourceLogs")}


def expected_lines(message, signal: str) -> list[dict]:
    """One line per resource, as protobuf's JSON printer writes it with OTLP's hex ids."""
    field, _ = RESOURCE_FIELDS[signal]
    lines = []
    for entry in getattr(message, field):
        single = type(message)()
        getattr(single, field).append(entry)
        lines.append(to_hex_ids(json_format.MessageToDict(single, use_integers_for_enums=True)))
    return lines


def send_all(daemon, signal: str, seed: int) -> list:
    rng = random.Random(seed)
    sent = []
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        for index in range(REQUESTS):
            message = request(rng, signal, first_service=index * 10)
            grpc_export(channel, message, signal)
            sent.append(message)
    return sent


def normalised(node):
    """Numbers as the JSON printer and otlpd may both write them: 1.0 and 1 alike; -0.0 as 0.0."""
    if isinstance(node, dict):
        return {k: normalised(v) for k, v in node.items()}
    if isinstance(node, list):
        return [normalised(v) for v in node]
    if isinstance(node, float) and node == int(node) and not math.isinf(node) and abs(node) < 2 ** 53:
        return int(node)
    return node


def test_json_out_is_what_protobufs_printer_makes(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path))
    for number, signal in enumerate(["traces", "metrics", "logs"]):
        sent = send_all(daemon, signal, seed=1000 + number)
        written = read_jsonl(tmp_path / f"out.{signal}.jsonl")
        expected = [line for message in sent for line in expected_lines(message, signal)]
        assert len(written) == len(expected), (signal, len(written), len(expected))
        for index, (got, want) in enumerate(zip(written, expected)):
            assert normalised(got) == normalised(want), f"{signal} line {index}:\n got  {json.dumps(got)[:2000]}\n want {json.dumps(want)[:2000]}"
    assert daemon.stop() == 0


def items(lines: list[dict], signal: str) -> collections.Counter:
    """Each item with its resource and scope, as JSON text: a multiset that cutting and merging must keep."""
    _, key = RESOURCE_FIELDS[signal]
    scopes, kind = {"traces": ("scopeSpans", "spans"), "metrics": ("scopeMetrics", "metrics"), "logs": ("scopeLogs", "logRecords")}[signal]
    out = collections.Counter()
    for line in lines:
        for entry in line[key]:
            resource_text = json.dumps(normalised({k: v for k, v in entry.items() if k != scopes}), sort_keys=True)
            for scope_entry in entry.get(scopes, []):
                scope_text = json.dumps(normalised({k: v for k, v in scope_entry.items() if k != kind}), sort_keys=True)
                for item in scope_entry.get(kind, []):
                    for part in metric_points(item) if signal == "metrics" else [item]:
                        out[(resource_text, scope_text, json.dumps(normalised(part), sort_keys=True))] += 1
    return out


def metric_points(metric: dict) -> list[dict]:
    """A metric's data points, each with the metric around it: batch may split a metric between batches."""
    for data in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
        if data in metric:
            shape = {k: v for k, v in metric[data].items() if k != "dataPoints"}
            return [{**{k: v for k, v in metric.items() if k != data}, data: {**shape, "dataPoint": point}}
                    for point in metric[data].get("dataPoints", [])]
    return [metric]


def test_batch_split_keeps_every_item_with_its_resource_and_scope(otlpd, tmp_path):
    config = base_config(tmp_path, processors={"batch": {"send_batch_size": 5, "send_batch_max_size": 7, "timeout": "50ms"}})
    daemon = otlpd.start(config)
    for number, signal in enumerate(["traces", "metrics", "logs"]):
        sent = send_all(daemon, signal, seed=2000 + number)
        written = read_jsonl(tmp_path / f"out.{signal}.jsonl")
        expected = [line for message in sent for line in expected_lines(message, signal)]
        got, want = items(written, signal), items(expected, signal)
        assert got == want, f"{signal}: {sum((got - want).values())} items extra, {sum((want - got).values())} missing"
        if signal != "metrics":
            # Cut to at most 7 items per batch: no line holds more.
            _, key = RESOURCE_FIELDS[signal]
            assert max(sum(len(s.get("spans", s.get("logRecords", []))) for e in line[key] for s in e.get("scopeSpans", e.get("scopeLogs", [])))
                       for line in written) <= 7
    assert daemon.stop() == 0
