"""The persistent queue (`sending_queue.storage: file_storage`): a request is
answered once it is durable on disk, and from then on it reaches the upstream
whatever happens to otlpd: kill -9, SIGTERM, a corrupt file, a reload. Counted
by span id at a real upstream; duplicates are allowed (and reported), losses
are not."""
import collections
import json
import os
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from otlpd_harness import (base_config, curl, grpc_export, read_jsonl, request_span_ids, rpc_status_details, run_otlpd, span_ids_in,
                           trace_request, wait_until)
from upstreams import GrpcSink, Refusal, free_port


# A record's header on disk: length, CRC-32C, append time, item count (DESIGN.md).
HEADER = 4 + 4 + 8 + 4


def persistent_config(tmp_path: Path, endpoint: str, *, exporter_type="otlp_grpc", storage=None, exporter=None, batch=True,
                      signals=("traces",), **kwargs) -> dict:
    """otlp receiver -> [batch] -> otlp_grpc (or otlp_http) at `endpoint`, queued on disk in tmp_path/queue."""
    settings = {"endpoint": endpoint, "sending_queue": {"storage": "file_storage"},
                "retry_on_failure": {"initial_interval": "50ms", "max_interval": "200ms"}}
    if exporter_type == "otlp_grpc":
        settings["tls"] = {"insecure": True}
    settings.update(exporter or {})
    config = base_config(tmp_path, processors={"batch": {}} if batch else None, exporters={exporter_type: settings}, signals=signals,
                         **kwargs)
    config["extensions"] = {"file_storage": {"directory": str(tmp_path / "queue"), **(storage or {})}}
    config["service"]["extensions"] = ["file_storage"]
    return config


def queue_dir(tmp_path: Path, exporter="otlp_grpc", signal_name="traces") -> Path:
    return tmp_path / "queue" / exporter / signal_name


def segments(tmp_path: Path, **kwargs) -> list[Path]:
    return sorted(queue_dir(tmp_path, **kwargs).glob("segment-*.log"))


class Senders:
    """Several gRPC clients sending small trace requests as fast as they are
    answered, remembering the span ids of every request answered OK."""

    def __init__(self, target: str, clients: int = 4, spans: int = 20):
        self.target, self.clients, self.spans = target, clients, spans
        self.acknowledged: list[str] = []
        self.refused = 0
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(index,), daemon=True) for index in range(clients)]

    def _run(self, index: int):
        with grpc.insecure_channel(self.target) as channel:
            number = 0
            while not self.stop_flag.is_set():
                request = trace_request(f"sender-{index}", self.spans)
                number += 1
                try:
                    grpc_export(channel, request, timeout=5)
                except grpc.RpcError:
                    with self.lock:
                        self.refused += 1
                    if self.stop_flag.is_set():
                        return
                    time.sleep(0.01)
                    continue
                with self.lock:
                    self.acknowledged += request_span_ids(request)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def __exit__(self, *exc):
        self.stop()

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)


def send(channel, prefix: str, requests: int, spans: int = 3) -> list[str]:
    """Sends `requests` trace requests one after another; returns their span ids (each was answered OK)."""
    sent = []
    for index in range(requests):
        request = trace_request(f"{prefix}-{index}", spans)
        grpc_export(channel, request, timeout=5)
        sent += request_span_ids(request)
    return sent


def wait_for_all(sink: GrpcSink, acknowledged: list[str], timeout: float = 30) -> collections.Counter:
    """Waits until every acknowledged span reached the sink; returns the arrivals' counts."""
    wanted = set(acknowledged)

    def arrived():
        counts = collections.Counter(sink.span_ids())
        missing = wanted - set(counts)
        return counts if not missing else None

    try:
        return wait_until(arrived, timeout, "every acknowledged span at the upstream")
    except AssertionError:
        counts = collections.Counter(sink.span_ids())
        raise AssertionError(f"{len(wanted - set(counts))} of {len(wanted)} acknowledged spans never arrived "
                             f"({len(counts)} distinct arrived)")


def duplicates(counts: collections.Counter) -> int:
    return sum(count - 1 for count in counts.values() if count > 1)


