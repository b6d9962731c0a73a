"""Lifecycle beyond SIGTERM: reloading on SIGHUP, and the loopback-in-a-container warning.
(systemd notification belongs to the running-as-a-service capability and gets its tests with it.)"""
import os
import signal
import socket
import threading
import time

import grpc
import pytest

from otlpd_harness import (attrs, base_config, grpc_export, read_jsonl, records, request_span_ids, span_ids_in, to_yaml,
                           trace_request, wait_until)


def tagging_config(tmp_path, value, **overrides):
    """Traces into out.jsonl through an attributes processor that tags each span with `value`."""
    return base_config(tmp_path, signals=["traces"],
                       processors={"attributes/tag": {"actions": [{"key": "config", "value": value, "action": "upsert"}]}},
                       exporters={"file": {"path": str(tmp_path / "out.jsonl")}}, **overrides)


def reload(otlpd, daemon, path, config, expect="reloaded"):
    """Rewrites the config file and sends SIGHUP; waits for the log line that ends the reload."""
    before = len(daemon.logs_matching(expect))
    otlpd.write_config(config, path.name, path.parent)
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: len(daemon.logs_matching(expect)) > before, 15, f"'{expect}' after SIGHUP in:\n{daemon.stderr()}")


def tags_by_span(tmp_path):
    return {span["spanId"]: attrs(span.get("attributes")).get("config")
            for _, _, span in records(read_jsonl(tmp_path / "out.jsonl"), "traces")}


def test_sighup_reloads_the_pipelines_and_keeps_the_listeners(otlpd, tmp_path):
    """A changed processor takes effect; the receiver and the file exporter,
    whose config did not change, keep running: the same gRPC connection goes
    on working across the reload."""
    path = otlpd.write_config(tagging_config(tmp_path, "first"), "reload.yaml", tmp_path)
    daemon = otlpd.start(configs=[path])
    first, second = trace_request("reload", 2), trace_request("reload", 3)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, first)
        reload(otlpd, daemon, path, tagging_config(tmp_path, "second"))
        grpc_export(channel, second)
    tags = tags_by_span(tmp_path)
    assert {tags[i] for i in request_span_ids(first)} == {"first"}
    assert {tags[i] for i in request_span_ids(second)} == {"second"}
    assert len([l for l in daemon.log_lines() if l.message == "listening"]) == 2, \
        "the unchanged listeners were not opened again"
    assert daemon.stop() == 0


def test_nothing_in_flight_is_dropped_by_reloads(otlpd, tmp_path):
    """Clients send without pause while the config is reloaded again and
    again (processors added, changed, a batch in between): every request is
    answered with success and every acknowledged span is in the file once."""
    def config(value, batched):
        processors = {"attributes/tag": {"actions": [{"key": "config", "value": value, "action": "upsert"}]}}
        if batched:
            processors["batch"] = {"timeout": "200ms", "send_batch_size": 50}
        return base_config(tmp_path, signals=["traces"], processors=processors,
                           exporters={"file": {"path": str(tmp_path / "out.jsonl")}})
    path = otlpd.write_config(config("v0", False), "reload.yaml", tmp_path)
    daemon = otlpd.start(configs=[path])
    acknowledged, failures, stop = [], [], threading.Event()

    def send(client):
        with grpc.insecure_channel(daemon.grpc_target) as channel:
            n = 0
            while not stop.is_set():
                request = trace_request(f"steady-{client}-{n}", 3)
                n += 1
                try:
                    grpc_export(channel, request, timeout=10)
                    acknowledged.extend(request_span_ids(request))
                except grpc.RpcError as error:
                    failures.append(f"{error.code()}: {error.details()}")
    senders = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for sender in senders:
        sender.start()
    try:
        for round_number in range(1, 5):
            time.sleep(0.3)
            reload(otlpd, daemon, path, config(f"v{round_number}", round_number % 2 == 1))
        time.sleep(0.3)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=30)
    assert failures == [], failures[:5]
    assert daemon.stop() == 0
    written = span_ids_in(read_jsonl(tmp_path / "out.jsonl"))
    assert len(acknowledged) > 0
    assert sorted(written) == sorted(acknowledged), \
        f"{len(set(acknowledged) - set(written))} acknowledged spans missing, {len(written) - len(set(written))} written twice"


