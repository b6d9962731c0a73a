"""memory_limiter under a flood of large requests, through the real binary:
every answer is 200 or a retryable refusal with a retry delay (503 with
Retry-After, gRPC UNAVAILABLE with RetryInfo), the resident size stays
under limit_mib plus a constant, nothing accepted is lost, and otlpd takes
data again by itself once the flood stops."""
import collections
import threading
import time

import grpc
import requests

from otlpd_harness import base_config, rpc_status_details, run_otlpd, to_yaml, trace_request, wait_until

LIMIT_MIB = 64
# The process itself (runtime, threads, the file writer's render buffer) on top of what it holds.
CONSTANT_MIB = 64


def big_request(spans=6000):
    # About 4 MiB of protobuf: 16 such requests in flight are twice the limit.
    return trace_request("flood", spans, attribute_size=600)


def resident_mib(pid) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 >> 20


class PeakWatcher(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, resident_mib(self.pid))
            except OSError:
                return
            time.sleep(0.02)


def retry_delay_seconds(error):
    """The RetryInfo delay in the error's google.rpc.Status details, or None."""
    from google.rpc import error_details_pb2
    status = rpc_status_details(error)
    for detail in (status.details if status else []):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds
    return None


def span_count(directory) -> int:
    """Spans in the file exporter's output and its rotated backups, counted without parsing whole lines."""
    total = 0
    for path in directory.glob("out*.jsonl"):
        with open(path, "rb") as f:
            total += f.read().count(b'"spanId":')
    return total


def limiter_config(tmp_path):
    return base_config(tmp_path, processors={
        "memory_limiter": {"check_interval": "1s", "limit_mib": LIMIT_MIB, "spike_limit_mib": 16},
        "batch": {"timeout": "100ms"}}, signals=["traces"])


def test_http_flood_is_refused_with_retry_after_and_rss_stays_bounded(otlpd, tmp_path):
    d = otlpd.start(limiter_config(tmp_path))
    body = big_request().SerializeToString()
    spans_per_request = 6000
    watcher = PeakWatcher(d.proc.pid)
    watcher.start()
    statuses = collections.Counter()
    retry_after = set()
    lock = threading.Lock()
    deadline = time.monotonic() + 5

    def client():
        session = requests.Session()
        while time.monotonic() < deadline:
            try:
                response = session.post(d.http_url(), data=body, headers={"content-type": "application/x-protobuf"}, timeout=30)
            except requests.ConnectionError as error:
                with lock:
                    statuses[f"connection error: {error}"] += 1
                continue
            with lock:
                statuses[response.status_code] += 1
                if response.status_code == 503:
                    retry_after.add(response.headers.get("retry-after"))

    threads = [threading.Thread(target=client) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watcher.running = False
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0 and statuses[200] > 0, statuses
    assert retry_after == {"1"}
    assert watcher.peak < LIMIT_MIB + CONSTANT_MIB, f"peak RSS {watcher.peak} MiB"
    d.wait_for_log("request refused", status="503")

    # Recovered by itself: once the flood stops, a small request goes through (within a check interval or two).
    def accepted():
        return requests.post(d.http_url(), data=trace_request("after", 2).SerializeToString(),
                             headers={"content-type": "application/x-protobuf"}, timeout=10).status_code == 200
    wait_until(accepted, 10, "a request accepted after the flood", interval=0.25)
    # What was acknowledged is in the files (rotated ones too), all of it.
    expected = statuses[200] * spans_per_request + 2
    wait_until(lambda: span_count(tmp_path) == expected, 30, f"{expected} spans in the files")


def test_grpc_flood_gets_unavailable_with_retry_info(otlpd, tmp_path):
    d = otlpd.start(limiter_config(tmp_path))
    body = big_request().SerializeToString()
    watcher = PeakWatcher(d.proc.pid)
    watcher.start()
    codes = collections.Counter()
    delays = set()
    lock = threading.Lock()
    channels = [grpc.insecure_channel(f"127.0.0.1:{d.grpc_port}", options=[("grpc.max_send_message_length", 64 << 20)])
                for _ in range(4)]
    deadline = time.monotonic() + 6

    def client(channel):
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        while time.monotonic() < deadline:
            try:
                call(body, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAVAILABLE:
                    with lock:
                        delays.add(retry_delay_seconds(error))
            with lock:
                codes[code] += 1

    threads = [threading.Thread(target=client, args=(channels[i % 4],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watcher.running = False
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    assert codes[grpc.StatusCode.UNAVAILABLE] > 0 and codes[grpc.StatusCode.OK] > 0, codes
    assert delays == {1}, delays
    assert watcher.peak < LIMIT_MIB + CONSTANT_MIB, f"peak RSS {watcher.peak} MiB"
    # Recovered by itself: a normal export goes through once the flood stops.
    call = channels[0].unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)

    def accepted():
        try:
            call(trace_request("after", 2).SerializeToString(), timeout=10)
            return True
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            return False
    wait_until(accepted, 10, "an export accepted after the flood", interval=0.25)


def test_limits_are_validated(otlpd_binary, tmp_path):
    config = base_config(tmp_path, processors={"memory_limiter": {"limit_mib": 100, "spike_limit_mib": 100}})
    path = tmp_path / "limits.yaml"
    path.write_text(to_yaml(config) + "\n")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path))
    assert result.returncode == 1
    assert "processors.memory_limiter.spike_limit_mib" in result.stderr
    config = base_config(tmp_path, processors={"memory_limiter": {"check_interval": "1s"}})
    path.write_text(to_yaml(config) + "\n")
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path))
    assert result.returncode == 1
    assert "processors.memory_limiter.limit_mib" in result.stderr
