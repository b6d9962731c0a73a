"""curl over HTTP/1.1 and HTTP/2 (h2c prior knowledge) against both ports:
protobuf and JSON bodies, content encodings, keep-alive, 100-continue, and
gRPC framed by hand."""
import json
import re
import subprocess
import zlib

import pytest
from google.protobuf import json_format

from otlpd_harness import (GRPC_PATHS, RESPONSE_TYPES, base_config, curl, grpc_frame, gzip_bytes, logs_request,
                           metrics_request, read_jsonl, records, request_span_ids, span_ids_in, spans_by_id,
                           to_otlp_json, trace_request, zstd_bytes)

VERSIONS = {"http1.1": ["--http1.1"], "h2c": ["--http2-prior-knowledge"]}
CONTENT_TYPES = {"proto": "application/x-protobuf", "json": "application/json"}


@pytest.fixture
def daemon(otlpd, tmp_path, tools):
    return otlpd.start(base_config(tmp_path))


def body_for(request, encoding):
    if encoding == "proto":
        return request.SerializeToString()
    return json.dumps(to_otlp_json(request)).encode()


def check_success(result, encoding, version, signal_name="traces"):
    assert result.returncode == 0, f"curl failed ({result.returncode}):\n{result.verbose[-2000:]}"
    assert result.statuses and all(s == 200 for s in result.statuses), f"statuses {result.statuses}; body {result.body[:300]!r}"
    assert all(v == ("1.1" if version == "http1.1" else "2") for v in result.http_versions), result.http_versions
    assert (result.header("content-type") or "").split(";")[0] == CONTENT_TYPES[encoding], result.headers
    if encoding == "proto":
        RESPONSE_TYPES[signal_name].FromString(result.body)  # raises if it is not the response message
    else:
        decoded = json.loads(result.body or b"null")
        assert isinstance(decoded, dict), f"a JSON Export*ServiceResponse object, got {result.body!r}"
        assert not decoded.get("partialSuccess", {}).get("rejectedSpans"), decoded


