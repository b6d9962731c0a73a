"""bearertokenauth: a receiver that requires a token on both protocols and
both ports, refuses without reading the body (401 with WWW-Authenticate, gRPC
UNAUTHENTICATED), still answers CORS preflight, logs the client and never the
token, reads a token file again on SIGHUP; and an exporter that sends the
token so an agent can forward to a gateway that requires it."""
import json
import signal

import grpc
import pytest

from otlpd_harness import base_config, curl, grpc_export, read_jsonl, request_span_ids, span_ids_in, trace_request, wait_until

TOKEN = "s3cr3t-t0ken-4-tests"


def auth_config(tmp_path, token=TOKEN, filename=None, cors=False) -> dict:
    http = {"auth": {"authenticator": "bearertokenauth"}}
    if cors:
        http["cors"] = {"allowed_origins": ["http://app.example"]}
    config = base_config(tmp_path, grpc={"auth": {"authenticator": "bearertokenauth"}}, http=http, signals=("traces",))
    config["extensions"] = {"bearertokenauth": {"filename": str(filename)} if filename else {"token": token}}
    config["service"]["extensions"] = ["bearertokenauth"]
    return config


def export_with(channel, request, token: str | None):
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    stub = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                               request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
    return stub(request, metadata=metadata, timeout=5)


def test_grpc_needs_the_token(otlpd, tmp_path):
    daemon = otlpd.start(auth_config(tmp_path))
    request = trace_request("authed", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        for token in (None, "wrong-token", TOKEN[:-1]):
            with pytest.raises(grpc.RpcError) as info:
                export_with(channel, trace_request("refused", 1), token)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
        export_with(channel, request, TOKEN)
    assert span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl" if (tmp_path / "out.traces.jsonl").exists()
                                  else tmp_path / "out.jsonl")) == request_span_ids(request)
    lines = daemon.logs_matching("refused")
    assert len(lines) == 3 and all(line.fields.get("client", "").startswith("127.0.0.1:") for line in lines), [l.raw for l in lines]
    assert TOKEN not in daemon.stderr() and "wrong-token" not in daemon.stderr(), "no credentials in the log"
    assert daemon.stop() == 0


def test_http_needs_the_token_on_either_port_and_preflight_still_works(otlpd, tmp_path):
    daemon = otlpd.start(auth_config(tmp_path, cors=True))
    body = trace_request("http-authed", 2).SerializeToString()
    headers = ("-H", "Content-Type: application/x-protobuf")
    refused = curl(*headers, daemon.http_url(), data=body, workdir=tmp_path)
    assert refused.statuses == [401], refused.verbose
    assert refused.header("www-authenticate") == 'Bearer realm="otlpd"'
    wrong = curl(*headers, "-H", "Authorization: Bearer nope", daemon.http_url(), data=body, workdir=tmp_path)
    assert wrong.statuses == [401]
    ok = curl(*headers, "-H", f"Authorization: Bearer {TOKEN}", daemon.http_url(), data=body, workdir=tmp_path)
    assert ok.statuses == [200], ok.verbose
    # OTLP/HTTP sent to the gRPC port is checked the same way (either protocol is served on either port).
    other_port = curl(*headers, daemon.http_url(port=daemon.grpc_port), data=body, workdir=tmp_path)
    assert other_port.statuses == [401], other_port.verbose
    preflight = curl("-X", "OPTIONS", "-H", "Origin: http://app.example", "-H", "Access-Control-Request-Method: POST",
                     "-H", "Access-Control-Request-Headers: authorization,content-type", daemon.http_url(), workdir=tmp_path)
    assert preflight.status in (200, 204) and preflight.header("access-control-allow-origin") == "http://app.example", preflight.verbose
    assert TOKEN not in daemon.stderr()
    assert daemon.stop() == 0


def test_a_token_file_is_read_again_on_sighup(otlpd, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    daemon = otlpd.start(auth_config(tmp_path, filename=token_file))
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        export_with(channel, trace_request("first", 1), "first-token")
        token_file.write_text("second-token\n")
        daemon.send_signal(signal.SIGHUP)
        daemon.wait_for_log("token file read again", timeout=10)
        export_with(channel, trace_request("second", 1), "second-token")
        with pytest.raises(grpc.RpcError) as info:
            export_with(channel, trace_request("old", 1), "first-token")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A missing file at a reload makes the new config invalid: the running one, and its token, stay.
        token_file.unlink()
        daemon.send_signal(signal.SIGHUP)
        daemon.wait_for_log("the running config stays", timeout=10)
        export_with(channel, trace_request("still", 1), "second-token")
    assert daemon.stop() == 0


@pytest.mark.parametrize("exporter_type", ["otlp_grpc", "otlp_http"])
def test_an_agent_forwards_to_a_gateway_that_requires_the_token(otlpd, tmp_path, exporter_type):
    gateway_dir = tmp_path / "gateway"
    gateway_dir.mkdir()
    gateway = otlpd.start(auth_config(gateway_dir), workdir=gateway_dir)
    endpoint = gateway.grpc_target if exporter_type == "otlp_grpc" else f"http://127.0.0.1:{gateway.http_port}"
    settings = {"endpoint": endpoint, "auth": {"authenticator": "bearertokenauth"}}
    if exporter_type == "otlp_grpc":
        settings["tls"] = {"insecure": True}
    agent_config = base_config(tmp_path, exporters={exporter_type: settings}, signals=("traces",))
    agent_config["extensions"] = {"bearertokenauth": {"token": TOKEN}}
    agent_config["service"]["extensions"] = ["bearertokenauth"]
    agent = otlpd.start(agent_config)
    request = trace_request("through-agent", 3)
    with grpc.insecure_channel(agent.grpc_target) as channel:
        grpc_export(channel, request)
    assert sorted(span_ids_in(read_jsonl(gateway_dir / "out.jsonl"))) == sorted(request_span_ids(request))
    assert gateway.logs_matching("refused") == []
    assert TOKEN not in agent.stderr() + gateway.stderr()
    assert agent.stop() == 0 and gateway.stop() == 0


def test_an_authenticator_that_is_not_one(otlpd, tmp_path):
    from otlpd_harness import run_otlpd
    config = auth_config(tmp_path)
    config["extensions"]["health_check"] = {"endpoint": "127.0.0.1:0"}
    config["service"]["extensions"].append("health_check")
    config["receivers"]["otlp"]["protocols"]["grpc"]["auth"]["authenticator"] = "health_check"
    path = otlpd.write_config(config, "bad.yaml", tmp_path)
    result = run_otlpd(otlpd.binary, "validate", "--config", str(path))
    assert result.returncode != 0 and "is not an authenticator" in result.stderr, result.stderr
