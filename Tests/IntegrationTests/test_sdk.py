"""The OpenTelemetry Python SDK's own OTLP exporters (gRPC and HTTP/protobuf)
send traces, metrics and logs; the file exporter's lines must hold exactly
what the SDK sent, one resource per line, greppable by service name."""
import json
import logging
import subprocess
import warnings

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry._logs import SeverityNumber

from otlpd_harness import (assert_one_resource_per_line, attrs, base_config, read_jsonl, records, service_of,
                           spans_by_id, to_otlp_json)

PROTOCOLS = ["grpc", "http"]


def make_exporter(signal_name, protocol, daemon, compression=None):
    """The SDK's OTLP exporter for `signal_name` over `protocol`, pointed at `daemon`."""
    if protocol == "grpc":
        from grpc import Compression
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        cls = {"traces": OTLPSpanExporter, "metrics": OTLPMetricExporter, "logs": OTLPLogExporter}[signal_name]
        return cls(endpoint=f"http://127.0.0.1:{daemon.grpc_port}", insecure=True, timeout=5,
                   compression=Compression.Gzip if compression == "gzip" else None)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    cls = {"traces": OTLPSpanExporter, "metrics": OTLPMetricExporter, "logs": OTLPLogExporter}[signal_name]
    return cls(endpoint=daemon.http_url(f"/v1/{signal_name}"), timeout=5,
               compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)