def test_kill_9_with_the_upstream_down_loses_nothing_acknowledged(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}")
    forwarder = otlpd.start(config)
    with Senders(forwarder.grpc_target) as senders:
        wait_until(lambda: senders.count() >= 2000, 30, "2,000 spans acknowledged")
        # Mid-stream: requests are being written while the process dies.
        forwarder.send_signal(signal.SIGKILL)
        forwarder.proc.wait()
    acknowledged = list(senders.acknowledged)
    assert segments(tmp_path), "the queue is on disk"
    sink = GrpcSink(port=port)
    try:
        restarted = otlpd.start(config)
        restarted.wait_for_log("holds data from before the start")
        counts = wait_for_all(sink, acknowledged)
        print(f"kill -9, upstream down: {len(acknowledged)} spans acknowledged, {len(set(counts))} distinct arrived, "
              f"{duplicates(counts)} duplicates")
        assert restarted.logs_matching("failed its check") == [], "a cut tail is cut silently"
        assert restarted.stop() == 0
    finally:
        sink.stop()


def test_kill_9_with_the_upstream_slow_loses_nothing_acknowledged(otlpd, tmp_path):
    sink = GrpcSink(delay=0.2)
    try:
        config = persistent_config(tmp_path, sink.endpoint)
        forwarder = otlpd.start(config)
        with Senders(forwarder.grpc_target) as senders:
            wait_until(lambda: senders.count() >= 2000, 30, "2,000 spans acknowledged")
            started = time.monotonic()
            before = senders.count()
            wait_until(lambda: senders.count() >= before + 400, 10, "more answers")
            # Answers do not wait for the slow upstream: 400 spans in well under the 200 ms it takes per call.
            assert time.monotonic() - started < 2.0
            forwarder.send_signal(signal.SIGKILL)
            forwarder.proc.wait()
        acknowledged = list(senders.acknowledged)
        restarted = otlpd.start(config)
        counts = wait_for_all(sink, acknowledged, timeout=60)
        print(f"kill -9, upstream slow: {len(acknowledged)} spans acknowledged, {len(set(counts))} distinct arrived, "
              f"{duplicates(counts)} duplicates")
        assert restarted.stop() == 0
    finally:
        sink.stop()


def test_sigterm_with_the_upstream_down_keeps_the_queue_and_exits_promptly(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}")
    forwarder = otlpd.start(config)
    acknowledged = []
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        acknowledged += send(channel, "term", 20, 5)
    started = time.monotonic()
    assert forwarder.stop() == 0
    # The upstream refuses connections: the drain ends at the first failure, not at shutdown_timeout.
    assert time.monotonic() - started < 5, "stopped promptly"
    assert segments(tmp_path), "nothing unconfirmed was deleted"
    sink = GrpcSink(port=port)
    try:
        restarted = otlpd.start(config)
        counts = wait_for_all(sink, acknowledged)
        assert duplicates(counts) == 0
        assert restarted.stop() == 0
    finally:
        sink.stop()


def test_sigterm_with_the_upstream_up_drains_the_queue(otlpd, tmp_path):
    sink = GrpcSink(delay=0.05)
    try:
        config = persistent_config(tmp_path, sink.endpoint, exporter={"sending_queue": {"storage": "file_storage", "num_consumers": 1}})
        forwarder = otlpd.start(config)
        acknowledged = []
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            acknowledged += send(channel, "drain", 30, 5)
        assert forwarder.stop() == 0
        # Sent before the exit: a pod that never comes back leaves nothing behind.
        assert set(acknowledged) <= set(sink.span_ids())
    finally:
        sink.stop()


def stop_with_queued(otlpd, tmp_path, port, requests=6, spans=5):
    """Queues `requests` requests with the upstream down and stops otlpd; returns the config and their span ids in order."""
    config = persistent_config(tmp_path, f"127.0.0.1:{port}", batch=False)
    forwarder = otlpd.start(config)
    sent = []
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        for index in range(requests):
            request = trace_request(f"disk-{index}", spans)
            grpc_export(channel, request, timeout=5)
            sent.append(request_span_ids(request))
    assert forwarder.stop() == 0
    return config, sent


def test_a_truncated_tail_is_cut_silently(otlpd, tmp_path):
    port = free_port()
    config, sent = stop_with_queued(otlpd, tmp_path, port)
    segment = segments(tmp_path)[-1]
    # A write cut by kill -9: a header announcing 100 bytes, and only 10 of them.
    with open(segment, "ab") as f:
        f.write((100).to_bytes(4, "big") + b"\0" * (HEADER - 4) + b"x" * 10)
    sink = GrpcSink(port=port)
    try:
        restarted = otlpd.start(config)
        counts = wait_for_all(sink, [span for request in sent for span in request])
        assert duplicates(counts) == 0
        assert restarted.logs_matching("failed its check") == []
        assert not list(queue_dir(tmp_path).glob("quarantine-*")), "nothing quarantined"
        assert restarted.stop() == 0
    finally:
        sink.stop()