@pytest.mark.parametrize("encoding", ["proto", "json"])
@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("port", ["http", "grpc"])
def test_otlp_http_on_both_ports(daemon, tmp_path, port, version, encoding):
    request = trace_request(f"curl-{port}-{version}-{encoding}", 3)
    target_port = daemon.http_port if port == "http" else daemon.grpc_port
    result = curl(*VERSIONS[version], "-H", f"content-type: {CONTENT_TYPES[encoding]}",
                  daemon.http_url("/v1/traces", port=target_port), data=body_for(request, encoding), workdir=tmp_path)
    check_success(result, encoding, version)
    lines = read_jsonl(tmp_path / "out.traces.jsonl")
    found = spans_by_id(lines)
    assert sorted(found) == sorted(request_span_ids(request))
    sent = {s["spanId"]: s for rs in to_otlp_json(request)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    for span_id, (_, _, span) in found.items():
        assert span == sent[span_id], f"span {span_id} as written differs from what was sent"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_json_snake_case_keys_and_enum_names(daemon, tmp_path, version):
    """The protobuf JSON mapping lets parsers accept original field names and enum names."""
    request = trace_request("snake", 2)
    request.resource_spans[0].scope_spans[0].spans[0].status.code = 2
    request.resource_spans[0].scope_spans[0].spans[0].status.message = "boom"
    body = json_format.MessageToDict(request, preserving_proto_field_name=True)  # enums as names
    for rs in body["resource_spans"]:
        for ss in rs["scope_spans"]:
            for span in ss["spans"]:
                span["trace_id"] = __import__("base64").b64decode(span["trace_id"]).hex()
                span["span_id"] = __import__("base64").b64decode(span["span_id"]).hex()
    text = json.dumps(body)
    assert "SPAN_KIND_SERVER" in text and "STATUS_CODE_ERROR" in text and "start_time_unix_nano" in text
    result = curl(*VERSIONS[version], "-H", "content-type: application/json", daemon.http_url("/v1/traces"),
                  data=text.encode(), workdir=tmp_path)
    check_success(result, "json", version)
    found = spans_by_id(read_jsonl(tmp_path / "out.traces.jsonl"))
    assert sorted(found) == sorted(request_span_ids(request))
    sent = {s["spanId"]: s for rs in to_otlp_json(request)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    for span_id, (_, _, span) in found.items():
        assert span == sent[span_id], "written in canonical OTLP/JSON: camelCase keys, integer enums"
        assert isinstance(span["kind"], int)


@pytest.mark.parametrize("signal_name", ["metrics", "logs"])
@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_metrics_and_logs_over_http(daemon, tmp_path, signal_name, encoding):
    request = metrics_request("m-curl") if signal_name == "metrics" else logs_request("l-curl", 4)
    result = curl("-H", f"content-type: {CONTENT_TYPES[encoding]}", daemon.http_url(f"/v1/{signal_name}"),
                  data=body_for(request, encoding), workdir=tmp_path)
    check_success(result, encoding, "http1.1", signal_name)
    lines = read_jsonl(tmp_path / f"out.{signal_name}.jsonl")
    expected = to_otlp_json(request)
    key = "resourceMetrics" if signal_name == "metrics" else "resourceLogs"
    assert lines == [{key: expected[key]}], "the one resource sent, as OTLP/JSON"


@pytest.mark.parametrize("coding", ["gzip", "zstd", "deflate"])
@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("encoding", ["proto", "json"])
@pytest.mark.parametrize("port", ["http", "grpc"])
def test_content_encoding(daemon, tmp_path, coding, version, encoding, port):
    request = trace_request(f"enc-{coding}", 4)
    raw = body_for(request, encoding)
    compressed = {"gzip": gzip_bytes, "zstd": zstd_bytes, "deflate": zlib.compress}[coding](raw)
    target_port = daemon.http_port if port == "http" else daemon.grpc_port
    result = curl(*VERSIONS[version], "-H", f"content-type: {CONTENT_TYPES[encoding]}",
                  "-H", f"content-encoding: {coding}", daemon.http_url("/v1/traces", port=target_port),
                  data=compressed, workdir=tmp_path)
    check_success(result, encoding, version)
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(request_span_ids(request))


def test_keep_alive_several_requests_on_one_connection_http1(daemon, tmp_path):
    request = trace_request("keepalive", 2)
    url = daemon.http_url("/v1/traces")
    result = curl("--http1.1", "-H", "content-type: application/x-protobuf", url, url, url, url,
                  data=request.SerializeToString(), workdir=tmp_path)
    check_success(result, "proto", "http1.1")
    assert len(result.statuses) == 4
    assert len(set(result.local_ports)) == 1, f"one connection for all requests, local ports {result.local_ports}"
    assert result.verbose.count("Re-using existing connection") >= 3, result.verbose[-3000:]
    ids = span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))
    assert len(ids) == 8 and set(ids) == set(request_span_ids(request)), "each of the 4 requests kept"


@pytest.mark.parametrize("port", ["http", "grpc"])
def test_keep_alive_several_streams_on_one_h2c_connection(daemon, tmp_path, port):
    """nghttp sends several requests as streams of one HTTP/2 connection. (curl 7.88.1 cannot reuse an
    h2c prior-knowledge connection: curl/curl#10634, fixed in curl 8.0.)"""
    request = trace_request("h2c-streams", 2)
    body = tmp_path / "body.pb"
    body.write_bytes(request.SerializeToString())
    target_port = daemon.http_port if port == "http" else daemon.grpc_port
    urls = [daemon.http_url(f"/v1/traces?n={i}", port=target_port) for i in range(5)]  # distinct: nghttp dedupes
    proc = subprocess.run(["nghttp", "-v", "-n", "-H", "content-type: application/x-protobuf", "-d", str(body), *urls],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"nghttp failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    statuses = re.findall(r"recv \(stream_id=(\d+)\) :status: (\d+)", proc.stdout)
    assert len(statuses) == 5 and all(code == "200" for _, code in statuses), statuses
    assert len({stream for stream, _ in statuses}) == 5, "five streams"
    assert proc.stdout.count("send SETTINGS frame <length=12") == 1, "one connection (one client preface)"
    ids = span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))
    assert len(ids) == 10 and set(ids) == set(request_span_ids(request)), "each of the 5 requests kept"