def strip_defaults(obj):
    """OTLP/JSON may omit or write fields at their default value; compare without them."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = strip_defaults(v)
            if v in (0, "", "0", [], {}, None):  # 0 also matches 0.0 and False
                continue
            out[k] = v
        return out
    if isinstance(obj, list):
        return [strip_defaults(v) for v in obj]
    return obj


def record_spans(service):
    """Makes a parent and a child span with every attribute type, an event and an error status."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "it"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("it.sdk", "2.1")
    with tracer.start_as_current_span("GET /cart", kind=trace_api.SpanKind.SERVER,
                                      attributes={"http.method": "GET", "http.status_code": 500, "ratio": 0.25,
                                                  "cached": False, "tags": ["a", "b"]}) as parent:
        with tracer.start_as_current_span("SELECT cart", kind=trace_api.SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql", "rows": 7}) as child:
            child.add_event("cache.miss", {"key": "cart:42"})
        parent.set_status(trace_api.Status(trace_api.StatusCode.ERROR, "boom"))
    provider.shutdown()
    return memory.get_finished_spans()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_traces(otlpd, tmp_path, protocol):
    daemon = otlpd.start(base_config(tmp_path))
    spans = record_spans(f"checkout-{protocol}")
    exporter = make_exporter("traces", protocol, daemon)
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS, f"SDK {protocol} export failed; otlpd stderr:\n{daemon.stderr()}"
    finally:
        exporter.shutdown()

    # Acknowledged means written: the lines are there as soon as the export returned.
    lines = read_jsonl(tmp_path / "out.traces.jsonl")
    assert_one_resource_per_line(lines, "traces", "out.traces.jsonl")
    found = spans_by_id(lines)
    expected = {span["spanId"]: (rs, ss, span) for rs_json in [to_otlp_json(encode_spans(spans))]
                for rs in rs_json["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]}
    assert set(found) == set(expected), f"span ids in file {sorted(found)} != sent {sorted(expected)}"
    for sdk_span in spans:
        span_id = format(sdk_span.context.span_id, "016x")
        resource, scope, span = found[span_id]
        assert span["traceId"] == format(sdk_span.context.trace_id, "032x"), "trace id differs"
        assert span["name"] == sdk_span.name
        assert service_of(resource) == f"checkout-{protocol}"
        assert attrs(resource["resource"]["attributes"])["deployment.environment"] == "it"
        assert scope["scope"]["name"] == "it.sdk" and scope["scope"].get("version") == "2.1"
        assert attrs(span.get("attributes")) == {k: (list(v) if isinstance(v, tuple) else v)
                                                 for k, v in sdk_span.attributes.items()}, "span attributes differ"
        assert span["startTimeUnixNano"] == str(sdk_span.start_time), "64-bit times are decimal strings"
        assert span["endTimeUnixNano"] == str(sdk_span.end_time)
        if sdk_span.parent is not None:
            assert span["parentSpanId"] == format(sdk_span.parent.span_id, "016x")
        # The whole span, field by field, as OTLP/JSON of what the SDK encoded.
        assert strip_defaults(span) == strip_defaults(expected[span_id][2]), f"span {span_id} differs from what was sent"
        assert strip_defaults(resource["resource"]) == strip_defaults(expected[span_id][0]["resource"])
    by_name = {span["name"]: span for _, _, span in found.values()}
    assert by_name["GET /cart"]["kind"] == 2, "SERVER kind as the integer 2"
    assert by_name["SELECT cart"]["kind"] == 3, "CLIENT kind as the integer 3"
    assert by_name["GET /cart"]["status"] == {"code": 2, "message": "boom"}
    assert [e["name"] for e in by_name["SELECT cart"]["events"]] == ["cache.miss"]
    assert attrs(by_name["SELECT cart"]["events"][0]["attributes"]) == {"key": "cart:42"}
    assert daemon.stop() == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_metrics(otlpd, tmp_path, protocol):
    daemon = otlpd.start(base_config(tmp_path))
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": f"metrics-{protocol}"}), metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation(max_size=20))])
    meter = provider.get_meter("it.metrics", "1.0")
    counter = meter.create_counter("orders", unit="1", description="orders placed")
    counter.add(3, {"region": "eu"})
    counter.add(4, {"region": "eu"})
    counter.add(5, {"region": "us"})
    meter.create_observable_gauge("queue.depth", callbacks=[lambda options: [Observation(17.5, {"queue": "q1"})]])
    latency = meter.create_histogram("latency", unit="ms")
    for value in (1, 4, 9, 40, 700):
        latency.record(value, {"route": "/cart"})
    size = meter.create_histogram("payload.size", unit="By")
    for value in (1, 2, 3, 4, 100, 1000):
        size.record(value)
    data = reader.get_metrics_data()
    exporter = make_exporter("metrics", protocol, daemon)
    try:
        assert exporter.export(data) == MetricExportResult.SUCCESS, f"SDK {protocol} export failed; stderr:\n{daemon.stderr()}"
    finally:
        exporter.shutdown()
        provider.shutdown()

    lines = read_jsonl(tmp_path / "out.metrics.jsonl")
    assert_one_resource_per_line(lines, "metrics", "out.metrics.jsonl")
    metrics = {m["name"]: (res, m) for res, _, m in records(lines, "metrics")}
    assert set(metrics) == {"orders", "queue.depth", "latency", "payload.size"}, f"metric names: {sorted(metrics)}"
    for res, _ in metrics.values():
        assert service_of(res) == f"metrics-{protocol}"

    orders = metrics["orders"][1]
    assert "sum" in orders, f"orders is a sum: {orders}"
    assert orders["sum"]["isMonotonic"] is True
    assert orders["sum"]["aggregationTemporality"] == 2, "cumulative as the integer 2"
    by_region = {attrs(p["attributes"])["region"]: p for p in orders["sum"]["dataPoints"]}
    assert by_region["eu"]["asInt"] == "7" and by_region["us"]["asInt"] == "5", "sum values (int64 as strings)"

    gauge = metrics["queue.depth"][1]
    assert "gauge" in gauge
    (point,) = gauge["gauge"]["dataPoints"]
    assert point["asDouble"] == 17.5 and attrs(point["attributes"]) == {"queue": "q1"}

    hist = metrics["latency"][1]["histogram"]["dataPoints"][0]
    assert hist["count"] == "5" and hist["sum"] == 754.0
    assert attrs(hist["attributes"]) == {"route": "/cart"}
    assert sum(int(c) for c in hist["bucketCounts"]) == 5
    assert hist["min"] == 1.0 and hist["max"] == 700.0

    exp = metrics["payload.size"][1]
    assert "exponentialHistogram" in exp, f"payload.size is an exponential histogram: {list(exp)}"
    point = exp["exponentialHistogram"]["dataPoints"][0]
    assert point["count"] == "6" and point["sum"] == 1110.0
    assert sum(int(c) for c in point["positive"]["bucketCounts"]) == 6

    # Everything, field by field, as OTLP/JSON of what the SDK encoded.
    sent = to_otlp_json(encode_metrics(data))
    sent_metrics = {m["name"]: m for rm in sent["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"]}
    for name, (_, metric) in metrics.items():
        assert strip_defaults(metric) == strip_defaults(sent_metrics[name]), f"metric {name} differs from what was sent"
    assert daemon.stop() == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_logs(otlpd, tmp_path, protocol):
    daemon = otlpd.start(base_config(tmp_path))
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": f"logs-{protocol}"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("it.logs", "3.0")
    tracer_provider = TracerProvider()
    with tracer_provider.get_tracer("t").start_as_current_span("handler") as span:
        logger.emit(body="payment declined", severity_number=SeverityNumber.ERROR, severity_text="ERROR",
                    attributes={"order.id": 42, "amount": 9.5})
        context = span.get_span_context()
    logger.emit(body="cart viewed", severity_number=SeverityNumber.INFO, severity_text="INFO",
                attributes={"user": "u1"})
    # Through the standard library's logging too, as applications do.
    from opentelemetry.sdk._logs import LoggingHandler
    std = logging.getLogger(f"it.std.{protocol}")
    std.propagate = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=provider)
    std.addHandler(handler)
    std.warning("disk %s almost full", "/var")
    std.removeHandler(handler)
    provider.force_flush()
    batch = memory.get_finished_logs()
    assert len(batch) == 3
    exporter = make_exporter("logs", protocol, daemon)
    try:
        assert exporter.export(batch) == LogRecordExportResult.SUCCESS, f"SDK {protocol} export failed:\n{daemon.stderr()}"
    finally:
        exporter.shutdown()
        provider.shutdown()

    lines = read_jsonl(tmp_path / "out.logs.jsonl")
    assert_one_resource_per_line(lines, "logs", "out.logs.jsonl")
    logs = {rec["body"]["stringValue"]: (res, rec) for res, _, rec in records(lines, "logs")}
    assert set(logs) == {"payment declined", "cart viewed", "disk /var almost full"}, f"log bodies: {sorted(logs)}"
    res, declined = logs["payment declined"]
    assert service_of(res) == f"logs-{protocol}"
    assert declined["severityNumber"] == 17 and declined["severityText"] == "ERROR"
    assert attrs(declined["attributes"]) == {"order.id": 42, "amount": 9.5}
    assert declined["traceId"] == format(context.trace_id, "032x")
    assert declined["spanId"] == format(context.span_id, "016x")
    assert logs["disk /var almost full"][1]["severityNumber"] == 13
    sent = to_otlp_json(encode_logs(batch))
    sent_logs = {r["body"]["stringValue"]: r for rl in sent["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]}
    for body, (_, record) in logs.items():
        assert strip_defaults(record) == strip_defaults(sent_logs[body]), f"log record {body!r} differs from what was sent"
    assert daemon.stop() == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_gzip_compression(otlpd, tmp_path, protocol):
    """The SDK exporters' gzip compression option."""
    daemon = otlpd.start(base_config(tmp_path))
    spans = record_spans(f"gzip-{protocol}")
    exporter = make_exporter("traces", protocol, daemon, compression="gzip")
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS, f"gzip export failed:\n{daemon.stderr()}"
    finally:
        exporter.shutdown()
    found = spans_by_id(read_jsonl(tmp_path / "out.traces.jsonl"))
    assert set(found) == {format(s.context.span_id, "016x") for s in spans}


def test_grep_finds_exactly_one_services_lines(otlpd, tmp_path):
    """`grep checkout out.traces.jsonl` finds every line of checkout and nothing else, also when
    one request carries several services and services are interleaved over both protocols."""
    import grpc
    from otlpd_harness import grpc_export, trace_request
    daemon = otlpd.start(base_config(tmp_path))
    sent = {"checkout": set(), "payments": set()}
    for round_ in range(3):
        for service, protocol in (("checkout", "grpc"), ("payments", "http"), ("payments", "grpc"), ("checkout", "http")):
            spans = record_spans(service)
            exporter = make_exporter("traces", protocol, daemon)
            try:
                assert exporter.export(spans) == SpanExportResult.SUCCESS
            finally:
                exporter.shutdown()
            sent[service] |= {format(s.context.span_id, "016x") for s in spans}
    # One request with both services (and a third) in it.
    request = trace_request(resources=[("payments", 2), ("checkout", 3), ("inventory", 1)], name="POST /pay")
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    for rs in request.resource_spans:
        service = rs.resource.attributes[0].value.string_value
        if service in sent:
            sent[service] |= {s.span_id.hex() for ss in rs.scope_spans for s in ss.spans}

    path = tmp_path / "out.traces.jsonl"
    lines = read_jsonl(path)
    assert_one_resource_per_line(lines, "traces", path.name)
    for service, other in (("checkout", "payments"), ("payments", "checkout")):
        grep = subprocess.run(["grep", "-n", service, str(path)], capture_output=True, text=True)
        grepped = grep.stdout.splitlines()
        line_numbers = {int(g.split(":", 1)[0]) for g in grepped}
        expected_numbers = {i for i, line in enumerate(lines, 1) if service_of(line["resourceSpans"][0]) == service}
        assert line_numbers == expected_numbers, f"grep {service}: lines {sorted(line_numbers)}, expected {sorted(expected_numbers)}"
        for number in line_numbers:
            assert other not in path.read_text().splitlines()[number - 1], f"line {number} of {service} mentions {other}"
        grepped_ids = set()
        for g in grepped:
            grepped_ids |= set(spans_by_id([json.loads(g.split(":", 1)[1])]))
        assert grepped_ids == sent[service], f"grep {service} finds spans {len(grepped_ids)}, sent {len(sent[service])}"
