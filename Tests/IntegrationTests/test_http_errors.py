"""Every refusal of the SPEC on OTLP/HTTP: status, google.rpc.Status body in
the request's encoding, one log line naming the client and the reason.
And clients that send garbage: they get an error or a close and a log line,
while everyone else carries on and nothing accepted is lost."""
import json
import os
import socket
import ssl
import threading
import time

import grpc
import pytest
from google.rpc import status_pb2

from otlpd_harness import (base_config, curl, grpc_export, nghttp, gzip_bytes, read_jsonl, request_span_ids, span_ids_in,
                           to_otlp_json, trace_request, wait_until, zstd_bytes)

LIMIT = 64 * 1024
PROTO = "application/x-protobuf"
JSON = "application/json"
VERSIONS = {"http1.1": ["--http1.1"], "h2c": ["--http2-prior-knowledge"]}


@pytest.fixture
def daemon(otlpd, tmp_path, tools):
    return otlpd.start(base_config(tmp_path, http={"max_request_body_size": "64KiB"}))


def status_body(result, encoding):
    """The google.rpc.Status of a refusal, decoded in the request's encoding."""
    content_type = (result.header("content-type") or "").split(";")[0].strip()
    assert content_type == encoding, f"error body in the request's encoding {encoding}, got {content_type!r}"
    if encoding == PROTO:
        status = status_pb2.Status()
        status.ParseFromString(result.body)
        return status.code, status.message
    decoded = json.loads(result.body)
    assert isinstance(decoded, dict) and set(decoded) <= {"code", "message", "details"}, f"a Status object: {decoded}"
    return decoded.get("code", 0), decoded.get("message", "")


def assert_refusal_logged(daemon, result, status):
    """Exactly one 'request refused' line, for this client (its port), with the status and a reason."""
    client = f"127.0.0.1:{result.local_ports[-1]}"
    lines = daemon.wait_for_log("request refused", client=client)
    assert len(lines) == 1, f"one line per refusal for {client}: {[l.raw for l in lines]}"
    line = lines[0]
    assert line.level == "warn", line.raw
    assert line.fields.get("status") == str(status), line.raw
    assert line.fields.get("reason"), f"the reason is logged: {line.raw}"
    assert line.fields.get("protocol") == "http", line.raw
    return line


def post(daemon, tmp_path, body, *, content_type=PROTO, path="/v1/traces", version="http1.1", extra=()):
    args = [*VERSIONS[version]]
    if content_type is not None:
        args += ["-H", f"content-type: {content_type}"]
    args += list(extra)
    return curl(*args, daemon.http_url(path), data=body, workdir=tmp_path)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_400_protobuf_that_does_not_decode(daemon, tmp_path, version):
    result = post(daemon, tmp_path, b"\x0a\xff\xff\xff\xff\x0f\x01garbage", version=version)
    assert result.status == 400, f"got {result.status}: {result.body!r}"
    code, message = status_body(result, PROTO)
    assert code == 3 and message, f"INVALID_ARGUMENT with a message, got {code} {message!r}"
    assert_refusal_logged(daemon, result, 400)
    assert read_jsonl(tmp_path / "out.traces.jsonl") == []


