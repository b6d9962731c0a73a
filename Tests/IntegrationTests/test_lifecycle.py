"""Lifecycle beyond SIGTERM: SIGHUP reload, systemd notification, and the
loopback-in-a-container warning."""
import os
import signal
import socket
import time

import grpc
import pytest

from otlpd_harness import (base_config, grpc_export, read_jsonl, request_span_ids, span_ids_in, to_yaml,
                           trace_request, wait_until)


def test_sighup_reloads_config_and_keeps_listeners(otlpd, tmp_path):
    config_path = tmp_path / "reload.yaml"
    config = base_config(tmp_path, exporters={"file": {"path": str(tmp_path / "before.jsonl")}}, signals=["traces"])
    config_path.write_text(to_yaml(config) + "\n")
    daemon = otlpd.start(config_path)
    ports = (daemon.grpc_port, daemon.http_port)
    channel = grpc.insecure_channel(daemon.grpc_target)
    first = trace_request("reload", 2)
    grpc_export(channel, first)

    config["exporters"]["file"]["path"] = str(tmp_path / "after.jsonl")
    config_path.write_text(to_yaml(config) + "\n")
    daemon.send_signal(signal.SIGHUP)
    second = trace_request("reload", 2)

    def delivered_after_reload():
        if not daemon.running:
            raise AssertionError(f"otlpd exited on SIGHUP with {daemon.proc.returncode}:\n{daemon.stderr()[-2000:]}")
        try:
            grpc_export(channel, second, timeout=2)
        except grpc.RpcError:
            return False
        return (tmp_path / "after.jsonl").exists()

    wait_until(delivered_after_reload, 10, "a request written to the reloaded exporter's file")
    channel.close()
    assert span_ids_in(read_jsonl(tmp_path / "before.jsonl"))[:2] == request_span_ids(first)
    assert set(request_span_ids(second)) <= set(span_ids_in(read_jsonl(tmp_path / "after.jsonl")))
    for port in ports:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the same ports still listen
    assert daemon.stop() == 0


def test_sighup_with_invalid_config_keeps_the_old_one(otlpd, tmp_path):
    config_path = tmp_path / "reload.yaml"
    config = base_config(tmp_path, exporters={"file": {"path": str(tmp_path / "out.jsonl")}}, signals=["traces"])
    config_path.write_text(to_yaml(config) + "\n")
    daemon = otlpd.start(config_path)
    config_path.write_text(to_yaml(config) + "\nprocessors:\n  batch:\n    timeout: never\n")
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: not daemon.running or [l for l in daemon.log_lines() if l.level in ("warn", "error")
                                              and "never" in l.raw], 10, "a log line about the invalid new config")
    assert daemon.running, f"otlpd keeps running the old config; it exited with {daemon.proc.returncode}"
    request = trace_request("old-config", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    assert span_ids_in(read_jsonl(tmp_path / "out.jsonl")) == request_span_ids(request)
    assert daemon.stop() == 0


def test_systemd_notify(otlpd, tmp_path):
    """With NOTIFY_SOCKET set: READY=1 when ready, STOPPING=1 on SIGTERM, WATCHDOG=1 when WATCHDOG_USEC is set."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    messages: list[str] = []

    def drain():
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                return

    try:
        daemon = otlpd.start(base_config(tmp_path, exporters={"nop": {}}),
                             env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        wait_until(lambda: drain() or any("READY=1" in m for m in messages), 5, f"READY=1 (got {messages})")
        wait_until(lambda: drain() or any("WATCHDOG=1" in m for m in messages), 5, f"WATCHDOG=1 (got {messages})")
        daemon.send_signal(signal.SIGTERM)
        wait_until(lambda: drain() or any("STOPPING=1" in m for m in messages), 5, f"STOPPING=1 (got {messages})")
        assert daemon.stop() == 0
    finally:
        sock.close()


def test_loopback_in_a_container_warns(otlpd, tmp_path):
    """KUBERNETES_SERVICE_HOST marks a pod: a loopback listener cannot be reached from outside it."""
    loopback = otlpd.start(base_config(tmp_path, signals=["traces"]), env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    warned = [l for l in loopback.log_lines() if l.level == "warn" and "loopback" in l.message]
    assert len(warned) == 2, f"a warning for each loopback listener: {[l.raw for l in warned]}"
    assert loopback.stop() == 0
    with socket.socket() as probe:  # a free port for HTTP: two '0.0.0.0:0' endpoints are refused (see test_config)
        probe.bind(("0.0.0.0", 0))
        free_port = probe.getsockname()[1]
    wildcard = otlpd.start(base_config(tmp_path, signals=["traces"], grpc={"endpoint": "0.0.0.0:0"},
                                       http={"endpoint": f"0.0.0.0:{free_port}"}),
                           env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    warned = [l for l in wildcard.log_lines() if l.level == "warn" and "loopback" in l.message]
    assert warned == [], [l.raw for l in warned]
