"""The debug exporter's lines on stdout at basic, normal and detailed: each
begins with an ISO time, the signal word and service.name, so `grep SERVICE`
finds a service's lines."""
import re

import grpc
import pytest

from otlpd_harness import base_config, grpc_export, logs_request, metrics_request, trace_request, wait_until

PREFIX = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (span|metric|log)  (\S+)  (.*)$")
WORDS = {"traces": "span", "metrics": "metric", "logs": "log"}


def start(otlpd, tmp_path, verbosity):
    return otlpd.start(base_config(tmp_path, exporters={"debug": {"verbosity": verbosity}}))


def send_all(daemon):
    traces = trace_request(resources=[("checkout", 3), ("payments", 2)], name="GET /cart")
    traces.resource_spans[0].scope_spans[0].spans[0].status.code = 2
    traces.resource_spans[0].scope_spans[0].spans[0].status.message = "card declined"
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, traces, "traces")
        grpc_export(channel, metrics_request("checkout"), "metrics")
        grpc_export(channel, logs_request("payments", 2), "logs")
    return traces


def parsed_lines(daemon):
    return [line for line in daemon.stdout().splitlines() if line.strip()]


def check_prefixes(lines):
    for line in lines:
        match = PREFIX.match(line)
        assert match, f"line does not start with 'TIME SIGNAL  SERVICE  ': {line!r}"
    return [PREFIX.match(line).groups() for line in lines]


def test_normal_one_line_per_record(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, "normal")
    traces = send_all(daemon)
    expected = 5 + 3 + 2
    lines = wait_until(lambda: (l := parsed_lines(daemon)) and len(l) >= expected and l, 5,
                       f"{expected} debug lines on stdout")
    assert len(lines) == expected, "\n".join(lines)
    fields = check_prefixes(lines)
    spans = [f for f in fields if f[1] == "span"]
    metrics = [f for f in fields if f[1] == "metric"]
    logs = [f for f in fields if f[1] == "log"]
    assert len(spans) == 5 and len(metrics) == 3 and len(logs) == 2
    assert sorted(f[2] for f in spans) == ["checkout"] * 3 + ["payments"] * 2
    for rs in traces.resource_spans:
        service = rs.resource.attributes[0].value.string_value
        for span in rs.scope_spans[0].spans:
            line = next((f[3] for f in spans if f"span={span.span_id.hex()}" in f[3]), None)
            assert line is not None, f"a line for span {span.span_id.hex()}"
            assert line.startswith(span.name), line
            assert f"trace={span.trace_id.hex()}" in line
            assert "12.3ms" in line, f"duration 12.3ms: {line}"
            assert ("ERROR" in line and "card declined" in line) if span.status.code == 2 else line.rstrip().endswith("OK")
            assert [f for f in spans if f"span={span.span_id.hex()}" in f[3]][0][2] == service
    metric_text = {f[3].split("  ")[0]: f[3] for f in metrics}
    assert set(metric_text) == {"requests", "cpu.load", "latency"}
    assert "sum" in metric_text["requests"] and "42" in metric_text["requests"]
    assert "gauge" in metric_text["cpu.load"] and "0.75" in metric_text["cpu.load"]
    assert "histogram" in metric_text["latency"] and "count=10" in metric_text["latency"]
    assert all(f[2] == "checkout" for f in metrics)
    assert all(f[2] == "payments" and f[3].startswith("WARN  payment ") for f in logs), logs


def test_basic_one_line_per_resource(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, "basic")
    send_all(daemon)
    lines = wait_until(lambda: (l := parsed_lines(daemon)) and len(l) >= 4 and l, 5, "4 basic lines")
    assert len(lines) == 4, "\n".join(lines)
    fields = check_prefixes(lines)
    summary = sorted((f[1], f[2], f[3]) for f in fields)
    assert ("span", "checkout", "3 spans") in summary and ("span", "payments", "2 spans") in summary, summary
    assert any(f[0] == "metric" and f[1] == "checkout" and f[2].startswith("3 ") for f in summary), summary
    assert any(f[0] == "log" and f[1] == "payments" and f[2].startswith("2 ") for f in summary), summary


def test_detailed_every_line_prefixed(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, "detailed")
    traces = send_all(daemon)
    text = wait_until(lambda: (t := daemon.stdout()) and all(
        s.span_id.hex() in t for rs in traces.resource_spans for s in rs.scope_spans[0].spans) and "payment 1" in t
        and "latency" in t and t, 5, "detailed output of every record")
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) > 10 + 5, "detailed prints many lines"
    fields = check_prefixes(lines)
    for service, word in (("checkout", "span"), ("payments", "span"), ("checkout", "metric"), ("payments", "log")):
        assert any(f[1] == word and f[2] == service for f in fields), f"{word} lines of {service}"
    # Every field: attributes and their values appear.
    assert "http.route" in text and "/cart/1" in text and "order.id" in text and "route" in text
    # A grep for a service gets only its lines.
    for line in lines:
        if "  payments  " in line[:60]:
            assert "checkout" not in line


def test_debug_and_file_together(otlpd, tmp_path):
    """The same data goes to both exporters of a pipeline."""
    from otlpd_harness import read_jsonl, span_ids_in, request_span_ids
    daemon = otlpd.start(base_config(tmp_path, exporters={"debug": {"verbosity": "normal"},
                                                          "file": {"path": str(tmp_path / "out.jsonl")}},
                                     signals=["traces"]))
    request = trace_request("both", 4)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.jsonl"))) == sorted(request_span_ids(request))
    wait_until(lambda: len(parsed_lines(daemon)) >= 4, 5, "4 debug lines")
    assert len(parsed_lines(daemon)) == 4
