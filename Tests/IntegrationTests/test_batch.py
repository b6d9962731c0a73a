"""The batch processor: a lone request goes at once and requests that arrive
while a write is under way go together when it returns (group commit);
send_batch_size triggers a send before the timeout, send_batch_max_size
splits, the timeout merges concurrent requests when early sends are off;
answers wait for the batch (acknowledged means kept)."""
import threading
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlpd_harness import (GRPC_PATHS, base_config, grpc_export, read_length_prefixed, request_span_ids,
                           trace_request)


def proto_records(path):
    if not path.exists():
        return []
    return read_length_prefixed(path.read_bytes(), trace_service_pb2.ExportTraceServiceRequest)


def span_counts(messages):
    return [sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans) for m in messages]


def start(otlpd, tmp_path, **batch):
    return otlpd.start(base_config(tmp_path, signals=["traces"], processors={"batch": batch},
                                   exporters={"file": {"path": str(tmp_path / "out.pb"), "format": "proto"}}))


def test_send_batch_size_sends_before_the_timeout(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, timeout="10s", send_batch_size=5)
    request = trace_request("size-trigger", 6)
    started = time.monotonic()
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request, timeout=15)
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"6 spans >= send_batch_size 5 go out at once, not after the 10s timeout ({elapsed:.1f}s)"
    assert sum(span_counts(proto_records(tmp_path / "out.pb"))) == 6


def test_send_batch_max_size_splits_large_requests(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, timeout="50ms", send_batch_size=10, send_batch_max_size=10)
    request = trace_request(resources=[("split-a", 17), ("split-b", 8)])
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    messages = proto_records(tmp_path / "out.pb")
    counts = span_counts(messages)
    assert sum(counts) == 25 and max(counts) <= 10, f"batches of at most 10 spans: {counts}"
    written = sorted(s.span_id.hex() for m in messages for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans)
    assert written == sorted(request_span_ids(request))


def test_timeout_merges_concurrent_requests_when_early_sends_are_off(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, timeout="400ms", send_batch_size=1000, early_send=False)
    requests = [trace_request(f"merge-{i}", 2) for i in range(4)]
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        method = channel.unary_unary(GRPC_PATHS["traces"], request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=lambda b: b)
        futures = [method.future(r, timeout=10) for r in requests]
        for future in futures:
            future.result()
    messages = proto_records(tmp_path / "out.pb")
    assert sum(span_counts(messages)) == 8
    assert len(messages) < len(requests), f"requests arriving together are written as fewer batches: {span_counts(messages)}"


def test_a_lone_request_is_answered_once_written_not_at_the_timeout(otlpd, tmp_path):
    daemon = start(otlpd, tmp_path, timeout="10s", send_batch_size=1000)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("warm-up", 1))
        took = []
        for i in range(20):
            started = time.monotonic()
            grpc_export(channel, trace_request(f"lone-{i}", 2), timeout=15)
            took.append(time.monotonic() - started)
    took.sort()
    assert took[len(took) // 2] < 0.05, f"median answer {took[len(took) // 2] * 1000:.1f} ms: it waited for the batch timeout"
    assert sum(span_counts(proto_records(tmp_path / "out.pb"))) == 41


def test_requests_arriving_during_a_slow_write_go_together_when_it_returns(otlpd, tmp_path):
    """A debug exporter whose stdout nobody reads blocks the first batch's
    write; requests that arrive meanwhile wait, and are written as one batch
    once the write returns, long before the 30 s timeout."""
    config = base_config(tmp_path, signals=["traces"], processors={"batch": {"timeout": "30s", "send_batch_size": 100000}},
                         exporters={"debug": {"verbosity": "normal"},
                                    "file": {"path": str(tmp_path / "out.pb"), "format": "proto"}})
    daemon = otlpd.start(config, stdout_pipe=True)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        method = channel.unary_unary(GRPC_PATHS["traces"], request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=lambda b: b)
        # More debug lines than the pipe holds: the first batch's write blocks.
        first = method.future(trace_request("blocker", 2000), timeout=25)
        time.sleep(0.5)
        assert not first.done(), "the first write is blocked on the full pipe"
        followers = [method.future(trace_request(f"follower-{i}", 3), timeout=25) for i in range(5)]
        time.sleep(0.5)
        assert not any(f.done() for f in followers), "the followers wait for the write under way"
        drained = threading.Thread(target=lambda: daemon.proc.stdout.read(), daemon=True)
        released = time.monotonic()
        drained.start()
        first.result()
        for future in followers:
            future.result()
        assert time.monotonic() - released < 5, "answered when the write returned, not at the batch timeout"
    counts = span_counts(proto_records(tmp_path / "out.pb"))
    assert counts == [2000, 15], f"the first request alone, then the five that waited as one batch: {counts}"
    daemon.proc.send_signal(15)
    drained.join(timeout=10)


def test_named_pipelines_sharing_a_receiver_each_answer_in_about_one_write(otlpd, tmp_path):
    """Two named pipelines on one receiver, each [memory_limiter, attributes, batch] with a 10 s
    timeout into two exporters: a lone request goes through both batches at once, and
    a burst of requests from several clients is answered long before the timeout, every
    span written once per pipeline."""
    config = base_config(tmp_path, signals=[], exporters={
        "file/a": {"path": str(tmp_path / "a.pb"), "format": "proto"},
        "file/a2": {"path": str(tmp_path / "a2.pb"), "format": "proto"},
        "file/b": {"path": str(tmp_path / "b.pb"), "format": "proto"}})
    config["processors"] = {"batch": {"timeout": "10s", "send_batch_size": 100000},
                            "memory_limiter": {"limit_mib": 512},
                            "attributes/tag": {"actions": [{"key": "pipeline", "value": "b", "action": "insert"}]}}
    config["service"]["pipelines"] = {
        "traces/a": {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["file/a", "file/a2"]},
        "traces/b": {"receivers": ["otlp"], "processors": ["memory_limiter", "attributes/tag", "batch"],
                     "exporters": ["file/b"]},
    }
    daemon = otlpd.start(config)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, trace_request("warm-up", 1))
        started = time.monotonic()
        grpc_export(channel, trace_request("lone", 2), timeout=15)
        lone = time.monotonic() - started
    assert lone < 1, f"a lone request waited {lone:.2f} s: a batch held it for its timeout"

    def client(index):
        with grpc.insecure_channel(daemon.grpc_target) as channel:
            for n in range(10):
                grpc_export(channel, trace_request(f"burst-{index}-{n}", 5), timeout=15)
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    burst = time.monotonic() - started
    assert burst < 5, f"60 requests from 6 clients took {burst:.1f} s: answers waited for batch timeouts"
    for name in ("a", "a2", "b"):
        assert sum(span_counts(proto_records(tmp_path / f"{name}.pb"))) == 1 + 2 + 6 * 10 * 5, name
