"""The otlp_grpc exporter over TLS to a second otlpd, with a CA made by
openssl in the test: server authentication, mutual TLS, and the two
plain-text/TLS mix-ups named in the log."""
import grpc
import pytest

from otlpd_harness import base_config, grpc_export, read_jsonl, request_span_ids, span_ids_in, trace_request
from test_tls import openssl, pki, tls_section  # noqa: F401 (pytest fixture)


def upstream(otlpd, tmp_path, tls=None):
    directory = tmp_path / "upstream"
    directory.mkdir(exist_ok=True)
    config = base_config(directory, signals=("traces",), grpc={"tls": tls} if tls else None)
    return otlpd.start(config, workdir=directory), directory / "out.jsonl"


def forwarder(otlpd, tmp_path, endpoint, tls):
    config = base_config(tmp_path, processors={"batch": {}}, signals=("traces",),
                         exporters={"otlp_grpc": {"endpoint": endpoint, "tls": tls,
                                                  "retry_on_failure": {"initial_interval": "100ms"}}})
    return otlpd.start(config)


def send(daemon, request, timeout=5):
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request, timeout=timeout)


def test_tls_with_the_upstreams_ca(otlpd, tmp_path, pki):
    up, out = upstream(otlpd, tmp_path, tls_section(pki))
    # The certificate names 127.0.0.1 and localhost: connect by name.
    down = forwarder(otlpd, tmp_path, f"localhost:{up.grpc_port}", {"ca_file": str(pki / "ca.pem")})
    request = trace_request("over-tls", 3)
    send(down, request)
    assert span_ids_in(read_jsonl(out)) == request_span_ids(request)


def test_mutual_tls(otlpd, tmp_path, pki):
    up, out = upstream(otlpd, tmp_path, tls_section(pki, mtls=True))
    down = forwarder(otlpd, tmp_path, f"localhost:{up.grpc_port}",
                     {"ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "client.pem"), "key_file": str(pki / "client.key")})
    request = trace_request("mtls", 2)
    send(down, request)
    assert span_ids_in(read_jsonl(out)) == request_span_ids(request)


def test_mutual_tls_without_a_client_certificate_is_not_acknowledged(otlpd, tmp_path, pki):
    up, out = upstream(otlpd, tmp_path, tls_section(pki, mtls=True))
    down = forwarder(otlpd, tmp_path, f"localhost:{up.grpc_port}", {"ca_file": str(pki / "ca.pem")})
    with pytest.raises(grpc.RpcError) as info:
        send(down, trace_request("no-cert", 1), timeout=2)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not out.exists() or read_jsonl(out) == []


def test_an_unknown_ca_fails_the_handshake_and_says_so(otlpd, tmp_path, pki):
    up, _ = upstream(otlpd, tmp_path, tls_section(pki))
    down = forwarder(otlpd, tmp_path, f"localhost:{up.grpc_port}", {})  # the system's roots do not know the test CA
    with pytest.raises(grpc.RpcError) as info:
        send(down, trace_request("unknown-ca", 1), timeout=2)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "TLS handshake failed" in info.value.details(), info.value.details()


def test_plain_text_to_a_tls_upstream_is_named(otlpd, tmp_path, pki):
    up, _ = upstream(otlpd, tmp_path, tls_section(pki))
    down = forwarder(otlpd, tmp_path, f"127.0.0.1:{up.grpc_port}", {"insecure": True})
    with pytest.raises(grpc.RpcError):
        send(down, trace_request("plain-to-tls", 1), timeout=2)
    line = down.wait_for_log("expects TLS")
    assert len(line) == 1 and "remove tls.insecure" in line[0].message, line[0].raw


def test_tls_to_a_plain_text_upstream_is_named(otlpd, tmp_path, pki):
    up, _ = upstream(otlpd, tmp_path)
    down = forwarder(otlpd, tmp_path, f"localhost:{up.grpc_port}", {"ca_file": str(pki / "ca.pem")})
    with pytest.raises(grpc.RpcError):
        send(down, trace_request("tls-to-plain", 1), timeout=2)
    line = down.wait_for_log("plain-text port")
    assert len(line) == 1 and "tls.insecure: true" in line[0].message, line[0].raw


def test_otlp_http_over_tls_with_mutual_tls(otlpd, tmp_path, pki):
    directory = tmp_path / "upstream"
    directory.mkdir(exist_ok=True)
    up = otlpd.start(base_config(directory, signals=("traces",), http={"tls": tls_section(pki, mtls=True)}), workdir=directory)
    config = base_config(tmp_path, processors={"batch": {}}, signals=("traces",), exporters={"otlp_http": {
        "endpoint": f"https://localhost:{up.http_port}",
        "tls": {"ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "client.pem"), "key_file": str(pki / "client.key")}}})
    down = otlpd.start(config)
    request = trace_request("https", 2)
    send(down, request)
    assert span_ids_in(read_jsonl(directory / "out.jsonl")) == request_span_ids(request)
    # otlpd's TLS port offers h2 by ALPN: the exporter took it.
    assert len(down.logs_matching("chose HTTP/2")) == 1, down.stderr()
    second = trace_request("https-again", 2)
    send(down, second)
    assert sorted(span_ids_in(read_jsonl(directory / "out.jsonl"))) == sorted(request_span_ids(request) + request_span_ids(second))


def test_otlp_http_over_tls_to_an_http1_only_upstream(otlpd, tmp_path, pki):
    from upstreams import HTTPSink
    sink = HTTPSink(tls=(str(pki / "server.pem"), str(pki / "server.key")))
    try:
        config = base_config(tmp_path, processors={"batch": {}}, signals=("traces",), exporters={"otlp_http": {
            "endpoint": sink.url, "tls": {"ca_file": str(pki / "ca.pem")}}})
        down = otlpd.start(config)
        request = trace_request("https-1.1", 2)
        send(down, request)
        assert sink.span_ids() == request_span_ids(request)
        assert down.logs_matching("chose HTTP/2") == [], "no ALPN offered: it stays on HTTP/1.1"
    finally:
        sink.stop()


def test_insecure_skip_verify_and_server_name_override(otlpd, tmp_path, pki):
    directory = tmp_path / "upstream"
    directory.mkdir(exist_ok=True)
    # On every interface, so 127.0.0.2 (not in the certificate) reaches it too.
    up = otlpd.start(base_config(directory, signals=("traces",), grpc={"endpoint": "0.0.0.0:0", "tls": tls_section(pki)}), workdir=directory)
    out = directory / "out.jsonl"
    target = f"127.0.0.2:{up.grpc_port}"
    for name in ("plain", "override", "skip"):
        (tmp_path / name).mkdir()
    # The certificate names 127.0.0.1 and localhost, not 127.0.0.2: checked against the address, it fails ...
    plain = forwarder(otlpd, tmp_path / "plain", target, {"ca_file": str(pki / "ca.pem")})
    with pytest.raises(grpc.RpcError):
        send(plain, trace_request("no-override", 1), timeout=2)
    # ... checked against the name given by server_name_override, it passes ...
    named = forwarder(otlpd, tmp_path / "override", target, {"ca_file": str(pki / "ca.pem"), "server_name_override": "localhost"})
    first = trace_request("override", 1)
    send(named, first)
    # ... and insecure_skip_verify accepts it unchecked, without the CA.
    unchecked = forwarder(otlpd, tmp_path / "skip", target, {"insecure_skip_verify": True})
    second = trace_request("skip-verify", 1)
    send(unchecked, second)
    assert sorted(span_ids_in(read_jsonl(out))) == sorted(request_span_ids(first) + request_span_ids(second))
