"""The container image (Dockerfile): its runtime stage, built here without a
registry from the binary under test ($OTLPD_BINARY) and the Swift runtime
libraries that binary loads on this machine, on a Debian base image made with
mmdebstrap (`localbase:bookworm`, created once, then reused).

Then the image runs as a user would run it: published ports on 127.0.0.1, a
bind-mounted volume for /var/lib/otlpd (`:U`), the image's HEALTHCHECK, the
OpenTelemetry Python SDK sending spans over OTLP/gRPC and OTLP/HTTP, every
span read back exactly once from the file in the volume, no loopback warning,
a non-root process (uid 10001), and `podman stop` (SIGTERM) ending it with
exit code 0 long before the stop timeout.

Two paths, and the test says which one ran (a line on the terminal, and
/var/tmp/otlpd-container/last-run.json):
  podman    rootful podman with the runc runtime and the machine's own ulimits
            (what works here: crun fails on hybrid cgroups, podman's default
            ulimits exceed what root may set);
  fallback  when podman cannot run a container: the same checks with the
            binary in a root made by mmdebstrap from the Dockerfile's
            RUNTIME_PACKAGES, laid out as the runtime stage lays it out, run
            with unshare (mount and PID namespaces) and chroot as uid 10001,
            on the host's network (--set puts the listeners on free ports).
OTLPD_CONTAINER_PATH=podman|fallback forces one. A missing library, a wrong
path or a failed build fails the test; nothing here skips.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otlpd_harness import assert_one_resource_per_line, parse_log_line, read_jsonl, records, service_of, wait_until

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
CACHE = Path("/var/tmp/otlpd-container")  # the base rootfs tar, the fallback root, last-run.json; not in git
BASE_IMAGE = "localbase:bookworm"
BASE_TAR = CACHE / "bookworm-minbase.tar"
IMAGE = "localhost/otlpd-it:latest"
PODMAN = ["podman", "--runtime", "runc"]
SUITE = "bookworm"
UID = 10001
# What the image declares, and what the test relies on.
PORTS = {"grpc": 4317, "http": 4318, "health": 13133, "metrics": 8888}
DATA_DIR = "/var/lib/otlpd"
STOP_TIMEOUT = 30  # podman stop -t: SIGKILL after this
STOPPED_WITHIN = 5.0  # an idle otlpd drains in well under a second
START_TIMEOUT = 30.0


def run(cmd: list[str], *, timeout: float = 300, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
                             f"--- stdout (tail)\n{result.stdout[-4000:]}\n--- stderr (tail)\n{result.stderr[-4000:]}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rlimit(which: int, ceiling: int) -> int:
    """The hard limit this process has (root cannot raise it here), at most `ceiling`."""
    hard = resource.getrlimit(which)[1]
    return ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)


ULIMITS = ["--ulimit", f"nofile={rlimit(resource.RLIMIT_NOFILE, 65536)}:{rlimit(resource.RLIMIT_NOFILE, 65536)}",
           "--ulimit", f"nproc={rlimit(resource.RLIMIT_NPROC, 32768)}:{rlimit(resource.RLIMIT_NPROC, 32768)}"]


# --------------------------------------------------------------------------
# What the Dockerfile says (the fallback mirrors it; the image must match it)


def dockerfile_text() -> str:
    return DOCKERFILE.read_text()


def runtime_packages() -> list[str]:
    match = re.search(r'^ARG RUNTIME_PACKAGES="([^"]+)"', dockerfile_text(), re.M)
    assert match, "Dockerfile: no ARG RUNTIME_PACKAGES=\"...\" line"
    return match.group(1).split()


def entrypoint_and_cmd() -> list[str]:
    text = dockerfile_text()
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert entry and cmd, "Dockerfile: ENTRYPOINT and CMD in exec (JSON) form"
    return json.loads(entry.group(1)) + json.loads(cmd.group(1))


def config_args(extra: list[str]) -> list[str]:
    """The image's CMD (--config ...) plus `extra`, as one passes them to `podman run IMAGE ARGS`."""
    return entrypoint_and_cmd()[1:] + extra


