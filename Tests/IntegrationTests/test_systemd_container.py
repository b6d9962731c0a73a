"""systemd/otlpd.service under a real systemd: PID 1 of a podman container
(`--systemd=always --cap-add SYS_ADMIN`, the runc runtime, this machine's ulimits).

The image (FROM localbase:bookworm, the base test_container.py makes with mmdebstrap)
has Debian's systemd and systemd-sysv and nothing more (no procps: the unit's ExecReload
uses the shell's own kill), the Dockerfile's RUNTIME_PACKAGES, the Swift runtime
libraries the binary under test loads (container/prebuilt-context.sh), and:
  /usr/local/bin/otlpd                   the binary under test (stripped)
  /etc/systemd/system/otlpd.service      systemd/otlpd.service, byte for byte, enabled
  /etc/systemd/system/otlpd.service.d/   one drop-in: LimitNOFILE=16384 (see below)
  /etc/otlpd/otlpd.yaml                  config/otlpd.yaml with the receivers on 0.0.0.0
                                         (published ports) and debug verbosity basic
It is tagged with a hash of all of that, so it is built once per binary, unit and
config (the apt layer stays cached across binaries), and older tags are removed.

The one change to the unit, by a drop-in: LimitNOFILE=16384. This machine's
open-files hard limit is 20000 and root cannot raise it; systemd 252 does not fail
the unit's 65536 here but quietly clamps it to 20000 (the process gets 20000 while
`systemctl show` says 65536). With a value this machine allows, the test checks the
process gets exactly what the unit says.

What runs: the unit starts at boot (enabled, WantedBy=multi-user.target) and is
`active` only after READY=1 (Type=notify, the STATUS line); the SDK's spans to the
published ports land in /var/lib/otlpd/otlpd-data/ (the StateDirectory, owned by the
DynamicUser); `systemctl reload` re-reads the config (one pipeline fewer) with the same
MainPID; otlpd's log lines and the debug exporter's lines in the journal carry no
timestamp of their own; a dynamic uid, no
capabilities, seccomp; `systemctl stop` ends it cleanly (Result=success, status 0);
a shortened watchdog (runtime drop-in) is fed, and a stalled event loop gets the
process killed by systemd's watchdog and restarted.

Podman or systemd not working here fails the test; nothing skips.
Timings go to the terminal and to /var/tmp/otlpd-container/systemd-last-run.json.
"""
from __future__ import annotations

import collections
import hashlib
import json
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest

import test_container as tc  # podman, the base image, the build context, the SDK's spans
from otlpd_harness import assert_one_resource_per_line, parse_jsonl, records, service_of, wait_until

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "otlpd.service"
SHIPPED_CONFIG = REPO / "config" / "otlpd.yaml"
IMAGE_REPO = "localhost/otlpd-systemd-it"
LAST_RUN = tc.CACHE / "systemd-last-run.json"
LIMIT_NOFILE = 16384  # under this machine's hard limit (20000); the unit says 65536
DATA_FILE = "/var/lib/otlpd/otlpd-data/otlpd.traces.jsonl"
STATUS = "3 pipelines, 2 listeners, 0 queued"
ACTIVE_WITHIN = 30.0
STOPPED_WITHIN = 5.0
DYNAMIC_UIDS = range(61184, 65520)  # systemd's DynamicUser range
LEVELS = ("trace", "debug", "info", "notice", "warning", "warn", "error", "critical")
LOG_LINE = re.compile(r"^(%s)\t[^\t]+" % "|".join(LEVELS))
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
# The debug exporter's `verbosity: basic` line: `[TIME ]span|metric|log  SERVICE  N spans|metrics|log records`.
DEBUG_EXPORTER_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+Z )?(span|metric|log)  .*  \d+ [a-z ]+$")
# libdispatch renices a worker thread for its QoS; an unprivileged process may not
# (EACCES), and libdispatch says so once on stderr. Harmless; not otlpd's line.
LIBDISPATCH_LINE = re.compile(r"^Failed to set thread priority for worker thread: pqc=0x[0-9a-f]+ errno=13$")

TIMINGS: dict = {}