def test_reload_flushes_what_a_batch_holds(otlpd, tmp_path):
    """A request held by a batch (early sends off, 30 s timeout) is written and answered at the
    reload, not lost with the old pipeline and not kept waiting."""
    def config(timeout):
        return base_config(tmp_path, signals=["traces"], processors={"batch": {"timeout": timeout, "send_batch_size": 1000, "early_send": False}},
                           exporters={"file": {"path": str(tmp_path / "out.jsonl")}})
    path = otlpd.write_config(config("30s"), "reload.yaml", tmp_path)
    daemon = otlpd.start(configs=[path])
    request = trace_request("held", 4)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        method = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                     request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
        future = method.future(request, timeout=25)
        time.sleep(0.5)
        assert not future.done(), "the batch holds the request until its timeout"
        started = time.monotonic()
        reload(otlpd, daemon, path, config("20s"))
        future.result()
        assert time.monotonic() - started < 5, "answered at the reload, not at the batch timeout"
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.jsonl"))) == sorted(request_span_ids(request))
    assert daemon.stop() == 0


def test_an_invalid_config_on_reload_keeps_the_running_one(otlpd, tmp_path):
    """A broken file is logged with its error, and the old config goes on serving."""
    path = otlpd.write_config(tagging_config(tmp_path, "kept"), "reload.yaml", tmp_path)
    daemon = otlpd.start(configs=[path])
    reload(otlpd, daemon, path, "receivers: [this is not\n", expect="the config is invalid")
    assert daemon.running
    request = trace_request("after-bad-reload", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    assert {tags_by_span(tmp_path)[i] for i in request_span_ids(request)} == {"kept"}
    assert daemon.stop() == 0


def test_a_changed_endpoint_moves_its_listener(otlpd, tmp_path):
    """Only the receiver whose config changed is replaced: its new port
    serves, its old one is closed, and nothing sent before is lost."""
    new_port = free_port()
    path = otlpd.write_config(tagging_config(tmp_path, "one"), "reload.yaml", tmp_path)
    daemon = otlpd.start(configs=[path])
    old_port = daemon.grpc_port
    before = trace_request("moved", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, before)
    reload(otlpd, daemon, path, tagging_config(tmp_path, "one", grpc={"endpoint": f"127.0.0.1:{new_port}"}))
    after = trace_request("moved", 2)
    with grpc.insecure_channel(f"127.0.0.1:{new_port}") as channel:
        grpc_export(channel, after)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.jsonl"))) == sorted(request_span_ids(before) + request_span_ids(after))
    assert daemon.stop() == 0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_config_that_cannot_start_leaves_the_previous_one_running(otlpd, tmp_path):
    """The new gRPC port is taken: the reload fails, the previous config opens
    its listener again on its own port, and a request a batch held through it
    all is written and answered at the reload."""
    grpc_port, taken = free_port(), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()

    def config(port):
        return base_config(tmp_path, signals=["traces"], processors={"batch": {"timeout": "30s", "send_batch_size": 1000, "early_send": False}},
                           exporters={"file": {"path": str(tmp_path / "out.jsonl")}}, grpc={"endpoint": f"127.0.0.1:{port}"})
    path = otlpd.write_config(config(grpc_port), "reload.yaml", tmp_path)
    daemon = otlpd.start(configs=[path])
    held, after = trace_request("held", 2), trace_request("after", 2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            method = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                         request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
            future = method.future(held, timeout=25)
            time.sleep(0.5)
            started = time.monotonic()
            reload(otlpd, daemon, path, config(taken.getsockname()[1]), expect="the previous config runs on")
            future.result()
            assert time.monotonic() - started < 5, "the held request is answered at the reload"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            method = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                         request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
            future = method.future(after, timeout=25)
            time.sleep(0.5)
            assert not future.done(), "the previous config's batch holds data again"
            assert daemon.stop() == 0
            future.result()
    finally:
        taken.close()
    assert sorted(span_ids_in(read_jsonl(tmp_path / "out.jsonl"))) == sorted(request_span_ids(held) + request_span_ids(after))


def test_loopback_in_a_container_warns(otlpd, tmp_path):
    """KUBERNETES_SERVICE_HOST marks a pod: a loopback listener cannot be reached from outside it."""
    loopback = otlpd.start(base_config(tmp_path, signals=["traces"]), env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    warned = [l for l in loopback.log_lines() if l.level == "warn" and "loopback" in l.message]
    assert len(warned) == 2, f"a warning for each loopback listener: {[l.raw for l in warned]}"
    assert loopback.stop() == 0
    wildcard = otlpd.start(base_config(tmp_path, signals=["traces"], grpc={"endpoint": "0.0.0.0:0"},
                                       http={"endpoint": "0.0.0.0:0"}),
                           env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    warned = [l for l in wildcard.log_lines() if l.level == "warn" and "loopback" in l.message]
    assert warned == [], [l.raw for l in warned]