def test_keep_alive_mixed_signals_with_next(daemon, tmp_path):
    traces, metrics, logs = trace_request("mixed", 2), metrics_request("mixed"), logs_request("mixed", 2)
    files = {}
    for name, message in (("t", traces), ("m", metrics), ("l", logs)):
        files[name] = tmp_path / f"{name}.pb"
        files[name].write_bytes(message.SerializeToString())
    ct = ["-H", "content-type: application/x-protobuf"]
    result = curl("--http1.1", *ct, "--data-binary", f"@{files['t']}", daemon.http_url("/v1/traces"), "--next",
                  *ct, "--data-binary", f"@{files['m']}", daemon.http_url("/v1/metrics"), "--next",
                  *ct, "--data-binary", f"@{files['l']}", daemon.http_url("/v1/logs"), workdir=tmp_path)
    assert result.statuses == [200, 200, 200], f"{result.statuses}\n{result.verbose[-2000:]}"
    assert len(set(result.local_ports)) == 1, f"one connection, local ports {result.local_ports}"
    assert len(records(read_jsonl(tmp_path / "out.traces.jsonl"), "traces")) == 2
    assert len(records(read_jsonl(tmp_path / "out.metrics.jsonl"), "metrics")) == 3
    assert len(records(read_jsonl(tmp_path / "out.logs.jsonl"), "logs")) == 2


def test_expect_100_continue_with_large_body(daemon, tmp_path):
    request = trace_request("large", 60, attribute_size=64 * 1024)  # ~4 MB
    assert request.ByteSize() > 3_000_000
    result = curl("--http1.1", "--expect100-timeout", "5", "-H", "Expect: 100-continue",
                  "-H", "content-type: application/x-protobuf", daemon.http_url("/v1/traces"),
                  data=request.SerializeToString(), workdir=tmp_path)
    assert re.search(r"^< HTTP/1\.1 100 Continue", result.verbose, re.M), \
        f"otlpd answers 'Expect: 100-continue' with 100 Continue:\n{result.verbose[-2000:]}"
    check_success(result, "proto", "http1.1")
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(request_span_ids(request))


@pytest.mark.parametrize("grpc_encoding", ["identity", "gzip", "zstd"])
@pytest.mark.parametrize("port", ["grpc", "http"])
def test_grpc_framed_by_hand_with_curl(daemon, tmp_path, grpc_encoding, port):
    """curl speaking gRPC over h2c: status in the trailers, zstd message compression."""
    request = trace_request(f"curl-grpc-{grpc_encoding}", 3)
    message = request.SerializeToString()
    if grpc_encoding == "identity":
        frame = grpc_frame(message)
    else:
        frame = grpc_frame(gzip_bytes(message) if grpc_encoding == "gzip" else zstd_bytes(message), compressed=True)
    target_port = daemon.grpc_port if port == "grpc" else daemon.http_port
    result = curl("--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers",
                  "-H", f"grpc-encoding: {grpc_encoding}", daemon.http_url(GRPC_PATHS["traces"], port=target_port),
                  data=frame, workdir=tmp_path)
    assert result.statuses == [200], result.verbose[-2000:]
    assert result.header("grpc-status") == "0", f"grpc-status trailer 0:\n{result.headers}"
    assert result.body[:1] == b"\x00" and len(result.body) >= 5, f"a framed (empty) response message: {result.body!r}"
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.traces.jsonl"))) == sorted(request_span_ids(request))