# --------------------------------------------------------------------------
# The image


def container_config() -> str:
    """config/otlpd.yaml, with listeners a published port reaches and a short debug line per batch."""
    text = SHIPPED_CONFIG.read_text()
    for old, new in (("endpoint: localhost:4317", "endpoint: 0.0.0.0:4317"),
                     ("endpoint: localhost:4318", "endpoint: 0.0.0.0:4318"),
                     ("verbosity: normal", "verbosity: basic")):
        assert text.count(old) == 1, f"config/otlpd.yaml no longer has {old!r} once (the test's config is made from it)"
        text = text.replace(old, new)
    return ("# test_systemd_container.py: config/otlpd.yaml with the receivers on 0.0.0.0 (podman publishes\n"
            "# them) and the debug exporter at verbosity basic (a short journal).\n" + text)


def reload_config() -> str:
    """The same without the logs pipeline: a reload that took shows as 2 pipelines."""
    text = container_config()
    logs = "    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [debug, file]\n"
    assert text.endswith(logs), "config/otlpd.yaml no longer ends with the logs pipeline"
    return text[: -len(logs)]


LIMITS_DROPIN = f"""\
# test_systemd_container.py: this machine's open-files hard limit is 20000 and root cannot
# raise it; systemd would quietly clamp the unit's 65536 to 20000.
[Service]
LimitNOFILE={LIMIT_NOFILE}
"""

CONTAINERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd systemd-sysv {packages} \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY prebuilt/swift/ /usr/lib/swift/linux/
RUN echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf && ldconfig
COPY prebuilt/otlpd /usr/local/bin/otlpd
COPY otlpd.yaml /etc/otlpd/otlpd.yaml
COPY otlpd.service /etc/systemd/system/otlpd.service
COPY limits.conf /etc/systemd/system/otlpd.service.d/10-limits.conf
RUN if ldd /usr/local/bin/otlpd | grep -F 'not found'; then exit 1; fi \\
 && otlpd validate --config /etc/otlpd/otlpd.yaml \\
 && systemd-analyze verify /etc/systemd/system/otlpd.service \\
 && systemctl enable otlpd \\
 && test -L /etc/systemd/system/multi-user.target.wants/otlpd.service
LABEL otlpd.test=systemd otlpd.content={digest}
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


def write_context(context: Path) -> str:
    """The unit, the configs and the Containerfile next to prebuilt/; returns the content hash."""
    shutil.copy2(UNIT, context / "otlpd.service")
    (context / "otlpd.yaml").write_text(container_config())
    (context / "limits.conf").write_text(LIMITS_DROPIN)
    digest = hashlib.sha256()
    template = CONTAINERFILE.format(base=tc.BASE_IMAGE, packages=" ".join(tc.runtime_packages()), digest="")
    digest.update(template.encode())
    files = [context / "otlpd.service", context / "otlpd.yaml", context / "limits.conf", context / "prebuilt" / "otlpd",
             *sorted((context / "prebuilt" / "swift").iterdir())]
    for path in files:
        digest.update(f"\0{path.relative_to(context)}\0".encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    content = digest.hexdigest()[:16]
    (context / "Containerfile").write_text(
        CONTAINERFILE.format(base=tc.BASE_IMAGE, packages=" ".join(tc.runtime_packages()), digest=content))
    return content


def build_image(context: Path, tag: str) -> None:
    tc.run(tc.PODMAN + ["build", "--runtime", "runc", *tc.ULIMITS, "-f", str(context / "Containerfile"),
                        "-t", tag, str(context)], timeout=900)
    # Older tags go (with the layers only they use), once 10 minutes old: a concurrent run (another
    # checkout, another binary) may be about to start its own; one a container uses stays anyway.
    others = tc.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                     f"reference={IMAGE_REPO}", "--filter", "until=10m"]).stdout.split()
    for other in others:
        if other != tag:
            tc.run(["podman", "rmi", other], check=False)


# --------------------------------------------------------------------------
# The container


