"""Lifecycle beyond SIGTERM: SIGHUP, and the loopback-in-a-container warning.
(Reloading on SIGHUP and systemd notification belong to the running-as-a-service
capability and get their tests with it.)"""
import os
import signal
import socket
import time

import grpc
import pytest

from otlpd_harness import (base_config, grpc_export, read_jsonl, request_span_ids, span_ids_in, to_yaml,
                           trace_request, wait_until)


def test_sighup_does_not_stop_the_daemon(otlpd, tmp_path):
    """Reloading comes with a later capability; until then SIGHUP (a
    `systemctl reload`) must neither kill otlpd nor drop anything: it logs that
    the running config stays, and data keeps flowing."""
    daemon = otlpd.start(base_config(tmp_path, exporters={"file": {"path": str(tmp_path / "out.jsonl")}}, signals=["traces"]))
    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: not daemon.running or [l for l in daemon.log_lines() if l.level == "warn" and "SIGHUP" in l.message],
               5, "a warning that SIGHUP does not reload yet")
    assert daemon.running, f"otlpd exited on SIGHUP with {daemon.proc.returncode}"
    request = trace_request("after-hup", 2)
    with grpc.insecure_channel(daemon.grpc_target) as channel:
        grpc_export(channel, request)
    assert span_ids_in(read_jsonl(tmp_path / "out.jsonl")) == request_span_ids(request)
    assert daemon.stop() == 0


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
