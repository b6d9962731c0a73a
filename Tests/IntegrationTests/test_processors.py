"""The attributes, resource and debuglog processors in the real binary: the
Python SDK's exporters send, the file exporter's lines show what the
processors did, and the debuglog lines what passed through."""
import hashlib
import json
import re

import pytest
import requests
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otlpd_harness import (attrs, base_config, kv, logs_request, metrics_request, read_jsonl, records, run_otlpd,
                           service_of, trace_request, wait_until)
from test_sdk import make_exporter

ACTIONS = [
    {"key": "deployment.environment", "value": "prod", "action": "insert"},
    {"key": "user.email", "action": "hash"},
    {"key": "http.url", "pattern": r"^https?://(?P<url_host>[^/]+)(?P<url_path>/[^?]*)", "action": "extract"},
    {"key": "http.status_code", "converted_type": "int", "action": "convert"},
    {"key": "route.copy", "from_attribute": "http.route", "action": "upsert"},
    {"key": "db.statement", "value": "redacted", "action": "update"},
    {"key": "password", "action": "delete"},
    {"pattern": "^secret\\.", "action": "delete"},
]


def sdk_spans(service, name="GET /cart"):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("it.attributes")
    with tracer.start_as_current_span(name, kind=trace_api.SpanKind.SERVER, attributes={
        "user.email": "john.doe@example.com", "http.url": "https://shop.example.com/cart/42?x=1",
        "http.status_code": "503", "http.route": "/cart/{id}", "db.statement": "SELECT * FROM users",
        "password": "hunter2", "secret.token": "t0k3n", "secret.key": "k3y", "keep": True}):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_attribute_actions_on_sdk_spans(otlpd, tmp_path, protocol):
    config = base_config(tmp_path, processors={"attributes/edit": {
        "actions": ACTIONS, "include": {"match_type": "strict", "services": ["checkout"]},
        "exclude": {"match_type": "regexp", "span_names": ["^health"]}}}, signals=["traces"])
    d = otlpd.start(config)
    for service, name in [("checkout", "GET /cart"), ("checkout", "health check"), ("billing", "GET /cart")]:
        assert make_exporter("traces", protocol, d).export(sdk_spans(service, name)) == SpanExportResult.SUCCESS
    out = tmp_path / "out.jsonl"
    wait_until(lambda: len(records(read_jsonl(out), "traces")) == 3, 10, "three spans in the file")
    by_case = {(service_of(r), s["name"]): attrs(s.get("attributes")) for r, _, s in records(read_jsonl(out), "traces")}
    edited = by_case[("checkout", "GET /cart")]
    assert edited == {
        "user.email": hashlib.sha256(b"john.doe@example.com").hexdigest(),
        "http.url": "https://shop.example.com/cart/42?x=1",
        "http.status_code": 503,
        "http.route": "/cart/{id}",
        "db.statement": "redacted",
        "keep": True,
        "deployment.environment": "prod",
        "url_host": "shop.example.com",
        "url_path": "/cart/42",
        "route.copy": "/cart/{id}",
    }
    # Excluded by span name, and not included by service: untouched.
    for case in [("checkout", "health check"), ("billing", "GET /cart")]:
        assert by_case[case]["password"] == "hunter2" and by_case[case]["secret.token"] == "t0k3n"
        assert "deployment.environment" not in by_case[case]
        assert by_case[case]["http.status_code"] == "503"


def test_resource_processor_on_every_signal(otlpd, tmp_path):
    config = base_config(tmp_path, processors={"resource": {"attributes": [
        {"key": "deployment.environment", "value": "prod", "action": "upsert"},
        {"key": "k8s.cluster.name", "from_attribute": "cluster", "action": "insert"},
        {"key": "cluster", "action": "delete"}]}})
    d = otlpd.start(config)
    trace = trace_request("checkout", 2)
    trace.resource_spans[0].resource.attributes.append(kv("cluster", "eu-1"))
    metrics = metrics_request("checkout")
    logs = logs_request("checkout")
    for signal_name, request in [("traces", trace), ("metrics", metrics), ("logs", logs)]:
        response = requests.post(d.http_url(f"/v1/{signal_name}"), data=request.SerializeToString(),
                                 headers={"content-type": "application/x-protobuf"}, timeout=10)
        assert response.status_code == 200, response.text
    for signal_name, expected_cluster in [("traces", "eu-1"), ("metrics", None), ("logs", None)]:
        out = tmp_path / f"out.{signal_name}.jsonl"
        wait_until(lambda: read_jsonl(out), 10, f"{signal_name} in the file")
        resource = attrs(read_jsonl(out)[0][next(iter(read_jsonl(out)[0]))][0]["resource"]["attributes"])
        assert resource["deployment.environment"] == "prod"
        assert resource["service.name"] == "checkout"
        assert "cluster" not in resource
        assert resource.get("k8s.cluster.name") == expected_cluster
    # The spans themselves are as sent.
    spans = records(read_jsonl(tmp_path / "out.traces.jsonl"), "traces")
    assert [attrs(s["attributes"])["http.route"] for _, _, s in spans] == ["/cart/0", "/cart/1"]


