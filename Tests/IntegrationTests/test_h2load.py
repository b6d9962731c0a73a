"""h2load (nghttp2) drives many concurrent requests; every one is answered
2xx and every span of every request is in the file, no more, no fewer."""
import re
import subprocess

import pytest

from otlpd_harness import (GRPC_PATHS, base_config, grpc_frame, read_jsonl, records, trace_request)

SPANS_PER_REQUEST = 10
REQUESTS = 300


def run_h2load(args, timeout=120):
    proc = subprocess.run(["h2load", *args], capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert requests and codes, f"h2load output not understood:\n{out}"
    return [int(x) for x in requests.groups()], [int(x) for x in codes.groups()], out


def span_count(path):
    return len(records(read_jsonl(path), "traces"))


@pytest.fixture
def daemon(otlpd, tmp_path, tools):
    return otlpd.start(base_config(tmp_path, signals=["traces"],
                                   processors={"batch": {"timeout": "50ms", "send_batch_size": 512}}))


def payload(tmp_path):
    request = trace_request("h2load", SPANS_PER_REQUEST)
    (tmp_path / "traces.pb").write_bytes(request.SerializeToString())
    (tmp_path / "traces.grpc").write_bytes(grpc_frame(request.SerializeToString()))


@pytest.mark.parametrize("port", ["grpc", "http"])
def test_h2load_grpc(daemon, tmp_path, port):
    payload(tmp_path)
    target = daemon.grpc_port if port == "grpc" else daemon.http_port
    (total, started, done, succeeded, failed, errored), (c2, c3, c4, c5), out = run_h2load([
        "-n", str(REQUESTS), "-c", "4", "-m", "16", "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-d", str(tmp_path / "traces.grpc"), f"http://127.0.0.1:{target}{GRPC_PATHS['traces']}"])
    assert succeeded == REQUESTS and failed == 0 and errored == 0, out
    assert c2 == REQUESTS, f"all {REQUESTS} requests 2xx:\n{out}"
    # gRPC reports errors in trailers with HTTP 200, so the file is the real check.
    assert span_count(tmp_path / "out.jsonl") == REQUESTS * SPANS_PER_REQUEST
    assert daemon.logs_matching("request refused") == [], "no gRPC request was refused"


@pytest.mark.parametrize("mode", ["h1", "h2c"])
def test_h2load_otlp_http(daemon, tmp_path, mode):
    payload(tmp_path)
    args = ["--h1"] if mode == "h1" else ["-m", "16"]
    (total, started, done, succeeded, failed, errored), (c2, c3, c4, c5), out = run_h2load([
        *args, "-n", str(REQUESTS), "-c", "4", "-H", "content-type: application/x-protobuf",
        "-d", str(tmp_path / "traces.pb"), daemon.http_url("/v1/traces")])
    assert succeeded == REQUESTS and failed == 0 and errored == 0, out
    assert c2 == REQUESTS, f"all {REQUESTS} requests 2xx:\n{out}"
    assert span_count(tmp_path / "out.jsonl") == REQUESTS * SPANS_PER_REQUEST
