#!/usr/bin/env python3
"""Writes the benchmark's request payloads, built with the PyPI
opentelemetry-proto package (not with otlpd's own code):

  traces-512.pb / .grpc   512 spans, 10 string attributes (common keys, 20-char values), one event
  traces-10.pb  / .grpc   10 such spans (what an SDK's simple span processor sends)
  logs-512.pb   / .grpc   512 log records with 10 attributes
  metrics-512.pb / .grpc  512 gauge/sum/histogram data points

.pb is the bare ExportXServiceRequest (OTLP/HTTP body); .grpc adds gRPC's
5-byte frame header (uncompressed flag, big-endian length).
"""
import os
import random
import string
import struct
import sys

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

rng = random.Random(42)


def text(n=20):
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


# Keys an instrumented service sends (the attributes scenario's actions find
# db.statement and enduser.session.id on every span); values random.
ATTRIBUTE_KEYS = ["http.request.method", "http.route", "url.full", "server.address", "user.email", "user.id",
                  "db.statement", "net.peer.name", "http.response.status", "enduser.session.id"]


def attributes(n=10):
    return [common_pb2.KeyValue(key=ATTRIBUTE_KEYS[i], value=common_pb2.AnyValue(string_value=text()))
            for i in range(n)]


def resource(service):
    return resource_pb2.Resource(attributes=[
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service)),
        common_pb2.KeyValue(key="service.instance.id", value=common_pb2.AnyValue(string_value=text(36))),
        common_pb2.KeyValue(key="telemetry.sdk.language", value=common_pb2.AnyValue(string_value="python")),
        common_pb2.KeyValue(key="telemetry.sdk.version", value=common_pb2.AnyValue(string_value="1.45.2")),
    ])


def spans_request(count, service="bench-checkout"):
    now = 1_763_700_000_000_000_000
    spans = []
    for i in range(count):
        start = now + i * 1_000_000
        spans.append(trace_pb2.Span(
            trace_id=rng.randbytes(16), span_id=rng.randbytes(8), parent_span_id=rng.randbytes(8),
            name=f"GET /cart/{i % 17}", kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start, end_time_unix_nano=start + 12_300_000,
            attributes=attributes(),
            events=[trace_pb2.Span.Event(time_unix_nano=start + 1000, name="cache.miss",
                                         attributes=[common_pb2.KeyValue(key="key", value=common_pb2.AnyValue(string_value=text()))])],
            status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK)))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource(service),
        scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="bench", version="1.0"), spans=spans)])])


def logs_request(count, service="bench-checkout"):
    now = 1_763_700_000_000_000_000
    records = [logs_pb2.LogRecord(
        time_unix_nano=now + i, observed_time_unix_nano=now + i + 5, severity_number=logs_pb2.SEVERITY_NUMBER_INFO,
        severity_text="INFO", body=common_pb2.AnyValue(string_value=f"order {i} placed for {text(30)}"),
        attributes=attributes(), trace_id=rng.randbytes(16), span_id=rng.randbytes(8)) for i in range(count)]
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource(service),
        scope_logs=[logs_pb2.ScopeLogs(scope=common_pb2.InstrumentationScope(name="bench"), log_records=records)])])


def metrics_request(count, service="bench-checkout"):
    now = 1_763_700_000_000_000_000
    metrics = []
    per_metric = 16
    for m in range(count // per_metric):
        points_attrs = lambda j: [common_pb2.KeyValue(key="route", value=common_pb2.AnyValue(string_value=f"/r/{j}")),
                                  common_pb2.KeyValue(key="code", value=common_pb2.AnyValue(int_value=200 + j))]
        if m % 3 == 0:
            metrics.append(metrics_pb2.Metric(name=f"requests.{m}", unit="1", sum=metrics_pb2.Sum(
                aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True,
                data_points=[metrics_pb2.NumberDataPoint(attributes=points_attrs(j), start_time_unix_nano=now,
                                                         time_unix_nano=now + 10, as_int=1000 + j) for j in range(per_metric)])))
        elif m % 3 == 1:
            metrics.append(metrics_pb2.Metric(name=f"cpu.{m}", unit="1", gauge=metrics_pb2.Gauge(
                data_points=[metrics_pb2.NumberDataPoint(attributes=points_attrs(j), time_unix_nano=now + 10,
                                                         as_double=0.25 * j) for j in range(per_metric)])))
        else:
            metrics.append(metrics_pb2.Metric(name=f"latency.{m}", unit="ms", histogram=metrics_pb2.Histogram(
                aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
                data_points=[metrics_pb2.HistogramDataPoint(attributes=points_attrs(j), start_time_unix_nano=now,
                                                            time_unix_nano=now + 10, count=10, sum=123.5,
                                                            bucket_counts=[1, 2, 3, 4], explicit_bounds=[1.0, 5.0, 10.0],
                                                            min=0.5, max=20.0) for j in range(per_metric)])))
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource(service),
        scope_metrics=[metrics_pb2.ScopeMetrics(scope=common_pb2.InstrumentationScope(name="bench"), metrics=metrics)])])


def write(directory, name, message):
    body = message.SerializeToString()
    with open(os.path.join(directory, name + ".pb"), "wb") as f:
        f.write(body)
    with open(os.path.join(directory, name + ".grpc"), "wb") as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)
    return len(body)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "payloads")
    os.makedirs(directory, exist_ok=True)
    for name, message in [("traces-512", spans_request(512)), ("traces-10", spans_request(10)),
                          ("logs-512", logs_request(512)), ("metrics-512", metrics_request(512))]:
        size = write(directory, name, message)
        print(f"{name}: {size} bytes")


if __name__ == "__main__":
    main()