class SystemdContainer:
    def __init__(self, image: str):
        self.image = image
        self.name = f"otlpd-systemd-it-{uuid.uuid4().hex[:10]}"
        self.ports = {"grpc": tc.free_port(), "http": tc.free_port()}
        cmd = tc.PODMAN + ["run", "-d", "--name", self.name, "--systemd=always", "--cap-add", "SYS_ADMIN", *tc.ULIMITS,
                           "-p", f"127.0.0.1:{self.ports['grpc']}:4317", "-p", f"127.0.0.1:{self.ports['http']}:4318",
                           image]
        self.started = time.monotonic()
        tc.run(cmd, timeout=120)

    def exec(self, *cmd: str, check: bool = True, input: str | None = None, timeout: float = 60):
        return tc.run(["podman", "exec", *(["-i"] if input is not None else []), self.name, *cmd],
                      check=check, input=input, timeout=timeout)

    def running(self) -> bool:
        result = tc.run(["podman", "inspect", "--format", "{{.State.Running}}", self.name], check=False)
        return result.stdout.strip() == "true"

    def show(self, *properties: str) -> dict[str, str]:
        out = self.exec("systemctl", "show", "-p", ",".join(properties), "otlpd").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def state(self) -> str:
        return self.exec("systemctl", "is-active", "otlpd", check=False).stdout.strip()

    def journal(self) -> list[dict]:
        """journalctl -u otlpd: systemd's lines about the unit and the service's own (stdout/stderr)."""
        out = self.exec("journalctl", "-u", "otlpd", "-o", "json", "--no-pager", check=False).stdout
        entries = []
        for line in out.splitlines():
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, list):  # journald stores non-UTF-8 as bytes
                entry["MESSAGE"] = bytes(message).decode("utf-8", "replace")
            entries.append(entry)
        return entries

    def journal_text(self) -> str:
        return self.exec("journalctl", "-u", "otlpd", "--no-pager", "-o", "short-precise", check=False).stdout

    def stream(self, pid: int | str | None = None) -> list[str]:
        """The service's own output (journald's stdout transport), of one process if `pid`."""
        return [e["MESSAGE"] for e in self.journal() if e.get("_TRANSPORT") == "stdout"
                and (pid is None or e.get("_PID") == str(pid))]

    def manager(self) -> list[str]:
        """What systemd (PID 1) said about the unit."""
        return [e["MESSAGE"] for e in self.journal() if e.get("_PID") == "1"]

    def wait_active(self, timeout: float = ACTIVE_WITHIN) -> float:
        start = time.monotonic()
        deadline = start + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"the systemd container exited; its console:\n{self.console()}")
            last = self.state()
            if last == "active":
                return time.monotonic() - start
            if last == "failed":
                break
            time.sleep(0.1)
        raise AssertionError(f"otlpd is {last!r}, not active, after {time.monotonic() - start:.1f}s\n"
                             f"{self.exec('systemctl', 'status', '--no-pager', 'otlpd', check=False).stdout}\n"
                             f"journal:\n{self.journal_text()}\nconsole:\n{self.console()[-3000:]}")

    def console(self) -> str:
        result = tc.run(["podman", "logs", self.name], check=False)
        return result.stdout + result.stderr

    def proc(self, pid: str, name: str) -> str:
        return self.exec("cat", f"/proc/{pid}/{name}").stdout

    def remove(self) -> None:
        tc.run(["podman", "rm", "-f", "-t", "0", self.name], check=False, timeout=60)


def wait_for_line(c: SystemdContainer, pid, predicate, what: str, timeout: float = 10) -> str:
    try:
        return wait_until(lambda: next((m for m in c.stream(pid) if predicate(m)), None), timeout, what, interval=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}\njournal:\n{c.journal_text()}") from None


def span_ids_in_container(c: SystemdContainer) -> collections.Counter:
    result = c.exec("cat", DATA_FILE, check=False)
    if result.returncode != 0:
        return collections.Counter()
    lines = parse_jsonl(result.stdout.encode(), DATA_FILE)
    return collections.Counter(span["spanId"] for _, _, span in records(lines, "traces"))


def ids(spans) -> set[str]:
    return {format(s.context.span_id, "016x") for s in spans}


