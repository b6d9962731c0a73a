#!/usr/bin/env python3
"""Golden files for the OTLP/JSON encoder and decoder, made with the PyPI
opentelemetry-proto package and protobuf's own JSON printer, so that
otlpd's codecs are checked against an implementation we did not write.

For each NAME:
  NAME.binpb       the serialized Export*ServiceRequest
  NAME.json        its OTLP/JSON: protobuf's JSON mapping with the OTLP
                   exceptions (trace/span ids as hex, enums as integers)
  NAME.input.json  the same data written the other ways OTLP/JSON receivers
                   accept (snake_case keys, enum names, numbers for 64-bit
                   ints, unknown keys): decoding it must give NAME.binpb's data
Run: python3 make_fixtures.py [--out DIR]   (default: this folder; `make test`
writes them to a temporary folder and compares, so a hand-edited golden file fails)
"""
import base64
import json
import math
import os
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2 as c
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

HEX_FIELDS = {"traceId", "spanId", "parentSpanId"}


def kv(key, **value):
    return c.KeyValue(key=key, value=c.AnyValue(**value))


def res(service, *extra):
    return resource_pb2.Resource(attributes=[kv("service.name", string_value=service), *extra])


def traces():
    span = trace_pb2.Span(
        trace_id=bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"), span_id=bytes.fromhex("00f067aa0ba902b7"),
        parent_span_id=bytes.fromhex("53995c3f42cd8ad8"), trace_state="congo=t61rcWkgMzE", flags=0x301,
        name="GET /cart", kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1763719200123456789, end_time_unix_nano=1763719200135756789,
        attributes=[
            kv("http.method", string_value="GET"), kv("http.status_code", int_value=200),
            kv("big", int_value=-9223372036854775808), kv("ratio", double_value=0.25), kv("ok", bool_value=True),
            kv("blob", bytes_value=b"\x00\xff\x10binary"),
            kv("list", array_value=c.ArrayValue(values=[c.AnyValue(string_value="a"), c.AnyValue(int_value=2)])),
            kv("map", kvlist_value=c.KeyValueList(values=[kv("inner", string_value="x"), kv("deep", kvlist_value=c.KeyValueList(values=[kv("z", double_value=-1.5)]))])),
            kv("unicode", string_value="ünïcødé ✓ 日本 🚀"), kv("escapes", string_value='quote " backslash \\ newline \n tab \t bell \x07 del \x7f'),
            kv("nan", double_value=math.nan), kv("inf", double_value=math.inf), kv("ninf", double_value=-math.inf),
            kv("empty", string_value=""),
        ],
        dropped_attributes_count=3,
        events=[trace_pb2.Span.Event(time_unix_nano=1763719200124000000, name="exception",
                                     attributes=[kv("exception.message", string_value="boom")], dropped_attributes_count=1)],
        dropped_events_count=2,
        links=[trace_pb2.Span.Link(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                                   span_id=bytes.fromhex("b7ad6b7169203331"), trace_state="a=b",
                                   attributes=[kv("link.kind", string_value="follows")], flags=1)],
        dropped_links_count=4,
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="payment failed"))
    plain = trace_pb2.Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), name="SELECT", kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                           start_time_unix_nano=1, end_time_unix_nano=2, status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(
            resource=res("checkout", kv("service.instance.id", string_value="i-1")),
            scope_spans=[trace_pb2.ScopeSpans(scope=c.InstrumentationScope(name="io.opentelemetry.checkout", version="1.2.3",
                                                                           attributes=[kv("scope.attr", bool_value=False)], dropped_attributes_count=1),
                                              spans=[span, plain], schema_url="https://opentelemetry.io/schemas/1.21.0")],
            schema_url="https://opentelemetry.io/schemas/1.24.0"),
        trace_pb2.ResourceSpans(resource=res("cart"), scope_spans=[trace_pb2.ScopeSpans(spans=[plain])]),
    ])


