"""The otlp_http exporter: forwarding over OTLP/HTTP (HTTP/1.1 keep-alive)
to a second otlpd and to Python's http.server answering as each test
scripts it. Success only for what the upstream confirmed; its refusals
passed back; the wrong port named."""
import time

import grpc
import pytest

from otlpd_harness import (base_config, curl, grpc_export, read_jsonl, request_span_ids, run_otlpd, span_ids_in, trace_request,
                           logs_request, metrics_request)
from upstreams import GrpcSink, HTTPAnswer, HTTPSink


def forwarder_config(tmp_path, exporter, batch=True):
    return base_config(tmp_path, processors={"batch": {}} if batch else None, signals=("traces", "metrics", "logs"),
                       exporters={"otlp_http": exporter})


@pytest.mark.parametrize("encoding,compression", [("proto", "gzip"), ("proto", "none"), ("json", "gzip"), ("json", "none")])
def test_forwards_to_a_second_otlpd(otlpd, tmp_path, encoding, compression):
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    upstream = otlpd.start(base_config(upstream_dir, signals=("traces",)), workdir=upstream_dir)
    forwarder = otlpd.start(base_config(tmp_path, processors={"batch": {}}, signals=("traces",), exporters={"otlp_http": {
        "endpoint": f"http://127.0.0.1:{upstream.http_port}", "encoding": encoding, "compression": compression}}))
    sent = []
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        for index in range(4):
            request = trace_request(f"svc-{index}", 3)
            grpc_export(channel, request)
            sent += request_span_ids(request)
            assert set(request_span_ids(request)) <= set(span_ids_in(read_jsonl(upstream_dir / "out.jsonl")))
    assert sorted(span_ids_in(read_jsonl(upstream_dir / "out.jsonl"))) == sorted(sent)


def test_paths_headers_and_keep_alive(otlpd, tmp_path):
    sink = HTTPSink()
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": sink.url + "/otlp", "headers": {"x-tenant": "acme"}}, batch=False))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for _ in range(3):
                grpc_export(channel, trace_request("kept-alive", 2))
            grpc_export(channel, metrics_request("m"), "metrics")
            grpc_export(channel, logs_request("l", 2), "logs")
        paths = [a.path for a in sink.arrivals]
        assert paths == ["/otlp/v1/traces"] * 3 + ["/otlp/v1/metrics", "/otlp/v1/logs"], paths
        first = sink.arrivals[0]
        assert first.headers["content-type"] == "application/x-protobuf" and first.headers["content-encoding"] == "gzip"
        assert first.headers["x-tenant"] == "acme" and first.headers["user-agent"].startswith("otlpd/")
        assert len({a.client for a in sink.arrivals[:3]}) == 1, "one keep-alive connection for calls one after another"
        assert all(a.request is not None for a in sink.arrivals)
    finally:
        sink.stop()


def test_signal_endpoints_override_the_base(otlpd, tmp_path):
    sink = HTTPSink()
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": sink.url, "traces_endpoint": sink.url + "/custom/spans"}, batch=False))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, trace_request("t", 1))
            grpc_export(channel, logs_request("l", 1), "logs")
        assert [a.path for a in sink.arrivals] == ["/custom/spans", "/v1/logs"]
    finally:
        sink.stop()


def test_503_with_retry_after_is_retried_after_it(otlpd, tmp_path):
    sink = HTTPSink(script=[HTTPAnswer(503, "busy", retry_after="1")])
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": sink.url, "retry_on_failure": {"initial_interval": "10ms"}}))
        request = trace_request("retried", 2)
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, request, timeout=10)
        assert len(sink.arrivals) == 2
        assert sink.arrivals[1].time - sink.arrivals[0].time >= 1.0, "waited the Retry-After"
        assert sink.span_ids() == request_span_ids(request)
    finally:
        sink.stop()


def test_429_past_the_client_deadline_is_a_retryable_answer(otlpd, tmp_path):
    sink = HTTPSink(script=[HTTPAnswer(429, "slow down", retry_after="30")])
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": sink.url}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                grpc_export(channel, trace_request("later", 1), timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "slow down" in info.value.details()
        assert len(sink.arrivals) == 1
    finally:
        sink.stop()


def test_400_is_passed_back_and_not_retried(otlpd, tmp_path):
    sink = HTTPSink(script=[HTTPAnswer(400, "bad span"), HTTPAnswer(400, "bad span")])
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": sink.url, "retry_on_failure": {"initial_interval": "10ms"}}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                grpc_export(channel, trace_request("bad", 1))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bad span" in info.value.details()
        request = trace_request("bad", 1)
        result = curl("-H", "Content-Type: application/x-protobuf", forwarder.http_url(), data=request.SerializeToString(), workdir=tmp_path)
        assert result.statuses == [400], result.verbose
        time.sleep(0.2)
        assert len(sink.arrivals) == 2
        line = forwarder.wait_for_log("refused a batch")
        assert line[0].fields["status"] == "HTTP 400" and line[0].fields["reason"] == "bad span"
    finally:
        sink.stop()


def test_partial_success_is_logged(otlpd, tmp_path):
    sink = HTTPSink(partial=(1, "one too old"))
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": sink.url}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            response = grpc_export(channel, trace_request("partly", 3))
        assert response.partial_success.rejected_spans == 1 and "one too old" in response.partial_success.error_message
        line = forwarder.wait_for_log("rejected part of a batch")
        assert line[0].fields["rejected"] == "1" and line[0].fields["reason"] == "one too old"
    finally:
        sink.stop()


def test_http_exporter_aimed_at_a_grpc_port_says_so(otlpd, tmp_path):
    sink = GrpcSink()
    try:
        forwarder = otlpd.start(forwarder_config(tmp_path, {"endpoint": f"http://{sink.endpoint}"}))
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            for _ in range(2):
                with pytest.raises(grpc.RpcError) as info:
                    grpc_export(channel, trace_request("wrong-port", 1), timeout=2)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        lines = forwarder.wait_for_log("OTLP/gRPC port")
        assert len(lines) == 1 and "otlp_grpc" in lines[0].message and sink.endpoint in lines[0].message, lines[0].raw
        assert sink.calls == []
    finally:
        sink.stop()


def test_validate_warns_of_an_otlp_http_endpoint_on_4317(otlpd_binary, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
        "exporters: {otlphttp: {endpoint: 'http://gateway:4317'}}\n"
        "service: {pipelines: {logs: {receivers: [otlp], exporters: [otlphttp]}}}\n")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "exporters.otlphttp:" in result.stderr and "4317" in result.stderr and "4318" in result.stderr, result.stderr


def test_an_endpoint_that_is_not_a_url_is_refused(otlpd_binary, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
        "exporters: {otlp_http: {endpoint: 'gateway:4318'}}\n"
        "service: {pipelines: {logs: {receivers: [otlp], exporters: [otlp_http]}}}\n")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(config))
    assert result.returncode == 1 and "exporters.otlp_http.endpoint" in result.stderr and "http://" in result.stderr, result.stderr
