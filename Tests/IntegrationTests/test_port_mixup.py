"""Either port accepts either protocol: an SDK gRPC exporter pointed at the
OTLP/HTTP port and an SDK HTTP exporter pointed at the OTLP/gRPC port both get
their data in, and otlpd warns once per client address and direction,
naming the right port."""
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from otlpd_harness import base_config, read_jsonl, span_ids_in
from test_sdk import record_spans

GRPC_TO_HTTP = "client sent OTLP/gRPC to the OTLP/HTTP port"
HTTP_TO_GRPC = "client sent OTLP/HTTP to the OTLP/gRPC port"


def export_rounds(make_exporter, service, rounds, exporters=2):
    """`rounds` exports from each of `exporters` exporter instances (separate connections)."""
    sent = []
    for _ in range(exporters):
        exporter = make_exporter()
        try:
            for _ in range(rounds):
                spans = record_spans(service)
                assert exporter.export(spans) == SpanExportResult.SUCCESS, f"{service}: export failed"
                sent += [format(s.context.span_id, "016x") for s in spans]
        finally:
            exporter.shutdown()
    return sent


def test_grpc_exporter_at_http_port(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path))
    sent = export_rounds(lambda: GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.http_port}", insecure=True, timeout=5),
                         "grpc-at-http", rounds=3)
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(sent), "every span delivered"
    warnings = daemon.logs_matching(GRPC_TO_HTTP)
    assert len(warnings) == 1, f"exactly one warning for client 127.0.0.1 after 6 requests on 2 connections: " \
                               f"{[w.raw for w in warnings]}"
    warning = warnings[0]
    assert warning.level == "warn"
    assert warning.fields.get("client", "").split(":")[0] == "127.0.0.1", warning.raw
    assert str(daemon.http_port) in warning.message, f"names the port it was sent to: {warning.raw}"
    assert f"port {daemon.grpc_port}" in warning.message, f"names the right port {daemon.grpc_port}: {warning.raw}"
    assert daemon.logs_matching(HTTP_TO_GRPC) == []
    assert daemon.logs_matching("request refused") == []


def test_http_exporter_at_grpc_port(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path))
    sent = export_rounds(lambda: HttpSpanExporter(endpoint=daemon.http_url("/v1/traces", port=daemon.grpc_port), timeout=5),
                         "http-at-grpc", rounds=3)
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(sent), "every span delivered"
    warnings = daemon.logs_matching(HTTP_TO_GRPC)
    assert len(warnings) == 1, f"exactly one warning for client 127.0.0.1 after 6 requests: {[w.raw for w in warnings]}"
    warning = warnings[0]
    assert warning.level == "warn"
    assert str(daemon.grpc_port) in warning.message, warning.raw
    assert f"port {daemon.http_port}" in warning.message, f"names the right port {daemon.http_port}: {warning.raw}"
    assert daemon.logs_matching(GRPC_TO_HTTP) == []


def test_both_directions_each_warned_once_and_right_ports_not_warned(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path))
    sent = []
    sent += export_rounds(lambda: GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.http_port}", insecure=True, timeout=5),
                          "mix-a", rounds=2)
    sent += export_rounds(lambda: HttpSpanExporter(endpoint=daemon.http_url("/v1/traces", port=daemon.grpc_port), timeout=5),
                          "mix-b", rounds=2)
    # The right way round never warns.
    sent += export_rounds(lambda: GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.grpc_port}", insecure=True, timeout=5),
                          "right-a", rounds=2)
    sent += export_rounds(lambda: HttpSpanExporter(endpoint=daemon.http_url("/v1/traces"), timeout=5), "right-b", rounds=2)
    sent += export_rounds(lambda: GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.http_port}", insecure=True, timeout=5),
                          "mix-c", rounds=2)
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(sent)
    assert len(daemon.logs_matching(GRPC_TO_HTTP)) == 1, [l.raw for l in daemon.logs_matching("client sent")]
    assert len(daemon.logs_matching(HTTP_TO_GRPC)) == 1, [l.raw for l in daemon.logs_matching("client sent")]