@pytest.mark.parametrize("body", [b"{not json", b'{"resourceSpans": 5}', b"[1, 2]",
                                  b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz-not-hex","spanId":"00f067aa0ba902b7"}]}]}]}'],
                         ids=["syntax", "wrong-type", "not-object", "bad-hex-id"])
def test_400_json_that_does_not_decode(daemon, tmp_path, body):
    result = post(daemon, tmp_path, body, content_type=JSON)
    assert result.status == 400, f"got {result.status}: {result.body!r}"
    code, message = status_body(result, JSON)
    assert code == 3 and message, f"INVALID_ARGUMENT with a message, got {code} {message!r}"
    assert_refusal_logged(daemon, result, 400)
    assert read_jsonl(tmp_path / "out.traces.jsonl") == []


@pytest.mark.parametrize("encoding", [PROTO, JSON])
def test_413_past_max_request_body_size_http1(daemon, tmp_path, encoding):
    body = big_body(encoding)
    result = post(daemon, tmp_path, body, content_type=encoding)
    assert result.status == 413, f"got {result.status} (curl {result.returncode}): {result.verbose[-1500:]}"
    code, message = status_body(result, encoding)
    assert code != 0 and message, f"a Status with a code and message, got {code} {message!r}"
    assert_refusal_logged(daemon, result, 413)
    # Under the limit is fine.
    small = trace_request("small", 2)
    ok = post(daemon, tmp_path, small.SerializeToString())
    assert ok.status == 200
    assert span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl")) == request_span_ids(small)


@pytest.mark.parametrize("encoding", [PROTO, JSON])
def test_413_past_max_request_body_size_h2c(daemon, tmp_path, encoding):
    """Over HTTP/2 with nghttp: otlpd may answer before the upload ends and reset the stream with
    NO_ERROR (RFC 9113 8.1), which curl 7.88 reports as an error instead of showing the response."""
    result = nghttp(daemon.http_url("/v1/traces"), data=big_body(encoding), headers=[f"content-type: {encoding}"],
                    workdir=tmp_path)
    assert result.statuses == [413], f"got {result.statuses}:\n{result.verbose[-1500:]}"
    assert result.header("content-type") == encoding
    if encoding == PROTO:
        status = status_pb2.Status()
        status.ParseFromString(result.body)
        code, message = status.code, status.message
    else:
        decoded = json.loads(result.body)
        code, message = decoded.get("code", 0), decoded.get("message", "")
    assert code != 0 and message, f"a google.rpc.Status body: {result.body[:200]!r}"
    lines = daemon.wait_for_log("request refused", status="413")
    assert len(lines) == 2, "one line per refused request (two requests: headers, then body)"
    small = trace_request("small", 2)
    ok = nghttp(daemon.http_url("/v1/traces"), data=small.SerializeToString(), headers=[f"content-type: {PROTO}"],
                workdir=tmp_path)
    assert ok.statuses == [200]
    assert span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl")) == request_span_ids(small) * 2


def big_body(encoding):
    request = trace_request("big", 4, attribute_size=30 * 1024)
    body = request.SerializeToString() if encoding == PROTO else json.dumps(to_otlp_json(request)).encode()
    assert len(body) > LIMIT
    return body


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_413_when_only_the_decompressed_size_is_over(daemon, tmp_path, coding):
    """A compression bomb: 4 MiB of zeros in a few KB on the wire."""
    raw = b"\x0a" + b"\x00" * (4 << 20)
    compressed = gzip_bytes(raw) if coding == "gzip" else zstd_bytes(raw)
    assert len(compressed) < LIMIT
    started = time.monotonic()
    result = post(daemon, tmp_path, compressed, extra=["-H", f"content-encoding: {coding}"])
    assert result.status == 413, f"got {result.status}: {result.body[:200]!r}"
    code, message = status_body(result, PROTO)
    assert code != 0 and message
    assert_refusal_logged(daemon, result, 413)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_415_unknown_content_type(daemon, tmp_path, content_type, version):
    extra = ["-H", "content-type:"] if content_type is None else []  # curl -d would add form-urlencoded
    result = post(daemon, tmp_path, trace_request().SerializeToString(), content_type=content_type, extra=extra,
                  version=version)
    assert result.status == 415, f"got {result.status}: {result.body!r}"
    code, message = status_body(result, PROTO)
    assert code != 0 and message
    if content_type:
        assert content_type in message, f"the message names the type: {message!r}"
    assert_refusal_logged(daemon, result, 415)
    assert read_jsonl(tmp_path / "out.traces.jsonl") == []


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("encoding", [PROTO, JSON])
def test_404_unknown_path_names_the_valid_paths(daemon, tmp_path, encoding, version):
    result = post(daemon, tmp_path, b"{}" if encoding == JSON else b"", content_type=encoding, path="/v1/trace",
                  version=version)
    assert result.status == 404, f"got {result.status}"
    code, message = status_body(result, encoding)
    assert code != 0
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        assert path in message, f"404 message names {path}: {message!r}"
    assert_refusal_logged(daemon, result, 404)


def test_configured_paths(otlpd, tmp_path, tools):
    daemon = otlpd.start(base_config(tmp_path, http={"traces_url_path": "/otlp/t", "metrics_url_path": "/otlp/m",
                                                     "logs_url_path": "/otlp/l"}))
    request = trace_request("custom-path", 2)
    ok = post(daemon, tmp_path, request.SerializeToString(), path="/otlp/t")
    assert ok.status == 200, f"POST /otlp/t: {ok.status}"
    moved = post(daemon, tmp_path, request.SerializeToString(), path="/v1/traces")
    assert moved.status == 404
    code, message = status_body(moved, PROTO)
    assert all(p in message for p in ("/otlp/t", "/otlp/m", "/otlp/l")), f"names the configured paths: {message!r}"
    assert span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl")) == request_span_ids(request)


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_405_wrong_method_with_allow_post(daemon, tmp_path, method, version):
    result = curl(*VERSIONS[version], "-X", method, "-H", f"content-type: {PROTO}", daemon.http_url("/v1/traces"), workdir=tmp_path)
    assert result.status == 405, f"got {result.status}"
    allow = result.header("allow")
    assert allow is not None and "POST" in [m.strip() for m in allow.split(",")], f"Allow: POST, got {allow!r}"
    code, message = status_body(result, PROTO)
    assert code != 0 and method in message, message
    assert_refusal_logged(daemon, result, 405)


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("encoding", [PROTO, JSON])
def test_400_unsupported_content_encoding(daemon, tmp_path, encoding, version):
    request = trace_request("br", 1)
    body = request.SerializeToString() if encoding == PROTO else json.dumps(to_otlp_json(request)).encode()
    result = post(daemon, tmp_path, body, content_type=encoding, extra=["-H", "content-encoding: br"],
                  version=version)
    assert result.status == 400, f"got {result.status}"
    code, message = status_body(result, encoding)
    assert code == 3 and "br" in message, f"{code} {message!r}"
    assert_refusal_logged(daemon, result, 400)
    assert read_jsonl(tmp_path / "out.traces.jsonl") == []


@pytest.mark.parametrize("version", list(VERSIONS))
def test_corrupt_gzip_body_is_400(daemon, tmp_path, version):
    result = post(daemon, tmp_path, b"\x1f\x8b\x08\x00garbage-not-deflate", extra=["-H", "content-encoding: gzip"],
                  version=version)
    assert result.status == 400, f"got {result.status}"
    code, message = status_body(result, PROTO)
    assert code == 3 and message
    assert_refusal_logged(daemon, result, 400)


# --------------------------------------------------------------------------
# Garbage on the wire


class SteadyClient:
    """Sends small gRPC and HTTP requests in a loop and records every acknowledged span id."""

    def __init__(self, daemon, tmp_path):
        self.daemon = daemon
        self.tmp_path = tmp_path
        self.acked: list[str] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        import urllib.request
        with grpc.insecure_channel(self.daemon.grpc_target) as channel:
            n = 0
            while not self.stop.is_set():
                request = trace_request("steady", 2)
                try:
                    if n % 2 == 0:
                        grpc_export(channel, request, timeout=5)
                    else:
                        http_request = urllib.request.Request(self.daemon.http_url("/v1/traces"),
                                                              data=request.SerializeToString(),
                                                              headers={"content-type": PROTO}, method="POST")
                        with urllib.request.urlopen(http_request, timeout=5) as response:
                            assert response.status == 200
                    self.acked += request_span_ids(request)
                except Exception as error:  # noqa: BLE001 - every failure is reported
                    self.errors.append(f"{type(error).__name__}: {error}")
                n += 1
                time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        wait_until(lambda: len(self.acked) >= 10 or self.errors, 10, "the steady client's first requests")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def read_until_closed(sock, timeout=5.0) -> tuple[bytes, str]:
    """Reads until the peer closes; returns (bytes received, how it ended)."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, "reset"
        except socket.timeout:
            return received, "timeout"
        if not chunk:
            return received, "closed"
        received += chunk
    return received, "timeout"


def connection_lines(daemon, client):
    return [l for l in daemon.log_lines()
            if l.fields.get("client") == client and l.message in ("connection refused", "request refused")]


@pytest.mark.parametrize("port", ["grpc", "http"])
@pytest.mark.parametrize("garbage", ["random", "h2-preface-then-random", "tls-client-hello"])
def test_garbage_client_gets_error_or_close_others_unaffected(daemon, tmp_path, port, garbage):
    target = daemon.grpc_port if port == "grpc" else daemon.http_port
    before = trace_request("before-garbage", 3)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, before)
    with SteadyClient(daemon, tmp_path) as steady:
        sock = socket.create_connection(("127.0.0.1", target), timeout=5)
        client = f"127.0.0.1:{sock.getsockname()[1]}"
        how = None
        if garbage == "tls-client-hello":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            try:
                tls = context.wrap_socket(sock, server_hostname="localhost")
                tls.close()
                pytest.fail("a TLS handshake succeeded on a plaintext port")
            except (ssl.SSLError, ConnectionResetError, OSError) as error:
                how = f"handshake failed: {error}"
        else:
            payload = bytes(b ^ 0x5A for b in os.urandom(4096))
            if payload[:1] in (b"P", b"G", b"O", b"H", b"D", b"C", b"T"):
                payload = b"\x00" + payload
            if garbage == "h2-preface-then-random":
                payload = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x04\x00\x00\x00\x00\x00" + payload
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            received, how = read_until_closed(sock)
            assert how in ("closed", "reset"), f"otlpd closes a connection that sends garbage; got {how} after {received[:100]!r}"
        sock.close()
        lines = wait_until(lambda: connection_lines(daemon, client), 5,
                           f"a log line naming the garbage client {client}:\n{daemon.stderr()}")
        assert len(lines) == 1, f"one line for the connection: {[l.raw for l in lines]}"
        assert lines[0].fields.get("reason"), lines[0].raw
        # The steady client kept going through it.
        count = len(steady.acked)
        wait_until(lambda: len(steady.acked) >= count + 10 or steady.errors, 10, "more steady requests")
    assert steady.errors == [], f"a well-behaved client noticed the garbage: {steady.errors[:5]}"
    assert daemon.running, "otlpd still runs"
    ids = set(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl")))
    missing = (set(request_span_ids(before)) | set(steady.acked)) - ids
    assert not missing, f"{len(missing)} acknowledged spans missing from the file"