def test_attributes_reach_data_points_and_log_records(otlpd, tmp_path):
    config = base_config(tmp_path, processors={"attributes/tag": {"actions": [
        {"key": "region", "value": "eu", "action": "insert"},
        {"key": "route", "action": "delete"}]}}, signals=["metrics", "logs"])
    d = otlpd.start(config)
    for signal_name, request in [("metrics", metrics_request("checkout")), ("logs", logs_request("checkout", 3))]:
        response = requests.post(d.http_url(f"/v1/{signal_name}"), data=request.SerializeToString(),
                                 headers={"content-type": "application/x-protobuf"}, timeout=10)
        assert response.status_code == 200
    metrics_out = tmp_path / "out.metrics.jsonl"
    wait_until(lambda: read_jsonl(metrics_out), 10, "metrics in the file")
    points = []
    for _, _, metric in records(read_jsonl(metrics_out), "metrics"):
        for kind in ("sum", "gauge", "histogram"):
            points += metric.get(kind, {}).get("dataPoints", [])
    assert len(points) == 3
    assert all(attrs(p["attributes"]) == {"region": "eu"} for p in points)
    logs_out = tmp_path / "out.logs.jsonl"
    wait_until(lambda: read_jsonl(logs_out), 10, "logs in the file")
    logs = records(read_jsonl(logs_out), "logs")
    assert [attrs(r["attributes"]) for _, _, r in logs] == [{"order.id": i, "region": "eu"} for i in range(3)]


def test_bad_regex_is_a_config_error_with_its_key_path(otlpd_binary, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("""receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
processors:
  attributes/x:
    actions:
      - { key: http.url, pattern: '^(?P<host>[^/]+', action: extract }
    include: { match_type: regexp, span_names: ['(unclosed'] }
exporters:
  nop: {}
service:
  pipelines:
    traces: { receivers: [otlp], processors: [attributes/x], exporters: [nop] }
""")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(config))
    assert result.returncode == 1
    assert "processors.attributes/x.actions[0].pattern" in result.stderr
    assert "processors.attributes/x.include.span_names[0]" in result.stderr
    assert "not a valid regular expression" in result.stderr


def test_include_rules_must_fit_the_pipeline_signal(otlpd_binary, tmp_path):
    config = tmp_path / "signal.yaml"
    config.write_text("""receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:0 }
processors:
  attributes/x:
    actions: [ { key: a, value: b, action: insert } ]
    include: { match_type: strict, span_names: [GET] }
exporters:
  nop: {}
service:
  pipelines:
    logs: { receivers: [otlp], processors: [attributes/x], exporters: [nop] }
""")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(config))
    assert result.returncode == 1
    assert "service.pipelines.logs.processors[0]" in result.stderr
    assert "span_names" in result.stderr and "log records" in result.stderr


LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+(span|metric|log)\s+(\S+)\s+")


def test_debuglog_prints_and_passes_everything_on(otlpd, tmp_path):
    config = base_config(tmp_path, processors={"debuglog": {"verbosity": "normal"}}, signals=["traces", "logs"])
    d = otlpd.start(config)
    request = trace_request(resources=[("checkout", 3), ("billing", 2)])
    response = requests.post(d.http_url(), data=request.SerializeToString(),
                             headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200
    response = requests.post(d.http_url("/v1/logs"), data=logs_request("checkout", 2).SerializeToString(),
                             headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200
    wait_until(lambda: len(d.stdout().splitlines()) >= 7, 10, f"seven debuglog lines in:\n{d.stdout()}")
    lines = d.stdout().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert sorted((m.group(2), m.group(3)) for m in parsed) == sorted(
        [("span", "checkout")] * 3 + [("span", "billing")] * 2 + [("log", "checkout")] * 2)
    assert sum("GET /cart 0" in line for line in lines) == 2
    # Passed on unchanged: the file has every span and log record.
    wait_until(lambda: len(records(read_jsonl(tmp_path / "out.traces.jsonl"), "traces")) == 5, 10, "five spans")
    wait_until(lambda: len(records(read_jsonl(tmp_path / "out.logs.jsonl"), "logs")) == 2, 10, "two log records")


def test_debuglog_sampling_and_stderr(otlpd, tmp_path):
    config = base_config(tmp_path, processors={"debuglog": {
        "verbosity": "normal", "sampling_initial": 2, "sampling_thereafter": 1000, "output": "stderr"}}, signals=["traces"])
    d = otlpd.start(config)
    response = requests.post(d.http_url(), data=trace_request("checkout", 20).SerializeToString(),
                             headers={"content-type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200
    wait_until(lambda: len(records(read_jsonl(tmp_path / "out.jsonl"), "traces")) == 20, 10, "all 20 spans in the file")
    span_lines = [line for line in d.stderr().splitlines() if LINE.match(line)]
    assert len(span_lines) == 2, span_lines
    assert d.stdout() == ""