# --------------------------------------------------------------------------
# The build context: the binary under test and its Swift runtime libraries


def make_context(binary: str, context: Path) -> Path:
    """container/prebuilt-context.sh into a fresh dir; retried, since the binary may be rebuilt under us."""
    last = None
    for attempt in range(6):
        shutil.rmtree(context, ignore_errors=True)
        result = run([str(REPO / "container" / "prebuilt-context.sh"), str(context), binary], check=False, timeout=120)
        if result.returncode == 0:
            check = run([str(context / "prebuilt" / "otlpd"), "version"], check=False, timeout=30)
            if check.returncode == 0:
                return context
            last = check
        else:
            last = result
        time.sleep(3)
    raise AssertionError(f"cannot make the build context from {binary}:\n{last.stdout}\n{last.stderr}")


# --------------------------------------------------------------------------
# podman


def podman_problem() -> str | None:
    """Why podman cannot run a container here, or None."""
    if shutil.which("podman") is None:
        return "no podman binary"
    try:
        info = run(PODMAN + ["info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return "podman info timed out"
    if info.returncode != 0:
        return f"podman info: {info.stderr.strip()[-300:]}"
    return None


def ensure_base_image(timings: dict) -> str:
    """localbase:bookworm from mmdebstrap, unless it exists. Returns 'cached' or 'created'."""
    if run(["podman", "image", "exists", BASE_IMAGE], check=False).returncode == 0:
        return "cached"
    CACHE.mkdir(parents=True, exist_ok=True)
    if not BASE_TAR.exists():
        assert shutil.which("mmdebstrap"), "mmdebstrap is missing (apt: mmdebstrap)"
        start = time.monotonic()
        partial = BASE_TAR.with_suffix(".partial.tar")
        run(["mmdebstrap", "--variant=minbase", SUITE, str(partial)], timeout=900)
        partial.rename(BASE_TAR)
        timings["mmdebstrap_s"] = round(time.monotonic() - start, 1)
    start = time.monotonic()
    run(["podman", "import", str(BASE_TAR), BASE_IMAGE], timeout=300)
    timings["import_s"] = round(time.monotonic() - start, 1)
    return "created"


def podman_build(context: Path, timings: dict) -> None:
    old = run(["podman", "image", "inspect", "--format", "{{.Id}}", IMAGE], check=False).stdout.strip()
    start = time.monotonic()
    run(PODMAN + ["build", "--runtime", "runc", *ULIMITS, "--format", "docker", "-f", str(DOCKERFILE),
                  "--build-arg", "OTLPD_ARTIFACTS=prebuilt", "--build-arg", f"RUNTIME_IMAGE={BASE_IMAGE}",
                  "-t", IMAGE, str(context)], timeout=900)
    timings["build_s"] = round(time.monotonic() - start, 1)
    # Leave one image behind, not one per binary: the replaced image (its own
    # layers go with it) and the prebuilt stage's image (remade from the context in a second).
    new = run(["podman", "image", "inspect", "--format", "{{.Id}}", IMAGE]).stdout.strip()
    if old and old != new:
        run(["podman", "rmi", old], check=False)
    run(["podman", "image", "prune", "-f", "--filter", "label=otlpd.stage=prebuilt"], check=False)


class PodmanContainer:
    def __init__(self, tmp_path: Path, args: list[str], *, publish: bool, dockerenv: bool):
        self.name = f"otlpd-it-{uuid.uuid4().hex[:10]}"
        self.data_dir = tmp_path / "volume"
        self.data_dir.mkdir()
        self.ports = {role: free_port() for role in PORTS} if publish else {}
        cmd = PODMAN + ["run", "-d", "--name", self.name, *ULIMITS, "-v", f"{self.data_dir}:{DATA_DIR}:U"]
        for role, host_port in self.ports.items():
            cmd += ["-p", f"127.0.0.1:{host_port}:{PORTS[role]}"]
        if dockerenv:
            # podman makes /run/.containerenv, not Docker's /.dockerenv: with it, otlpd
            # knows it is in a container, so a missing loopback warning means something.
            empty = tmp_path / "dockerenv"
            empty.touch()
            cmd += ["-v", f"{empty}:/.dockerenv:ro"]
        self.started = time.monotonic()
        self.start_output = run(cmd + [IMAGE, *args], timeout=120)

    def inspect(self, template: str) -> str:
        return run(["podman", "inspect", "--format", template, self.name]).stdout.strip()

    def logs(self) -> str:
        result = run(["podman", "logs", self.name], check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def pid(self) -> int:
        return int(self.inspect("{{.State.Pid}}"))

    def healthcheck(self) -> tuple[int, str]:
        result = run(["podman", "healthcheck", "run", self.name], check=False, timeout=60)
        return result.returncode, (result.stdout + result.stderr).strip()

    def health_status(self) -> str | None:
        return self.inspect("{{.State.Health.Status}}")

    def stop(self) -> tuple[int, float]:
        start = time.monotonic()
        run(["podman", "stop", "-t", str(STOP_TIMEOUT), self.name], timeout=STOP_TIMEOUT + 60)
        elapsed = time.monotonic() - start
        return int(self.inspect("{{.State.ExitCode}}")), elapsed

    def remove(self) -> None:
        run(["podman", "rm", "-f", "-v", "-t", "0", self.name], check=False, timeout=60)


# --------------------------------------------------------------------------
# The fallback: the runtime stage's layout in an mmdebstrap root, run with unshare + chroot

ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# USER 10001:10001 as a container engine does it: no supplementary groups, no capabilities.
SETPRIV = f"setpriv --reuid={UID} --regid={UID} --clear-groups --inh-caps=-all --bounding-set=-all"


def in_root(root: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """`cmd` chrooted into `root` with a /proc of its own (a Swift binary finds its argv through
    /proc/self/maps: without /proc, otlpd sees no arguments and runs the embedded default config)."""
    return run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "--", "/bin/sh", "-c",
                'mount -t proc proc "$1/proc" && exec chroot "$@"', "sh", str(root), *cmd], check=check, timeout=120)


def make_fallback_root(context: Path, timings: dict) -> tuple[Path, str]:
    """The runtime stage, step by step, in a directory. Returns (root, 'cached'|'created')."""
    for needle in ("COPY --from=artifacts /out/swift/ /usr/lib/swift/linux/",
                   "echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf",
                   "COPY --from=artifacts /out/otlpd /usr/bin/otlpd",
                   "COPY config/otlpd-container.yaml /etc/otlpd/otlpd.yaml",
                   "COPY container/healthcheck.sh /usr/local/bin/otlpd-healthcheck",
                   f"USER {UID}:{UID}"):
        assert needle in dockerfile_text(), f"the fallback mirrors a Dockerfile step it no longer finds: {needle}"
    packages = runtime_packages()
    root = CACHE / f"fallback-root-{hashlib.sha256(' '.join(packages).encode()).hexdigest()[:12]}"
    state = "cached"
    if not (root / "usr" / "bin" / "apt-get").exists():
        assert shutil.which("mmdebstrap"), "mmdebstrap is missing (apt: mmdebstrap)"
        start = time.monotonic()
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        run(["mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(partial)], timeout=900)
        partial.rename(root)
        timings["mmdebstrap_s"] = round(time.monotonic() - start, 1)
        state = "created"
    swift = root / "usr/lib/swift/linux"
    shutil.rmtree(swift, ignore_errors=True)
    shutil.copytree(context / "prebuilt" / "swift", swift)
    (root / "etc/ld.so.conf.d/swift.conf").write_text("/usr/lib/swift/linux\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")  # as engines do
    in_root(root, "ldconfig")
    shutil.copy2(context / "prebuilt" / "otlpd", root / "usr/bin/otlpd.new")
    os.replace(root / "usr/bin/otlpd.new", root / "usr/bin/otlpd")  # never "text file busy"
    (root / "etc/otlpd").mkdir(exist_ok=True)
    shutil.copy2(context / "config" / "otlpd-container.yaml", root / "etc/otlpd/otlpd.yaml")
    shutil.copy2(context / "container" / "healthcheck.sh", root / "usr/local/bin/otlpd-healthcheck")
    ldd = in_root(root, "ldd", "/usr/bin/otlpd").stdout
    assert "not found" not in ldd, f"a library is missing from the runtime root:\n{ldd}"
    version = in_root(root, "otlpd", "version").stdout
    assert version.startswith("otlpd "), f"otlpd version in the runtime root: {version!r}"
    in_root(root, "otlpd", "validate", "--config", "/etc/otlpd/otlpd.yaml")
    if in_root(root, "getent", "passwd", str(UID), check=False).returncode != 0:
        in_root(root, "groupadd", "--gid", str(UID), "otlpd")
        in_root(root, "useradd", "--uid", str(UID), "--gid", str(UID), "--home-dir", DATA_DIR,
                "--no-create-home", "--shell", "/usr/sbin/nologin", "otlpd")
    (root / DATA_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root, state


class FallbackContainer:
    """One otlpd as PID 1 of its own PID namespace, chrooted into the runtime root as uid 10001,
    with the volume bind-mounted; the host's network, so the listeners move to free ports."""

    def __init__(self, root: Path, tmp_path: Path, args: list[str], *, publish: bool, dockerenv: bool):
        self.root = root
        self.data_dir = tmp_path / "volume"
        self.data_dir.mkdir()
        os.chown(self.data_dir, UID, UID)  # what podman's :U does
        self.ports = {role: free_port() for role in PORTS}
        moved = [f"--set=receivers.otlp.protocols.grpc.endpoint=0.0.0.0:{self.ports['grpc']}",
                 f"--set=receivers.otlp.protocols.http.endpoint=0.0.0.0:{self.ports['http']}",
                 f"--set=extensions.health_check.endpoint=0.0.0.0:{self.ports['health']}",
                 f"--set=service.telemetry.metrics.address=0.0.0.0:{self.ports['metrics']}"]
        dockerenv_file = root / ".dockerenv"
        if dockerenv:
            dockerenv_file.touch()
        else:
            dockerenv_file.unlink(missing_ok=True)
        self.log_path = tmp_path / "container.log"
        script = ('mount --bind "$1" "$2/var/lib/otlpd" && mount -t proc proc "$2/proc" && root=$2 && shift 2 && '
                  f'exec env -i {ENV_PATH} HOME={DATA_DIR} chroot "$root" {SETPRIV} '
                  f'/bin/sh -c \'cd {DATA_DIR} && exec "$@"\' otlpd "$@"')
        command = entrypoint_and_cmd()[:1] + moved + args
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--", "/bin/sh", "-c", script, "sh",
             str(self.data_dir), str(root), *command],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self._pid = wait_until(self._find_pid, 10, "otlpd inside the fallback root")
        self.start_output = None

    def _find_pid(self) -> int | None:
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            for child in children:
                if os.readlink(f"/proc/{child}/exe") == str(self.root / "usr/bin/otlpd"):
                    return int(child)
        except OSError:
            pass
        if self.process.poll() is not None:
            raise AssertionError(f"the fallback otlpd exited {self.process.returncode}:\n{self.logs()}")
        return None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def pid(self) -> int:
        return self._pid

    def healthcheck(self) -> tuple[int, str]:
        # The image's HEALTHCHECK command, inside the root, as the image's user.
        result = run(["env", "-i", ENV_PATH, f"OTLPD_HEALTH_PORT={self.ports['health']}",
                      "chroot", str(self.root), *SETPRIV.split(), "/usr/local/bin/otlpd-healthcheck"],
                     check=False, timeout=30)
        return result.returncode, (result.stdout + result.stderr).strip()

    def health_status(self) -> str | None:
        return None  # no engine to keep a health state

    def stop(self) -> tuple[int, float]:
        start = time.monotonic()
        os.kill(self._pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self._pid, signal.SIGKILL)  # as an engine does at the stop timeout
            code = self.process.wait(timeout=30)
        return code, time.monotonic() - start

    def remove(self) -> None:
        # otlpd is its PID namespace's init: SIGKILL to it ends the namespace. (unshare's
        # --kill-child does not reach it: setpriv's change of uid clears the parent-death signal.)
        if self.process.poll() is None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        (self.root / ".dockerenv").unlink(missing_ok=True)


# --------------------------------------------------------------------------
# Fixtures


def say(request, line: str) -> None:
    """A line on the terminal even under -q and output capture: which path ran, and its timings."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(line)


@pytest.fixture(scope="module")
def image(otlpd_binary, request, tmp_path_factory):
    """Builds the image (or the fallback root) once for this module; yields a starter."""
    forced = os.environ.get("OTLPD_CONTAINER_PATH")
    assert forced in (None, "", "podman", "fallback"), f"OTLPD_CONTAINER_PATH={forced}: podman or fallback"
    CACHE.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    summary: dict = {"binary": otlpd_binary, "timings": timings}
    total = time.monotonic()

    path, why = "podman", "podman runs containers here"
    problem = None if forced == "fallback" else podman_problem()
    if forced == "fallback":
        path, why = "fallback", "OTLPD_CONTAINER_PATH=fallback"
    elif problem:
        assert forced != "podman", f"OTLPD_CONTAINER_PATH=podman, but {problem}"
        path, why = "fallback", problem
    if path == "podman":
        summary["base_image"] = ensure_base_image(timings)
        # A container from the base image proves the runtime works; only then is a
        # failure later the image's fault, never a reason to fall back.
        probe = run(PODMAN + ["run", "--rm", *ULIMITS, BASE_IMAGE, "true"], check=False, timeout=120)
        if probe.returncode != 0:
            assert forced != "podman", f"OTLPD_CONTAINER_PATH=podman, but podman cannot run a container: {probe.stderr}"
            path, why = "fallback", f"podman cannot run a container: {probe.stderr.strip()[-300:]}"

    start = time.monotonic()
    context = make_context(otlpd_binary, tmp_path_factory.mktemp("container-context"))
    timings["context_s"] = round(time.monotonic() - start, 1)
    if path == "podman":
        podman_build(context, timings)
        summary["image"] = IMAGE
        summary["image_size_mb"] = round(int(run(["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE])
                                              .stdout.strip()) / 1e6, 1)

        def start_container(tmp_path, args, *, publish=True, dockerenv=False):
            # Podman's own marks (/run/.containerenv, container=podman) tell otlpd it is in a container.
            return PodmanContainer(tmp_path, args, publish=publish, dockerenv=dockerenv)
    else:
        start = time.monotonic()
        root, summary["fallback_root"] = make_fallback_root(context, timings)
        timings["root_s"] = round(time.monotonic() - start, 1)
        summary["root"] = str(root)
        summary["root_size_mb"] = round(int(run(["du", "-sb", str(root)]).stdout.split()[0]) / 1e6, 1)

        def start_container(tmp_path, args, *, publish=True, dockerenv=True):
            return FallbackContainer(root, tmp_path, args, publish=publish, dockerenv=dockerenv)

    timings["setup_s"] = round(time.monotonic() - total, 1)
    summary.update(path=path, why=why)
    line = (f"test_container: path={path} ({why}); "
            + ", ".join(f"{k}={v}" for k, v in summary.items() if k not in ("path", "why", "timings", "binary"))
            + "; " + ", ".join(f"{k}={v}" for k, v in timings.items()))
    say(request, line)
    start_container.path = path
    start_container.summary = summary
    yield start_container
    timings["module_s"] = round(time.monotonic() - total, 1)
    (CACHE / "last-run.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(request, f"test_container: path={path}, whole module {timings['module_s']}s; "
                 f"runs: {summary.get('runs', {})}")


@pytest.fixture
def containers(tmp_path):
    started = []

    def add(c):
        started.append(c)
        return c

    yield add
    for c in started:
        c.remove()


def start(image, containers, tmp_path, extra_args=(), **kwargs):
    return containers(image(tmp_path, config_args(list(extra_args)), **kwargs))


def log_lines(container):
    return [line for line in (parse_log_line(raw) for raw in container.logs().splitlines()) if line]


def wait_ready(container) -> None:
    def ready():
        if not container.running():
            raise AssertionError(f"otlpd exited before it was ready; its log:\n{container.logs()}")
        return any(line.message == "otlpd is ready" for line in log_lines(container))
    wait_until(ready, START_TIMEOUT, "'otlpd is ready' in the container's log", interval=0.1)


def http_status(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------
# The SDK's spans


def sdk_spans(service: str, count: int):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("it.container", "1.0")
    with tracer.start_as_current_span(f"{service} request"):
        for i in range(count - 1):
            with tracer.start_as_current_span(f"step {i}", attributes={"step": i}):
                pass
    provider.shutdown()
    spans = memory.get_finished_spans()
    assert len(spans) == count
    return spans


def export(protocol: str, port: int, spans) -> None:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=10)
    try:
        result = exporter.export(spans)
    finally:
        exporter.shutdown()
    assert result == SpanExportResult.SUCCESS, f"the SDK's OTLP/{protocol} export to the container failed"


# --------------------------------------------------------------------------
# Tests


def test_image_declares_what_it_runs_with(image):
    """User, ports, volume, healthcheck, stop signal and command; every library resolves in the image."""
    if image.path != "podman":
        pytest.skip("image metadata exists only on the podman path; the fallback checks the same layout when it builds its root")
    (inspected,) = json.loads(run(["podman", "image", "inspect", IMAGE]).stdout)
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert set(config.get("ExposedPorts", {})) == {f"{p}/tcp" for p in PORTS.values()}
    assert set(config.get("Volumes", {})) == {DATA_DIR}
    assert config.get("StopSignal") == "SIGTERM"
    assert config.get("Entrypoint") == ["otlpd"] and config.get("Cmd") == ["--config", "/etc/otlpd/otlpd.yaml"]
    healthcheck = inspected.get("Healthcheck") or {}
    assert healthcheck.get("Test") == ["CMD", "/usr/local/bin/otlpd-healthcheck"], \
        f"no HEALTHCHECK in the image (built in OCI format?): {healthcheck}"
    ldd = run(PODMAN + ["run", "--rm", *ULIMITS, "--entrypoint", "ldd", IMAGE, "/usr/bin/otlpd"]).stdout
    assert "not found" not in ldd, ldd
    swift = [line for line in ldd.splitlines() if "libswiftCore.so" in line or "libFoundation.so" in line]
    assert len(swift) == 2 and all("=> /usr/lib/swift/linux/" in line for line in swift), \
        f"the Swift runtime must come from /usr/lib/swift/linux in the image:\n{ldd}"


def test_container_receives_writes_and_stops(image, containers, tmp_path):
    c = start(image, containers, tmp_path)
    wait_ready(c)
    started_in = time.monotonic() - c.started

    # Healthy: the published health port answers 200, and so does the image's HEALTHCHECK.
    health_url = f"http://127.0.0.1:{c.ports['health']}/"
    try:
        wait_until(lambda: http_status(health_url) == 200, 15, "200 from the health check", interval=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}; last answer: {http_status(health_url)}; log:\n{c.logs()}") from None
    code, output = c.healthcheck()
    assert code == 0, f"the image's HEALTHCHECK failed ({code}): {output}\nlog:\n{c.logs()}"
    if image.path == "podman":
        assert c.health_status() == "healthy", f"podman's health state: {c.health_status()}"

    # The process is not root: uid 10001, real, effective, saved and filesystem.
    status = Path(f"/proc/{c.pid()}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    assert uids == [str(UID)] * 4, f"otlpd runs as uid {uids}, not {UID}"

    # The SDK sends over both protocols to the published ports.
    sent = {"grpc": sdk_spans("container-grpc", 5), "http": sdk_spans("container-http", 4)}
    export("grpc", c.ports["grpc"], sent["grpc"])
    export("http", c.ports["http"], sent["http"])
    expected = {format(s.context.span_id, "016x"): service for service, spans in
                (("container-grpc", sent["grpc"]), ("container-http", sent["http"])) for s in spans}

    traces = c.data_dir / "otlpd.traces.jsonl"

    def written():
        lines = read_jsonl(traces)
        return lines if {span["spanId"] for _, _, span in records(lines, "traces")} >= set(expected) else None
    wait_until(written, 10, f"the sent spans in {traces} (files: {sorted(p.name for p in c.data_dir.iterdir())})",
               interval=0.1)

    # No loopback warning: every listener is on 0.0.0.0 (otlpd does know it is in a container, see dockerenv).
    lines = log_lines(c)
    listening = {line.fields.get("protocol"): line.fields.get("endpoint") for line in lines if line.message == "listening"}
    assert set(listening) == {"OTLP/gRPC", "OTLP/HTTP"} and all(e.startswith("0.0.0.0:") for e in listening.values()), \
        f"listeners: {listening}"
    if image.path == "podman":
        assert listening == {"OTLP/gRPC": "0.0.0.0:4317", "OTLP/HTTP": "0.0.0.0:4318"}, listening
    assert not [line.raw for line in lines if "loopback" in line.raw], "loopback warning in the container's log"
    assert not [line.raw for line in lines if line.level in ("warn", "error")], \
        f"warnings or errors in the container's log:\n{c.logs()}"

    # SIGTERM (podman stop): drained, exit 0, long before the stop timeout.
    exit_code, stop_seconds = c.stop()
    assert exit_code == 0, f"exit code {exit_code} after SIGTERM; log:\n{c.logs()}"
    assert stop_seconds < STOPPED_WITHIN, f"stopping took {stop_seconds:.1f}s (SIGKILL comes at {STOP_TIMEOUT}s)"
    messages = [line.message for line in log_lines(c)]
    assert "shutting down" in messages and "stopped" in messages, f"no clean shutdown in the log:\n{c.logs()}"

    # Every span exactly once, after the drain too, in a file the container's user owns.
    lines = read_jsonl(traces)
    assert_one_resource_per_line(lines, "traces", traces.name)
    seen = collections.Counter(span["spanId"] for _, _, span in records(lines, "traces"))
    assert set(seen) == set(expected), f"span ids in the file {sorted(seen)} != sent {sorted(expected)}"
    assert all(n == 1 for n in seen.values()), f"spans written more than once: {[k for k, n in seen.items() if n > 1]}"
    for resource_entry, _, span in records(lines, "traces"):
        assert service_of(resource_entry) == expected[span["spanId"]]
    assert traces.stat().st_uid == UID, f"{traces} is owned by uid {traces.stat().st_uid}"

    image.summary.setdefault("runs", {})["main"] = {
        "ready_s": round(started_in, 2), "stop_s": round(stop_seconds, 2), "spans": len(expected)}


def test_loopback_warning_fires_in_a_container(image, containers, tmp_path):
    """The control for the check above: a loopback receiver in the same container setup is warned about."""
    port = 4317 if image.path == "podman" else free_port()
    c = start(image, containers, tmp_path, [f"--set=receivers.otlp.protocols.grpc.endpoint=127.0.0.1:{port}"],
              publish=False)
    wait_ready(c)
    warnings = [line for line in log_lines(c) if "loopback" in line.message]
    assert [w.fields.get("endpoint") for w in warnings] == [f"127.0.0.1:{port}"], c.logs()
    exit_code, _ = c.stop()
    assert exit_code == 0


def test_loopback_warning_under_plain_podman(image, containers, tmp_path):
    if image.path != "podman":
        pytest.skip("about podman itself")
    c = start(image, containers, tmp_path, ["--set=receivers.otlp.protocols.grpc.endpoint=127.0.0.1:4317"],
              publish=False, dockerenv=False)
    wait_ready(c)
    try:
        assert [line for line in log_lines(c) if "loopback" in line.message], \
            "no loopback warning from otlpd in a podman container"
    finally:
        c.stop()
