"""otlpd under systemd: the notify protocol against a datagram socket the
test owns (as systemd's would be: NOTIFY_SOCKET, WATCHDOG_USEC), the unit
file checked by systemd-analyze, `make install` into a scratch root, and
journal-friendly log lines (JOURNAL_STREAM)."""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from otlpd_harness import base_config, wait_until
from upstreams import free_port

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "otlpd.service"


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's: every message, with when it came."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def with_key(self, key: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(at, fields) for at, fields in self.messages if key in fields]

    def close(self):
        self.running = False
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def notify_config(tmp_path: Path, grpc_port: int, http_port: int) -> dict:
    return base_config(tmp_path, grpc={"endpoint": f"127.0.0.1:{grpc_port}"}, http={"endpoint": f"127.0.0.1:{http_port}"})


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_ready_status_reloading_stopping(otlpd, tmp_path, notify):
    grpc_port, http_port = free_port(), free_port()
    config_path = otlpd.write_config(notify_config(tmp_path, grpc_port, http_port), "notify.yaml", tmp_path)
    daemon = otlpd.start(config_path, env={"NOTIFY_SOCKET": str(notify.path)}, wait_ready=False)
    ready = wait_until(lambda: notify.with_key("READY"), 20, "READY=1")
    # Once READY=1 is sent, both ports take connections.
    assert accepts(grpc_port) and accepts(http_port)
    fields = ready[0][1]
    assert fields["READY"] == "1" and fields["STATUS"] == "3 pipelines, 2 listeners, 0 queued", fields
    daemon.wait_ready()
    assert daemon.logs_matching("reporting to the service manager")

    daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: len(notify.with_key("READY")) == 2, 10, "READY=1 again after the reload")
    reloading = notify.with_key("RELOADING")
    assert len(reloading) == 1 and reloading[0][1]["RELOADING"] == "1"
    # MONOTONIC_USEC is CLOCK_MONOTONIC, the clock Python's time.monotonic reads on Linux.
    sent_at = int(reloading[0][1]["MONOTONIC_USEC"]) / 1e6
    assert abs(sent_at - reloading[0][0]) < 1.0
    assert reloading[0][0] <= notify.with_key("READY")[1][0], "RELOADING before the second READY"

    assert daemon.stop() == 0
    stopping = notify.with_key("STOPPING")
    assert len(stopping) == 1 and stopping[0][1]["STOPPING"] == "1"


def test_watchdog_is_fed_at_half_the_interval_and_not_while_an_event_loop_is_stuck(otlpd, tmp_path, notify):
    grpc_port, http_port = free_port(), free_port()
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000", "OTLPD_TEST_HOOKS": "1"}
    daemon = otlpd.start(notify_config(tmp_path, grpc_port, http_port), env=env)
    time.sleep(2.0)
    beats = [at for at, _ in notify.with_key("WATCHDOG")]
    assert 6 <= len(beats) <= 12, f"about one WATCHDOG=1 each 200 ms over ~2 s: {len(beats)}"
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert max(gaps) < 0.4, f"never a full interval without one: {gaps}"

    # One event loop blocked for 3 s (the test hook): the watchdog goes hungry, systemd would restart otlpd.
    before = len(notify.with_key("WATCHDOG"))
    daemon.send_signal(signal.SIGUSR2)
    time.sleep(2.0)
    during = len(notify.with_key("WATCHDOG")) - before
    assert during <= 1, f"{during} WATCHDOG=1 while an event loop was stuck"
    daemon.wait_for_log("did not answer", timeout=3)
    wait_until(lambda: len(notify.with_key("WATCHDOG")) > before + during + 2, 5, "the watchdog fed again")
    daemon.wait_for_log("answer again", timeout=3)
    assert daemon.stop() == 0


def test_no_notify_socket_no_messages_and_no_watchdog_line(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path))
    assert daemon.logs_matching("service manager") == []
    assert daemon.stop() == 0


def test_journal_lines_have_no_timestamp_of_their_own(otlpd, tmp_path):
    daemon = otlpd.start(base_config(tmp_path), env={"JOURNAL_STREAM": "8:12345"}, wait_ready=False)
    wait_until(lambda: "otlpd is ready" in daemon.stderr(), 20, "ready")
    line = next(l for l in daemon.stderr().splitlines() if "otlpd is ready" in l)
    # journald takes the <6> (info) priority off and stamps the line itself.
    assert line.startswith("<6>info\totlpd is ready"), line
    assert daemon.stop() == 0