def test_a_flipped_byte_quarantines_one_record_and_delivers_the_rest(otlpd, tmp_path):
    port = free_port()
    config, sent = stop_with_queued(otlpd, tmp_path, port)
    segment = segments(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    # The third record: walk the length prefixes (20-byte headers) to its payload's middle.
    offset = 0
    for _ in range(2):
        offset += HEADER + int.from_bytes(data[offset:offset + 4], "big")
    length = int.from_bytes(data[offset:offset + 4], "big")
    data[offset + HEADER + length // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    sink = GrpcSink(port=port)
    try:
        restarted = otlpd.start(config)
        expected = [span for index, request in enumerate(sent) if index != 2 for span in request]
        wait_for_all(sink, expected)
        lines = restarted.wait_for_log("failed its check")
        assert len(lines) == 1 and "quarantine-" in lines[0].fields["file"], lines[0].raw
        quarantined = Path(lines[0].fields["file"])
        assert quarantined.exists() and quarantined.stat().st_size == HEADER + length
        assert set(sent[2]).isdisjoint(sink.span_ids()), "the corrupt record is not sent"
        assert restarted.stop() == 0
    finally:
        sink.stop()


def test_a_deleted_offset_file_sends_everything_on_disk_again(otlpd, tmp_path):
    sink = GrpcSink()
    port = sink.port
    config = persistent_config(tmp_path, sink.endpoint, batch=False)
    forwarder = otlpd.start(config)
    confirmed, queued = [], []
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        confirmed += send(channel, "before", 3, 3)
        wait_for_all(sink, confirmed)
        sink.stop()
        queued += send(channel, "queued", 3, 3)
    assert forwarder.stop() == 0
    offset_file = queue_dir(tmp_path) / "confirmed"
    assert offset_file.exists()
    offset_file.unlink()
    again = GrpcSink(port=port)
    try:
        restarted = otlpd.start(config)
        counts = wait_for_all(again, queued)
        resent = len(set(confirmed) & set(counts))
        print(f"offset file deleted: all {len(queued)} queued spans arrived, and {resent} confirmed ones again (at least once)")
        assert restarted.stop() == 0
    finally:
        again.stop()


def test_a_full_queue_answers_resource_exhausted_then_recovers(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}", batch=False, storage={"max_size": "1MiB"})
    forwarder = otlpd.start(config)
    acknowledged = []
    refusal = None
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        for index in range(400):
            request = trace_request(f"full-{index}", 50, attribute_size=100)
            try:
                grpc_export(channel, request, timeout=5)
            except grpc.RpcError as error:
                refusal = error
                break
            acknowledged += request_span_ids(request)
    assert refusal is not None, "1 MiB fills up"
    assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.details()
    assert "max_size" in refusal.details()
    status = rpc_status_details(refusal)
    assert status is not None and status.details, "RetryInfo tells the SDK to retry later"
    request = trace_request("full-http", 50, attribute_size=100)
    result = curl("-H", "Content-Type: application/x-protobuf", forwarder.http_url(), data=request.SerializeToString(), workdir=tmp_path)
    assert result.statuses == [429] and result.header("retry-after"), result.headers
    services = json.loads(curl(forwarder.telemetry_url("/services"), workdir=tmp_path).body)
    exporter = services["exporters"][0]
    assert "max_size" in exporter["queue"]["full"] and exporter["queue"]["persistent"] is True
    status = run_otlpd(otlpd.binary, "status", "--endpoint", f"127.0.0.1:{forwarder.telemetry_port}")
    assert "queue full: the persistent queue is full" in status.stdout, status.stdout
    assert len(forwarder.logs_matching("refuses requests")) == 1, "logged once while it stays full"
    sink = GrpcSink(port=port)
    try:
        wait_for_all(sink, acknowledged)
        # Space came back as the upstream confirmed: requests are taken again.
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            wait_until(lambda: _accepted(channel), 10, "a request accepted again")
        forwarder.wait_for_log("takes requests again")
        services = json.loads(curl(forwarder.telemetry_url("/services"), workdir=tmp_path).body)
        assert services["exporters"][0]["queue"]["full"] is None
        assert forwarder.stop() == 0
    finally:
        sink.stop()


def _accepted(channel) -> bool:
    try:
        grpc_export(channel, trace_request("after-full", 5), timeout=5)
        return True
    except grpc.RpcError:
        return False


def test_a_permanent_refusal_goes_to_the_dead_letter_file(otlpd, tmp_path):
    sink = GrpcSink(script=[Refusal(grpc.StatusCode.INVALID_ARGUMENT, "span name too long")])
    try:
        config = persistent_config(tmp_path, sink.endpoint, batch=False)
        forwarder = otlpd.start(config)
        refused = trace_request("refused-svc", 3)
        kept = trace_request("kept-svc", 2)
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, refused, timeout=5)  # acknowledged: it is on disk
            wait_until(lambda: sink.calls, 5, "the first attempt")
            grpc_export(channel, kept, timeout=5)
        wait_for_all(sink, request_span_ids(kept))
        dead_letter = tmp_path / "queue" / "otlp_grpc" / "dead-letter.jsonl"
        wait_until(dead_letter.exists, 5, "the dead-letter file")
        lines = [json.loads(line) for line in dead_letter.read_text().splitlines()]
        assert len(lines) == 1
        line = lines[0]
        assert line["exporter"] == "otlp_grpc" and line["signal"] == "traces" and line["status"] == "INVALID_ARGUMENT"
        assert line["message"] == "span name too long" and line["time"].endswith("Z")
        assert sorted(span_ids_in([line["request"]])) == sorted(request_span_ids(refused))
        log = forwarder.wait_for_log("dead-letter file")
        assert len(log) == 1 and log[0].fields["upstream"] == sink.endpoint and "span name too long" in log[0].fields["reason"]
        assert log[0].fields["component"] == "exporter/otlp_grpc"
        metrics = curl(forwarder.telemetry_url(), workdir=tmp_path).body.decode()
        assert 'otlpd_exporter_dead_letter_records_total{data_type="traces",exporter="otlp_grpc"' in metrics
        status = run_otlpd(otlpd.binary, "status", "--endpoint", f"127.0.0.1:{forwarder.telemetry_port}")
        assert "DEAD-LETTERED" in status.stdout and "on disk" in status.stdout, status.stdout
        assert forwarder.stop() == 0
    finally:
        sink.stop()


def test_a_partial_success_rejection_is_dead_lettered(otlpd, tmp_path):
    sink = GrpcSink(partial=(2, "2 spans had no trace id"))
    try:
        config = persistent_config(tmp_path, sink.endpoint, batch=False)
        forwarder = otlpd.start(config)
        request = trace_request("partial-svc", 4)
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            grpc_export(channel, request, timeout=5)
        dead_letter = tmp_path / "queue" / "otlp_grpc" / "dead-letter.jsonl"
        wait_until(dead_letter.exists, 5, "the dead-letter file")
        line = json.loads(dead_letter.read_text().splitlines()[0])
        assert line["status"] == "partial success" and "rejected 2 of 4" in line["message"]
        assert forwarder.stop() == 0
    finally:
        sink.stop()


def test_two_otlpd_on_one_queue_directory(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}")
    first = otlpd.start(config)
    second = otlpd.start(config, wait_ready=False)
    assert second.proc.wait(timeout=20) != 0
    text = second.stderr()
    assert f"in use by another otlpd (pid {first.proc.pid})" in text, text[-2000:]
    # The first one still works and its queue is intact.
    with grpc.insecure_channel(first.grpc_target) as channel:
        grpc_export(channel, trace_request("still-here", 2), timeout=5)
    assert first.stop() == 0


def test_reload_hands_the_queue_to_the_changed_exporter(otlpd, tmp_path):
    first_sink = GrpcSink()
    second_sink = GrpcSink()
    try:
        config = persistent_config(tmp_path, first_sink.endpoint, batch=False)
        config_path = otlpd.write_config(config, "reload.yaml", tmp_path)
        forwarder = otlpd.start(config_path)
        confirmed, queued = [], []
        with grpc.insecure_channel(forwarder.grpc_target) as channel:
            confirmed += send(channel, "early", 3, 3)
            wait_for_all(first_sink, confirmed)
            first_sink.stop()
            queued += send(channel, "queued", 5, 3)
        # A changed exporter (another endpoint): its replacement takes over the open queue.
        config["exporters"]["otlp_grpc"]["endpoint"] = second_sink.endpoint
        config_path.write_text(json.dumps(config))
        forwarder.send_signal(signal.SIGHUP)
        forwarder.wait_for_log("reloaded", timeout=10)
        counts = wait_for_all(second_sink, queued)
        assert duplicates(counts) == 0
        assert set(confirmed).isdisjoint(second_sink.span_ids()), "nothing confirmed is sent again"
        assert forwarder.logs_matching("holds data from before the start") == [], "handed over, not reopened"
        assert forwarder.logs_matching("in use by another") == []
        assert forwarder.stop() == 0
    finally:
        first_sink.stop()
        second_sink.stop()


def test_reload_keeps_an_unchanged_exporters_queue_open(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}", batch=False)
    config_path = otlpd.write_config(config, "reload.yaml", tmp_path)
    forwarder = otlpd.start(config_path)
    queued = []
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        queued += send(channel, "kept", 4, 3)
    config["processors"] = {"attributes": {"actions": [{"key": "reloaded", "value": "yes", "action": "insert"}]}}
    config["service"]["pipelines"]["traces"]["processors"] = ["attributes"]
    config_path.write_text(json.dumps(config))
    forwarder.send_signal(signal.SIGHUP)
    forwarder.wait_for_log("reloaded", timeout=10)
    sink = GrpcSink(port=port)
    try:
        counts = wait_for_all(sink, queued)
        assert duplicates(counts) == 0
        assert forwarder.stop() == 0
    finally:
        sink.stop()


def test_otlp_http_exporter_with_a_persistent_queue_survives_kill_9(otlpd, tmp_path):
    from upstreams import HTTPSink
    port = free_port()
    config = persistent_config(tmp_path, f"http://127.0.0.1:{port}", exporter_type="otlp_http")
    forwarder = otlpd.start(config)
    with Senders(forwarder.grpc_target, clients=2) as senders:
        wait_until(lambda: senders.count() >= 500, 30, "500 spans acknowledged")
        forwarder.send_signal(signal.SIGKILL)
        forwarder.proc.wait()
    acknowledged = list(senders.acknowledged)
    sink = HTTPSink(port=port)
    try:
        restarted = otlpd.start(config)
        wanted = set(acknowledged)
        wait_until(lambda: wanted <= set(sink.span_ids()), 30, "every acknowledged span at the HTTP upstream")
        assert restarted.stop() == 0
    finally:
        sink.stop()


def test_queue_telemetry(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}", batch=False)
    forwarder = otlpd.start(config)
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        for index in range(3):
            grpc_export(channel, trace_request(f"telemetry-{index}", 4), timeout=5)
    time.sleep(1.1)
    metrics = curl(forwarder.telemetry_url(), workdir=tmp_path).body.decode()
    values = {}
    for line in metrics.splitlines():
        if line.startswith(("otelcol_exporter_queue_size{", "otlpd_exporter_queue_bytes{", "otlpd_exporter_queue_oldest_age_seconds{",
                            "otelcol_exporter_queue_capacity{", "otlpd_exporter_queue_syncs_total{")) and 'data_type="traces"' in line:
            values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    assert values["otelcol_exporter_queue_size"] == 3
    assert values["otlpd_exporter_queue_bytes"] > 0
    assert values["otlpd_exporter_queue_oldest_age_seconds"] >= 1
    assert values["otelcol_exporter_queue_capacity"] > 0
    assert 1 <= values["otlpd_exporter_queue_syncs_total"] <= 3, "one group commit per request sent one at a time"
    services = json.loads(curl(forwarder.telemetry_url("/services"), workdir=tmp_path).body)
    queue = services["exporters"][0]["queue"]
    assert queue["requests"] == 3 and queue["bytes"] > 0 and queue["oldestSeconds"] >= 1
    assert forwarder.stop() == 0


def test_config_names_a_storage_that_is_not_there(otlpd, tmp_path):
    config = persistent_config(tmp_path, "127.0.0.1:4317")
    config["service"]["extensions"] = []
    path = otlpd.write_config(config, "bad.yaml", tmp_path)
    result = run_otlpd(otlpd.binary, "validate", "--config", str(path))
    assert result.returncode != 0 and "not listed in service.extensions" in result.stderr, result.stderr
    del config["extensions"]
    del config["service"]["extensions"]
    path.write_text(json.dumps(config))
    result = run_otlpd(otlpd.binary, "validate", "--config", str(path))
    assert result.returncode != 0 and "is not defined under 'extensions'" in result.stderr, result.stderr


def test_reload_with_a_changed_storage_replaces_the_exporter_on_the_same_queue(otlpd, tmp_path):
    port = free_port()
    config = persistent_config(tmp_path, f"127.0.0.1:{port}", batch=False)
    config_path = otlpd.write_config(config, "reload.yaml", tmp_path)
    forwarder = otlpd.start(config_path)
    with grpc.insecure_channel(forwarder.grpc_target) as channel:
        queued = send(channel, "storage", 4, 3)
    config["extensions"]["file_storage"]["max_size"] = "64MiB"
    config_path.write_text(json.dumps(config))
    forwarder.send_signal(signal.SIGHUP)
    forwarder.wait_for_log("reloaded", timeout=10)
    assert forwarder.logs_matching("in use by another") == [] and forwarder.logs_matching("reload:") == []
    sink = GrpcSink(port=port)
    try:
        counts = wait_for_all(sink, queued)
        assert duplicates(counts) == 0
        assert forwarder.stop() == 0
    finally:
        sink.stop()
