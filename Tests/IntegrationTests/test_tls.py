"""TLS on both ports with a CA and server certificate made by openssl:
grpcio with ssl_channel_credentials, curl --cacert over HTTP/1.1 and HTTP/2
(ALPN); plaintext to a TLS port fails cleanly and is logged; mTLS with
client_ca_file."""
import signal
import socket
import subprocess

import grpc
import pytest

from otlpd_harness import (base_config, curl, grpc_export, read_jsonl, request_span_ids, span_ids_in, trace_request,
                           wait_until)


def openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"openssl {' '.join(args)}:\n{proc.stderr}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=otlpd test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=d)
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test client", "-keyout", "client.key",
            "-out", "client.csr", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "client.ext", "-out", "client.pem", cwd=d)
    return d


def tls_section(pki, mtls=False):
    section = {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server.key")}
    if mtls:
        section["client_ca_file"] = str(pki / "ca.pem")
    return section


@pytest.fixture
def daemon(otlpd, tmp_path, pki, tools):
    return otlpd.start(base_config(tmp_path, grpc={"tls": tls_section(pki)}, http={"tls": tls_section(pki)},
                                   signals=["traces"], exporters={"file": {"path": str(tmp_path / "out.jsonl")}}))


def credentials(pki, client_cert=False):
    root = (pki / "ca.pem").read_bytes()
    if client_cert:
        return grpc.ssl_channel_credentials(root, (pki / "client.key").read_bytes(), (pki / "client.pem").read_bytes())
    return grpc.ssl_channel_credentials(root)


def test_listening_lines_say_tls(daemon):
    lines = [l for l in daemon.log_lines() if l.message == "listening"]
    assert len(lines) == 2 and all(l.fields.get("tls") == "true" for l in lines), [l.raw for l in lines]


@pytest.mark.parametrize("port", ["grpc", "http"])
def test_grpc_over_tls(daemon, tmp_path, pki, port):
    target_port = daemon.grpc_port if port == "grpc" else daemon.http_port
    request = trace_request("tls-grpc", 3)
    with grpc.secure_channel(f"127.0.0.1:{target_port}", credentials(pki)) as channel:
        response, call = grpc_export(channel, request, with_call=True)
    assert call.code() == grpc.StatusCode.OK
    assert span_ids_in(read_jsonl(tmp_path / "out.jsonl")) == request_span_ids(request)
    assert daemon.stop() == 0
    refused = daemon.logs_matching("refused")
    assert refused == [], f"a TLS client that did its request and closed is not a refused connection: " \
                          f"{[l.raw for l in refused]}"


@pytest.mark.parametrize("version,expected", [("--http1.1", "1.1"), ("--http2", "2")])
@pytest.mark.parametrize("port", ["http", "grpc"])
def test_curl_https(daemon, tmp_path, pki, version, expected, port):
    target_port = daemon.http_port if port == "http" else daemon.grpc_port
    request = trace_request("tls-curl", 2)
    result = curl(version, "--cacert", str(pki / "ca.pem"), "-H", "content-type: application/x-protobuf",
                  f"https://127.0.0.1:{target_port}/v1/traces", data=request.SerializeToString(), workdir=tmp_path)
    assert result.returncode == 0, result.verbose[-2000:]
    assert result.statuses == [200], result.statuses
    assert result.http_versions == [expected], f"ALPN negotiated HTTP/{result.http_versions}, expected {expected}"
    if expected == "2":
        assert "ALPN: server accepted h2" in result.verbose or "ALPN, server accepted to use h2" in result.verbose, \
            result.verbose[-2000:]
    assert span_ids_in(read_jsonl(tmp_path / "out.jsonl")) == request_span_ids(request)
    assert daemon.stop() == 0
    assert daemon.logs_matching("refused") == [], [l.raw for l in daemon.logs_matching("refused")]


def test_curl_rejects_unknown_ca(daemon, tmp_path):
    """The certificate is really checked (a sanity check of the test setup)."""
    result = curl("--http1.1", "-H", "content-type: application/x-protobuf", daemon.http_url(scheme="https"),
                  data=b"", workdir=tmp_path)
    assert result.returncode != 0 and result.status == 0


@pytest.mark.parametrize("port", ["grpc", "http"])
def test_plaintext_to_tls_port_fails_cleanly_and_is_logged(daemon, tmp_path, pki, port):
    target_port = daemon.grpc_port if port == "grpc" else daemon.http_port
    with grpc.insecure_channel(f"127.0.0.1:{target_port}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            grpc_export(channel, trace_request("plaintext", 1), timeout=5)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), info.value
    # A raw plaintext HTTP/1.1 request: the connection is closed, not left hanging.
    with socket.create_connection(("127.0.0.1", target_port), timeout=5) as sock:
        client = f"127.0.0.1:{sock.getsockname()[1]}"
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
        sock.settimeout(5)
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    assert b"200" not in data[:20], f"no plaintext success on a TLS port: {data[:100]!r}"
    lines = wait_until(lambda: [l for l in daemon.log_lines() if l.fields.get("client") == client], 5,
                       f"a log line for the plaintext client {client}:\n{daemon.stderr()}")
    assert len(lines) == 1 and lines[0].fields.get("reason"), [l.raw for l in lines]
    assert daemon.logs_matching("connection refused"), "logged as a refused connection"
    # TLS clients are unaffected.
    request = trace_request("after-plaintext", 1)
    with grpc.secure_channel(f"127.0.0.1:{target_port}", credentials(pki)) as channel:
        grpc_export(channel, request)
    assert span_ids_in(read_jsonl(tmp_path / "out.jsonl")) == request_span_ids(request)


def test_mutual_tls(otlpd, tmp_path, pki, tools):
    daemon = otlpd.start(base_config(tmp_path, grpc={"tls": tls_section(pki, mtls=True)},
                                     http={"tls": tls_section(pki, mtls=True)}, signals=["traces"],
                                     exporters={"file": {"path": str(tmp_path / "out.jsonl")}}))
    request = trace_request("mtls", 2)
    with grpc.secure_channel(daemon.grpc_target, credentials(pki, client_cert=True)) as channel:
        grpc_export(channel, request)
    with grpc.secure_channel(daemon.grpc_target, credentials(pki)) as channel:
        with pytest.raises(grpc.RpcError) as info:
            grpc_export(channel, trace_request("no-client-cert", 1), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    with_cert = curl("--cacert", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"),
                     "-H", "content-type: application/x-protobuf", daemon.http_url(scheme="https"),
                     data=trace_request("mtls-curl", 1).SerializeToString(), workdir=tmp_path)
    assert with_cert.statuses == [200], with_cert.verbose[-1500:]
    without = curl("--cacert", str(pki / "ca.pem"), "-H", "content-type: application/x-protobuf",
                   daemon.http_url(scheme="https"), data=b"", workdir=tmp_path)
    assert without.status != 200, "no client certificate, no service"
    assert span_ids_in(read_jsonl(tmp_path / "out.jsonl"))[:2] == request_span_ids(request)
    assert len(span_ids_in(read_jsonl(tmp_path / "out.jsonl"))) == 3


def served_certificate_serial(port: int, pki) -> int:
    """The serial number of the certificate a new TLS connection to `port` gets."""
    import ssl
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der, capture_output=True, check=True)
    return int(out.stdout.decode().strip().split("=")[1], 16)


def test_a_renewed_certificate_is_read_on_sighup_and_a_broken_one_keeps_the_running_one(otlpd, tmp_path, pki):
    """cert_file and key_file are read again on SIGHUP (a renewed certificate at the same paths): new
    connections get it; a broken file at a reload leaves the running config, and its certificate, in place."""
    import shutil
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.pem", "server.key"):
        shutil.copy(pki / name, live / name)
    section = {"cert_file": str(live / "server.pem"), "key_file": str(live / "server.key")}
    config = base_config(tmp_path, grpc={"tls": section}, http={"tls": section}, signals=["traces"])
    path = otlpd.write_config(config, "tls-reload.yaml", tmp_path)
    daemon = otlpd.start(path)
    first = served_certificate_serial(daemon.http_port, pki)
    # Renewed: the same key, a new certificate (a new serial) from the same CA.
    openssl("x509", "-req", "-in", str(pki / "server.csr"), "-CA", str(pki / "ca.pem"), "-CAkey", str(pki / "ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", str(pki / "server.ext"), "-out", str(live / "server.pem"), cwd=tmp_path)
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for_log("TLS certificate and key read again", timeout=10)
    second = served_certificate_serial(daemon.http_port, pki)
    assert second != first and served_certificate_serial(daemon.grpc_port, pki) == second
    (live / "server.pem").write_text("not a certificate\n")
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for_log("the running config stays", timeout=10)
    assert served_certificate_serial(daemon.http_port, pki) == second, "the running certificate stays"
    with grpc.secure_channel(daemon.grpc_target, credentials(pki), options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
        grpc_export(channel, trace_request("after-broken-reload", 1))
    assert daemon.stop() == 0