def unit_for(binary: str, directory: Path) -> Path:
    """The shipped unit with ExecStart at the binary under test (verify checks that it exists)."""
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/otlpd", f"ExecStart={binary}")
    path = directory / "otlpd.service"
    path.write_text(text)
    return path


def test_the_unit_verifies_and_is_hardened(otlpd, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    unit = unit_for(otlpd.binary, tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = UNIT.read_text()
    for line in ["Type=notify", "WatchdogSec=", "ExecReload=/bin/sh -c \"kill -HUP $MAINPID\"", "StateDirectory=otlpd", "LogsDirectory=otlpd",
                 "LimitNOFILE=", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "PrivateDevices=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes"]:
        assert line in text, f"the unit lacks {line!r}"
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60)
    exposure = [l for l in security.stdout.splitlines() if "Overall exposure level" in l]
    assert exposure and float(exposure[0].split("level for otlpd.service:")[1].split()[0]) < 2.5, security.stdout[-500:]
    # The stop timeout leaves the default shutdown_timeout (25s) room to drain.
    assert "TimeoutStopSec=35s" in text


def test_make_install_keeps_an_existing_config(tmp_path):
    root = tmp_path / "root"
    run = lambda: subprocess.run(["make", "-s", "install", f"DESTDIR={root}"], cwd=REPO, capture_output=True,
                                 text=True, timeout=600)
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "usr/local/bin/otlpd").stat().st_mode & 0o111
    assert (root / "etc/systemd/system/otlpd.service").read_text() == UNIT.read_text()
    config = root / "etc/otlpd/otlpd.yaml"
    assert config.read_text() == (REPO / "config/otlpd.yaml").read_text()
    config.write_text(config.read_text() + "# edited by the user\n")
    result = run()
    assert result.returncode == 0 and "keeping the existing" in result.stdout, result.stdout
    assert config.read_text().endswith("# edited by the user\n")
    result = subprocess.run(["make", "-s", "uninstall", f"DESTDIR={root}"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (root / "usr/local/bin/otlpd").exists() and not (root / "etc/systemd/system/otlpd.service").exists()
    assert config.exists(), "uninstall leaves the user's config"


def test_an_unprivileged_otlpd_serves_connections(otlpd, tmp_path):
    """As the unit runs it (a DynamicUser, no capabilities): accepted connections are served. A socket
    option set at the wrong level (SO_DEBUG in place of TCP_NODELAY) once needed CAP_NET_ADMIN and
    reset every connection of a non-root otlpd."""
    import tempfile
    from otlpd_harness import grpc_export, read_jsonl, request_span_ids, span_ids_in, trace_request
    import grpc
    workdir = Path(tempfile.mkdtemp(prefix="otlpd-nobody-"))
    workdir.chmod(0o777)
    try:
        config = base_config(workdir, signals=("traces",))
        path = workdir / "config.yaml"
        from otlpd_harness import to_yaml
        path.write_text(to_yaml(config) + "\n")
        path.chmod(0o644)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                otlpd.binary, "--config", str(path)]
        from otlpd_harness import Otlpd
        daemon = Otlpd(argv[0], workdir, argv[1:], name="nobody")
        otlpd.started.append(daemon)
        daemon.start()
        request = trace_request("unprivileged", 2)
        with grpc.insecure_channel(daemon.grpc_target) as channel:
            grpc_export(channel, request)
        assert span_ids_in(read_jsonl(workdir / "out.jsonl")) == request_span_ids(request)
        assert daemon.stop() == 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_json_log_lines_use_the_collectors_field_names(otlpd, tmp_path):
    import json as json_module
    config = base_config(tmp_path)
    config["service"]["telemetry"]["logs"] = {"encoding": "json", "level": "info"}
    daemon = otlpd.start(config, wait_ready=False)
    wait_until(lambda: "otlpd is ready" in daemon.stderr(), 20, "ready")
    objects = [json_module.loads(line) for line in daemon.stderr().splitlines() if line.startswith("{")]
    assert objects and all(list(o)[:3] == ["level", "ts", "msg"] for o in objects), objects[:3]
    listening = [o for o in objects if o["msg"] == "listening"]
    assert {o["protocol"] for o in listening} == {"OTLP/gRPC", "OTLP/HTTP"} and all(o["auth"] == "none" for o in listening)
    assert all(o["ts"].endswith("Z") for o in objects)
    ready = next(o for o in objects if o["msg"] == "otlpd is ready")
    assert ready["pipelines"] == "traces,metrics,logs" and ready["exporters"] == f"file({tmp_path / 'out.jsonl'})", ready
    assert daemon.stop() == 0
