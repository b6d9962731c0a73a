"""Acknowledged means kept: under continuous load, SIGTERM / SIGINT end otlpd
with exit code 0 and every span whose request was answered with success is in
the file. A batch processor holds answers until its batch is written, and a
graceful stop flushes it."""
import signal
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

from otlpd_harness import base_config, grpc_export, read_jsonl, request_span_ids, span_ids_in, trace_request, wait_until


class LoadThread(threading.Thread):
    """Sends requests one after another until the daemon stops answering; keeps the span ids of
    every request answered with success."""

    def __init__(self, daemon, kind, index):
        super().__init__(daemon=True)
        self.target = daemon
        self.kind = kind
        self.index = index
        self.acked: list[str] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self):
        channel = grpc.insecure_channel(self.target.grpc_target) if self.kind == "grpc" else None
        try:
            while not self.stop.is_set():
                request = trace_request(f"load-{self.kind}-{self.index}", 5)
                try:
                    if channel is not None:
                        grpc_export(channel, request, timeout=5)
                    else:
                        http_request = urllib.request.Request(
                            self.target.http_url("/v1/traces"), data=request.SerializeToString(),
                            headers={"content-type": "application/x-protobuf"}, method="POST")
                        with urllib.request.urlopen(http_request, timeout=5) as response:
                            if response.status != 200:
                                raise RuntimeError(f"status {response.status}")
                    self.acked += request_span_ids(request)
                except (grpc.RpcError, OSError, urllib.error.URLError, RuntimeError):
                    self.failures += 1
                    if not self.target.running or self.failures > 50:
                        return
                    time.sleep(0.01)
        finally:
            if channel is not None:
                channel.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("with_batch", [False, True], ids=["direct", "batch"])
def test_acknowledged_spans_survive_signal_under_load(otlpd, tmp_path, sig, with_batch):
    processors = {"batch": {"timeout": "50ms", "send_batch_size": 200}} if with_batch else None
    daemon = otlpd.start(base_config(tmp_path, processors=processors, signals=["traces"], shutdown_timeout="10s"))
    threads = [LoadThread(daemon, "grpc" if i % 2 == 0 else "http", i) for i in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: sum(len(t.acked) for t in threads) >= 500, 30, "500 acknowledged spans before the signal")
    signalled = time.monotonic()
    code = daemon.stop(sig, timeout=20)
    stopped_after = time.monotonic() - signalled
    for t in threads:
        t.stop.set()
        t.join(15)
    assert code == 0, f"exit code 0 after {sig.name}, got {code}; stderr:\n{daemon.stderr()[-3000:]}"
    assert stopped_after < 10, f"exited {stopped_after:.1f}s after the signal, past shutdown_timeout 10s"
    acked = [i for t in threads for i in t.acked]
    written = set(span_ids_in(read_jsonl(tmp_path / "out.jsonl")))
    missing = [i for i in acked if i not in written]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans are not in the file (e.g. {missing[:5]})"
    assert len(acked) >= 500


def test_sigterm_flushes_a_pending_batch_and_answers_its_requests(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path, signals=["traces"],
                                     processors={"batch": {"timeout": "5s", "send_batch_size": 10000,
                                                           "early_send": False}}))
    requests = [trace_request(f"pending-{i}", 3) for i in range(4)]
    channel = grpc.insecure_channel(daemon.grpc_target)
    method = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=lambda b: b)
    sent_at = time.monotonic()
    futures = [method.future(r, timeout=20) for r in requests]
    # Nothing outside otlpd shows that a request has arrived and waits in the batch; give the
    # requests a moment to get there (the batch itself holds them for 5s).
    time.sleep(0.7)
    assert not any(f.done() for f in futures), \
        "requests held by a batch with a 5s timeout are not answered before the batch is written"
    assert read_jsonl(tmp_path / "out.jsonl") == [], "nothing written before the batch timeout"
    daemon.send_signal(signal.SIGTERM)
    for future in futures:
        future.result(timeout=10)  # raises if a pending request was answered with an error
    answered_after = time.monotonic() - sent_at
    assert answered_after < 4.5, f"answered {answered_after:.1f}s after sending: by the shutdown flush, not the 5s timeout"
    assert daemon.stop(timeout=20) == 0
    channel.close()
    written = span_ids_in(read_jsonl(tmp_path / "out.jsonl"))
    assert sorted(written) == sorted(i for r in requests for i in request_span_ids(r)), "the batch was flushed"


def test_stop_accepting_after_sigterm(otlpd, tmp_path):
    """After a graceful stop the ports are closed."""
    import socket
    daemon = otlpd.start(base_config(tmp_path, signals=["traces"]))
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("last", 1))
    ports = (daemon.grpc_port, daemon.http_port)
    assert daemon.stop(signal.SIGTERM) == 0
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    lines = [line.message for line in daemon.log_lines()]
    assert lines[-1] == "stopped" or any("stopped" in m for m in lines[-3:]), lines[-5:]


def test_a_stuck_exporter_does_not_outlive_shutdown_timeout(otlpd, tmp_path):
    """A debug exporter whose stdout nobody reads blocks on its write; SIGTERM still ends
    otlpd at shutdown_timeout, with exit code 1 and a line that says why. The request
    whose write never finished is not acknowledged."""
    config = base_config(tmp_path, exporters={"debug": {"verbosity": "detailed"}}, signals=["traces"],
                         shutdown_timeout="2s")
    daemon = otlpd.start(config, stdout_pipe=True)
    channel = grpc.insecure_channel(daemon.grpc_target)
    method = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=lambda b: b)
    # Detailed lines of 2000 spans are far more than the pipe's 64 KiB.
    future = method.future(trace_request("stuck", 2000), timeout=30)
    time.sleep(1.0)
    assert not future.done(), "the request waits for its blocked write"
    stopped_at = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    try:
        returncode = daemon.proc.wait(timeout=10)
    finally:
        channel.close()
    took = time.monotonic() - stopped_at
    assert took < 2.0 + 3.0, f"exited {took:.1f}s after SIGTERM with shutdown_timeout 2s"
    assert returncode == 1, daemon.stderr()
    assert "shutdown_timeout" in daemon.stderr(), daemon.stderr()
    with pytest.raises(grpc.RpcError):
        future.result(timeout=5)