def start_if_needed(c: SystemdContainer) -> None:
    if c.state() != "active":
        c.exec("systemctl", "start", "otlpd", check=False, timeout=60)
        c.wait_active()


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def systemd_image(otlpd_binary, request, tmp_path_factory):
    total = time.monotonic()
    problem = tc.podman_problem()
    if problem:
        pytest.fail(f"podman cannot run here ({problem}); NOTES.md says rootful podman with runc works", pytrace=False)
    TIMINGS["base_image"] = tc.ensure_base_image(TIMINGS)
    probe = tc.run(tc.PODMAN + ["run", "--rm", *tc.ULIMITS, tc.BASE_IMAGE, "true"], check=False, timeout=120)
    if probe.returncode != 0:
        pytest.fail(f"podman cannot run a container from {tc.BASE_IMAGE}: {probe.stderr.strip()[-500:]}", pytrace=False)

    start = time.monotonic()
    context = tc.make_context(otlpd_binary, tmp_path_factory.mktemp("systemd-context"))
    content = write_context(context)
    TIMINGS["context_s"] = round(time.monotonic() - start, 1)
    tag = f"{IMAGE_REPO}:{content}"
    if tc.run(["podman", "image", "exists", tag], check=False).returncode == 0:
        TIMINGS["image"] = "cached"
    else:
        start = time.monotonic()
        build_image(context, tag)
        TIMINGS["image"] = "built"
        TIMINGS["build_s"] = round(time.monotonic() - start, 1)
    TIMINGS["setup_s"] = round(time.monotonic() - total, 1)
    tc.say(request, f"test_systemd_container: image {tag} ({TIMINGS['image']}); "
                    + ", ".join(f"{k}={v}" for k, v in TIMINGS.items() if k != "image"))
    yield tag
    TIMINGS["module_s"] = round(time.monotonic() - total, 1)
    tc.CACHE.mkdir(parents=True, exist_ok=True)
    LAST_RUN.write_text(json.dumps({"image": tag, "binary": otlpd_binary, "timings": TIMINGS}, indent=2) + "\n")
    tc.say(request, "test_systemd_container: " + ", ".join(f"{k}={v}" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def booted(systemd_image):
    """One container, systemd as PID 1; otlpd started at boot (the unit is enabled)."""
    c = SystemdContainer(systemd_image)
    try:
        c.wait_active()
        TIMINGS["boot_to_active_s"] = round(time.monotonic() - c.started, 2)
        c.boot_pid = c.show("MainPID")["MainPID"]
        yield c
    finally:
        c.remove()


# --------------------------------------------------------------------------
# Tests


def test_the_unit_under_systemd(booted):
    c = booted

    # Installed and enabled as make install + `systemctl enable` leave it; the drop-in is the only change.
    assert c.exec("cat", "/etc/systemd/system/otlpd.service").stdout == UNIT.read_text(), "the image's unit is stale"
    assert c.exec("systemctl", "is-enabled", "otlpd", check=False).stdout.strip() == "enabled"
    start_if_needed(c)

    # Type=notify: `active` only once READY=1 came over systemd's notify socket, with the STATUS line.
    props = c.show("Type", "NotifyAccess", "StatusText", "MainPID", "ActiveState", "SubState", "WatchdogUSec",
                   "LimitNOFILE", "DropInPaths", "FragmentPath", "StateDirectory", "WorkingDirectory", "NRestarts",
                   "DynamicUser", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    assert props["Type"] == "notify" and props["NotifyAccess"] == "main", props
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), props
    assert props["StatusText"] == STATUS, props
    assert props["WatchdogUSec"] == "30s", f"the watchdog is off or not the unit's: {props}"
    assert props["FragmentPath"] == "/etc/systemd/system/otlpd.service", props
    assert props["DropInPaths"] == "/etc/systemd/system/otlpd.service.d/10-limits.conf", props
    assert props["LimitNOFILE"] == str(LIMIT_NOFILE), props
    assert props["StateDirectory"] == "otlpd" and props["WorkingDirectory"] == "/var/lib/otlpd", props
    assert props["DynamicUser"] == "yes" and props["NRestarts"] == "0", props
    assert int(props["ActiveEnterTimestampMonotonic"]) > int(props["ExecMainStartTimestampMonotonic"]), props
    pid = props["MainPID"]
    assert pid not in ("", "0"), props

    # otlpd saw systemd's socket and watchdog (NOTIFY_SOCKET, WATCHDOG_USEC) and said so.
    reporting = wait_for_line(c, pid, lambda m: m.startswith("info\treporting to the service manager\t"),
                              "'reporting to the service manager' in the journal")
    assert "\tsocket=/run/systemd/notify" in reporting and "\twatchdog=30s" in reporting, reporting
    wait_for_line(c, pid, lambda m: m.startswith("info\totlpd is ready\t"), "'otlpd is ready' in the journal")
    environ = dict(v.split("=", 1) for v in c.proc(pid, "environ").split("\0") if "=" in v)
    for key, value in (("NOTIFY_SOCKET", "/run/systemd/notify"), ("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", pid),
                       ("STATE_DIRECTORY", "/var/lib/otlpd"), ("LOGS_DIRECTORY", "/var/log/otlpd"), ("USER", "otlpd")):
        assert environ.get(key) == value, f"{key}={environ.get(key)!r} in otlpd's environment, not {value!r}"
    assert "JOURNAL_STREAM" in environ

    # A dynamic user, no capabilities at all, no new privileges, a seccomp filter, the drop-in's limit.
    status = dict(re.findall(r"^(\w+):\s+(.*)$", c.proc(pid, "status"), re.M))
    uids, gids = status["Uid"].split(), status["Gid"].split()
    assert len(set(uids)) == 1 and len(set(gids)) == 1, status
    uid = int(uids[0])
    assert uid != 0 and uid in DYNAMIC_UIDS, f"otlpd runs as uid {uid}, not a DynamicUser"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, f"{cap}={status[cap]}: otlpd holds capabilities"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
    nofile = re.search(r"^Max open files\s+(\d+)\s+(\d+)", c.proc(pid, "limits"), re.M)
    assert nofile and nofile.groups() == (str(LIMIT_NOFILE), str(LIMIT_NOFILE)), c.proc(pid, "limits")

    # /var/lib/otlpd is the StateDirectory: DynamicUser's symlink into /var/lib/private, owned by that uid, 0750.
    assert c.exec("readlink", "/var/lib/otlpd").stdout.strip() == "private/otlpd"
    owner, mode = c.exec("stat", "-c", "%u %a", "/var/lib/private/otlpd").stdout.split()
    assert (int(owner), mode) == (uid, "750"), f"/var/lib/private/otlpd: uid {owner}, mode {mode}"

    # The SDK's spans over both protocols to the published ports, read back from the state directory.
    sent = {"grpc": tc.sdk_spans("systemd-grpc", 5), "http": tc.sdk_spans("systemd-http", 4)}
    tc.export("grpc", c.ports["grpc"], sent["grpc"])
    tc.export("http", c.ports["http"], sent["http"])
    expected = ids(sent["grpc"]) | ids(sent["http"])
    wait_until(lambda: set(span_ids_in_container(c)) >= expected, 10, f"the sent spans in {DATA_FILE}", interval=0.2)
    owner, mode = c.exec("stat", "-c", "%u %a", DATA_FILE).stdout.split()
    assert (int(owner), mode) == (uid, "640"), f"{DATA_FILE}: uid {owner}, mode {mode} (UMask=0027 gives 640)"
    # The debug exporter's lines (stdout) reach the journal as they are written.
    wait_for_line(c, pid, lambda m: "systemd-grpc" in m, "the debug exporter's line for systemd-grpc in the journal")

    # systemctl reload: SIGHUP, the config read again (the edited file: one pipeline fewer), same process.
    c.exec("sh", "-c", "cat > /etc/otlpd/otlpd.yaml", input=reload_config())
    start = time.monotonic()
    reload = c.exec("systemctl", "reload", "otlpd", check=False, timeout=60)
    assert reload.returncode == 0, f"systemctl reload failed: {reload.stderr}\njournal:\n{c.journal_text()}"
    reloaded = wait_for_line(c, pid, lambda m: m.startswith("info\treloaded\t"), "'reloaded' in the journal")
    TIMINGS["reload_s"] = round(time.monotonic() - start, 2)
    assert "\tpipelines=traces,metrics" in reloaded, reloaded
    assert any(m.startswith("info\tSIGHUP received: reloading the config") for m in c.stream(pid)), c.journal_text()
    wait_until(lambda: c.show("StatusText")["StatusText"] == "2 pipelines, 2 listeners, 0 queued", 10,
               "StatusText after the reload", interval=0.2)
    after = c.show("MainPID", "ActiveState", "SubState", "NRestarts", "Result")
    assert after == {"MainPID": pid, "ActiveState": "active", "SubState": "running", "NRestarts": "0",
                     "Result": "success"}, after
    assert any(m.startswith("Reloaded otlpd.service") for m in c.manager()), c.journal_text()
    # Still serving after the reload.
    again = tc.sdk_spans("systemd-reloaded", 3)
    tc.export("grpc", c.ports["grpc"], again)
    expected |= ids(again)
    wait_until(lambda: set(span_ids_in_container(c)) >= expected, 10, "the spans sent after the reload", interval=0.2)

    # The journal: otlpd's log lines are `level<TAB>message...`, with no time of their own (journald stamps
    # them), and none is a warning or an error.
    stream = c.stream(pid)
    log_lines = [m for m in stream if LOG_LINE.match(m)]
    messages = [m.split("\t")[1] for m in log_lines]
    for needed in ("starting", "reporting to the service manager", "listening", "otlpd is ready",
                   "SIGHUP received: reloading the config", "reloaded"):
        assert needed in messages, f"{needed!r} not among otlpd's journal lines:\n{c.journal_text()}"
    stamped = [m for m in stream if TIMESTAMP.match(m) and not DEBUG_EXPORTER_LINE.match(m)]
    assert not stamped, f"log lines with a timestamp of their own in the journal:\n" + "\n".join(stamped)
    unknown = [m for m in stream if not (LOG_LINE.match(m) or DEBUG_EXPORTER_LINE.match(m) or LIBDISPATCH_LINE.match(m))]
    assert not unknown, "journal lines that are neither otlpd's log lines nor the debug exporter's:\n" + "\n".join(unknown)
    bad = [m for m in log_lines if m.split("\t")[0] in ("warning", "warn", "error", "critical")]
    assert not bad, "warnings or errors in the journal:\n" + "\n".join(bad)

    # systemctl stop: SIGTERM, a drain, exit 0, long before TimeoutStopSec.
    start = time.monotonic()
    c.exec("systemctl", "stop", "otlpd", timeout=60)
    TIMINGS["stop_s"] = round(time.monotonic() - start, 2)
    stopped = c.show("ActiveState", "SubState", "Result", "ExecMainCode", "ExecMainStatus", "MainPID")
    assert stopped == {"ActiveState": "inactive", "SubState": "dead", "Result": "success", "ExecMainCode": "1",
                       "ExecMainStatus": "0", "MainPID": "0"}, f"{stopped}\njournal:\n{c.journal_text()}"
    assert TIMINGS["stop_s"] < STOPPED_WITHIN, f"systemctl stop took {TIMINGS['stop_s']}s (TimeoutStopSec=35s)"
    messages = [m.split("\t")[1] for m in c.stream(pid) if LOG_LINE.match(m)]
    assert "shutting down" in messages and messages[-1] == "stopped", f"no clean stop:\n{c.journal_text()}"
    assert any(m.startswith("Stopped otlpd.service") for m in c.manager()), c.journal_text()

    # Every span exactly once, and the state directory outlives the service.
    result = c.exec("cat", DATA_FILE)
    lines = parse_jsonl(result.stdout.encode(), DATA_FILE)
    assert_one_resource_per_line(lines, "traces", DATA_FILE)
    seen = collections.Counter(span["spanId"] for _, _, span in records(lines, "traces"))
    assert set(seen) == expected and all(n == 1 for n in seen.values()), f"spans in the file: {seen}"
    services = {service_of(r) for r, _, _ in records(lines, "traces")}
    assert services == {"systemd-grpc", "systemd-http", "systemd-reloaded"}, services


def test_the_watchdog_restarts_a_stuck_otlpd(booted):
    """WatchdogSec=2s by a runtime drop-in (the unit's 30s would take a minute): otlpd feeds it, and a
    3 s stall of one event loop (OTLPD_TEST_HOOKS=1, SIGUSR2) has systemd kill it and start it again."""
    c = booted
    dropin = "/run/systemd/system/otlpd.service.d/50-watchdog-test.conf"
    c.exec("mkdir", "-p", str(Path(dropin).parent))
    c.exec("sh", "-c", f"cat > {dropin}", input="[Service]\nWatchdogSec=2s\nEnvironment=OTLPD_TEST_HOOKS=1\n")
    try:
        c.exec("systemctl", "daemon-reload")
        c.exec("systemctl", "restart", "otlpd", check=False, timeout=60)
        c.wait_active()
        props = c.show("MainPID", "WatchdogUSec", "NRestarts", "ActiveEnterTimestampMonotonic")
        assert props["WatchdogUSec"] == "2s", props
        pid, restarts = props["MainPID"], int(props["NRestarts"])
        wait_for_line(c, pid, lambda m: m.startswith("info\treporting to the service manager\t") and "\twatchdog=2s" in m,
                      "otlpd reporting a 2s watchdog")

        # Fed: three seconds on, the same process runs, and systemd saw a WATCHDOG=1 after READY=1.
        time.sleep(3.0)
        fed = c.show("MainPID", "ActiveState", "NRestarts", "WatchdogTimestampMonotonic")
        assert (fed["MainPID"], fed["ActiveState"], int(fed["NRestarts"])) == (pid, "active", restarts), fed
        since_ready = (int(fed["WatchdogTimestampMonotonic"]) - int(props["ActiveEnterTimestampMonotonic"])) / 1e6
        assert since_ready >= 1.0, f"no WATCHDOG=1 reached systemd in 3 s (last {since_ready:.2f}s after READY=1)"

        # Stuck: one event loop held for 3 s; the feeding stops, systemd's watchdog fires, Restart=on-failure.
        start = time.monotonic()
        c.exec("systemctl", "kill", "--kill-whom=main", "--signal=SIGUSR2", "otlpd")

        def restarted():
            now = c.show("MainPID", "ActiveState", "NRestarts")
            return now if int(now["NRestarts"]) == restarts + 1 and now["ActiveState"] == "active" else None
        try:
            now = wait_until(restarted, 20, "a watchdog restart", interval=0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\njournal:\n{c.journal_text()}") from None
        TIMINGS["watchdog_restart_s"] = round(time.monotonic() - start, 2)
        assert now["MainPID"] != pid, now
        manager = c.manager()
        assert any(m.startswith("otlpd.service: Watchdog timeout (limit 2s)") for m in manager), c.journal_text()
        assert any("Failed with result 'watchdog'" in m for m in manager), c.journal_text()
        assert any(m.startswith("error\tan event loop or the I/O pool did not answer") for m in c.stream(pid)), \
            c.journal_text()
    finally:
        c.exec("rm", "-f", dropin)
        c.exec("systemctl", "daemon-reload")
        c.exec("systemctl", "restart", "otlpd", check=False, timeout=60)


def test_debug_exporter_lines_in_the_journal_have_no_timestamp_of_their_own(booted):
    """Under JOURNAL_STREAM the debug exporter's stdout lines carry no time of their own, as the log lines."""
    c = booted
    start_if_needed(c)
    pid = c.show("MainPID")["MainPID"]
    tc.export("grpc", c.ports["grpc"], tc.sdk_spans("systemd-debug", 2))
    line = wait_for_line(c, pid, lambda m: "systemd-debug" in m, "the debug exporter's line in the journal")
    assert DEBUG_EXPORTER_LINE.match(line), line
    assert not TIMESTAMP.match(line), f"the debug exporter's line has a time of its own under the journal: {line!r}"
