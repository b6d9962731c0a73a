"""CORS on the OTLP/HTTP port: preflight answered for allowed origins (exact
and wildcard), not for others; actual requests carry the allow-origin header
only for allowed origins."""
import pytest

from otlpd_harness import base_config, curl, read_jsonl, request_span_ids, span_ids_in, trace_request


@pytest.fixture
def daemon(otlpd, tmp_path, tools):
    return otlpd.start(base_config(tmp_path, signals=["traces"], http={"cors": {
        "allowed_origins": ["https://app.example.com", "http://localhost:*"],
        "allowed_headers": ["X-Tenant"],
        "max_age": 600}}))


def preflight(daemon, tmp_path, origin, request_headers="content-type", path="/v1/traces"):
    return curl("-X", "OPTIONS", "-H", f"Origin: {origin}", "-H", "Access-Control-Request-Method: POST",
                "-H", f"Access-Control-Request-Headers: {request_headers}", daemon.http_url(path), workdir=tmp_path)


@pytest.mark.parametrize("origin", ["https://app.example.com", "http://localhost:3000"])
def test_preflight_from_allowed_origin(daemon, tmp_path, origin):
    result = preflight(daemon, tmp_path, origin, "content-type, x-tenant")
    assert result.status in (200, 204), f"preflight status {result.status}"
    assert result.header("access-control-allow-origin") == origin, result.headers
    methods = [m.strip().upper() for m in (result.header("access-control-allow-methods") or "").split(",")]
    assert "POST" in methods, result.headers
    allowed = [h.strip().lower() for h in (result.header("access-control-allow-headers") or "").split(",")]
    assert "x-tenant" in allowed and "content-type" in allowed, f"allowed headers: {result.headers}"
    assert result.header("access-control-max-age") == "600", result.headers


@pytest.mark.parametrize("origin", ["https://evil.example.com", "https://app.example.com.evil.net", "http://localhost.evil.net:3000"])
def test_preflight_from_other_origin(daemon, tmp_path, origin):
    result = preflight(daemon, tmp_path, origin)
    assert result.header("access-control-allow-origin") is None, f"no allow-origin for {origin}: {result.headers}"


def test_actual_request_from_allowed_and_other_origins(daemon, tmp_path):
    request = trace_request("browser", 2)
    allowed = curl("-H", "Origin: https://app.example.com", "-H", "content-type: application/x-protobuf",
                   daemon.http_url("/v1/traces"), data=request.SerializeToString(), workdir=tmp_path)
    assert allowed.status == 200
    assert allowed.header("access-control-allow-origin") == "https://app.example.com", allowed.headers
    other = curl("-H", "Origin: https://evil.example.com", "-H", "content-type: application/x-protobuf",
                 daemon.http_url("/v1/traces"), data=trace_request("other", 1).SerializeToString(), workdir=tmp_path)
    assert other.header("access-control-allow-origin") is None, other.headers
    assert request_span_ids(request) == span_ids_in(read_jsonl(tmp_path / "out.jsonl"))[:2]


def test_no_cors_config_no_cors_headers(otlpd, tmp_path, tools):
    daemon = otlpd.start(base_config(tmp_path, signals=["traces"]))
    result = preflight(daemon, tmp_path, "https://app.example.com")
    assert result.header("access-control-allow-origin") is None, result.headers