def metrics():
    attrs = [kv("route", string_value="/cart")]
    ex = m.Exemplar(filtered_attributes=[kv("user", string_value="u1")], time_unix_nano=5, as_double=1.5,
                    span_id=bytes.fromhex("00f067aa0ba902b7"), trace_id=bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"))
    metrics = [
        m.Metric(name="cpu", description="cpu use", unit="1", gauge=m.Gauge(data_points=[
            m.NumberDataPoint(attributes=attrs, time_unix_nano=10, as_double=0.75, flags=1),
            m.NumberDataPoint(time_unix_nano=11, as_int=-42, exemplars=[ex])])),
        m.Metric(name="requests", unit="{request}", sum=m.Sum(aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True,
                                                          data_points=[m.NumberDataPoint(attributes=attrs, start_time_unix_nano=1, time_unix_nano=10, as_int=9007199254740993)]),
                 metadata=[kv("meta", string_value="data")]),
        m.Metric(name="latency", unit="ms", histogram=m.Histogram(aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA, data_points=[
            m.HistogramDataPoint(attributes=attrs, start_time_unix_nano=1, time_unix_nano=10, count=6, sum=0.0,
                                 bucket_counts=[1, 2, 3], explicit_bounds=[0.5, 2.5], exemplars=[ex], min=0.1, max=9.5),
            m.HistogramDataPoint(time_unix_nano=12, count=0)])),
        m.Metric(name="size", unit="By", exponential_histogram=m.ExponentialHistogram(aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA, data_points=[
            m.ExponentialHistogramDataPoint(attributes=attrs, start_time_unix_nano=1, time_unix_nano=10, count=7, sum=1234.5, scale=-3,
                                            zero_count=1, positive=m.ExponentialHistogramDataPoint.Buckets(offset=-2, bucket_counts=[1, 0, 4]),
                                            negative=m.ExponentialHistogramDataPoint.Buckets(offset=5, bucket_counts=[1]),
                                            min=-3.0, max=900.0, zero_threshold=1e-9)])),
        m.Metric(name="rpc.duration", unit="s", summary=m.Summary(data_points=[
            m.SummaryDataPoint(attributes=attrs, start_time_unix_nano=1, time_unix_nano=10, count=3, sum=4.5,
                               quantile_values=[m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=1.0),
                                                m.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=3.25)])])),
    ]
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[
        m.ResourceMetrics(resource=res("checkout"), scope_metrics=[m.ScopeMetrics(scope=c.InstrumentationScope(name="meter"), metrics=metrics)]),
        m.ResourceMetrics(resource=resource_pb2.Resource(), scope_metrics=[m.ScopeMetrics(metrics=[metrics[0]])]),
    ])


def logs():
    records = [
        logs_pb2.LogRecord(time_unix_nano=1763719200123456789, observed_time_unix_nano=1763719200123456790,
                           severity_number=logs_pb2.SEVERITY_NUMBER_ERROR, severity_text="ERROR",
                           body=c.AnyValue(string_value="payment failed\nfor order 42"),
                           attributes=[kv("order.id", int_value=42)], dropped_attributes_count=1, flags=1,
                           trace_id=bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"), span_id=bytes.fromhex("00f067aa0ba902b7"),
                           event_name="payment.failed"),
        logs_pb2.LogRecord(time_unix_nano=5, body=c.AnyValue(kvlist_value=c.KeyValueList(values=[kv("k", string_value="v"), kv("n", bool_value=True)]))),
        logs_pb2.LogRecord(body=c.AnyValue(array_value=c.ArrayValue(values=[c.AnyValue(double_value=2.5), c.AnyValue(bytes_value=b"hi")]))),
    ]
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[
        logs_pb2.ResourceLogs(resource=res("checkout"), scope_logs=[logs_pb2.ScopeLogs(scope=c.InstrumentationScope(name="logger"), log_records=records)]),
    ])


def to_hex_ids(node):
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in HEX_FIELDS else to_hex_ids(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [to_hex_ids(v) for v in node]
    return node


def snake(name):
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


def input_variant(node, depth=0):
    """The same data as a lenient OTLP/JSON writer might send it."""
    if isinstance(node, dict):
        out = {}
        for i, (k, v) in enumerate(node.items()):
            key = snake(k) if (depth + i) % 2 == 0 else k
            if k in ("kind", "code", "severityNumber", "aggregationTemporality") and isinstance(v, int):
                v = ENUM_NAMES[k][v]
            elif k in ("startTimeUnixNano", "timeUnixNano", "count") and isinstance(v, str) and int(v) < 2**53:
                v = int(v)
            out[key] = input_variant(v, depth + 1)
        if depth == 2:
            out["someFutureField"] = {"nested": [1, 2, {"x": None}]}
        return out
    if isinstance(node, list):
        return [input_variant(v, depth + 1) for v in node]
    return node


ENUM_NAMES = {
    "kind": {v.number: v.name for v in trace_pb2.Span.SpanKind.DESCRIPTOR.values},
    "code": {v.number: v.name for v in trace_pb2.Status.StatusCode.DESCRIPTOR.values},
    "severityNumber": {v.number: v.name for v in logs_pb2.SeverityNumber.DESCRIPTOR.values},
    "aggregationTemporality": {v.number: v.name for v in m.AggregationTemporality.DESCRIPTOR.values},
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        here = sys.argv[2]
    for name, message in [("traces", traces()), ("metrics", metrics()), ("logs", logs())]:
        with open(os.path.join(here, name + ".binpb"), "wb") as f:
            f.write(message.SerializeToString())
        expected = to_hex_ids(json_format.MessageToDict(message, use_integers_for_enums=True))
        with open(os.path.join(here, name + ".json"), "w") as f:
            json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
            f.write("\n")
        with open(os.path.join(here, name + ".input.json"), "w") as f:
            json.dump(input_variant(expected), f, indent=1, ensure_ascii=True)
            f.write("\n")
        print(name, len(message.SerializeToString()), "bytes")


if __name__ == "__main__":
    main()
