"""The Kubernetes manifests in config/kubernetes/: they validate against the
API's schemas (kubernetes-validate --strict, offline), kustomize renders them,
the otlpd configs their ConfigMaps carry pass `otlpd validate`, and the
manifests agree with those configs (ports, probes, grace period, memory).

Then the scale-out they describe, on one machine: the agent's config from the
DaemonSet's ConfigMap in front of two gateway processes on 127.0.0.2 and
127.0.0.3 (one port, two addresses, as two pods behind the headless Service),
whose DNS name is written to /etc/hosts. The OpenTelemetry Python SDK
(BatchSpanProcessor and the OTLP/gRPC exporter at their defaults) sends to the
agent at about 5,000 spans/s; one gateway gets SIGTERM mid-run. Every span
the SDK exported must be in the two gateways' files, each gateway must have
had a share before the stop, and no span may be lost.
"""
from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from otlpd_harness import attrs, read_jsonl, records, run_otlpd, wait_until
from test_sdk_rates import capture_sdk_warnings, generate, new_provider, release_sdk_warnings, sdk_exporter

K8S_DIR = Path(__file__).resolve().parents[2] / "config" / "kubernetes"
# 1.30: the first release with the preStop `sleep` action on by default (the
# gateway uses it); 1.37: the newest schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# The values the downward API would give the agent, for the tests.
AGENT_ENV = {"K8S_POD_NAME": "otlpd-agent-x7k2p", "K8S_NAMESPACE_NAME": "otlpd-test",
             "K8S_NODE_NAME": "node-a"}


# --------------------------------------------------------------------------
# Reading the manifests


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def load_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objects, f"{key} defined twice"
                objects[key] = doc
    return objects


OBJECTS = load_objects()


def of_kind(kind: str) -> list[dict]:
    return [o for (k, _), o in OBJECTS.items() if k == kind]


def workload(component: str) -> dict:
    """The Deployment (gateway) or DaemonSet (agent) whose pods carry the component label."""
    found = [o for o in of_kind("Deployment") + of_kind("DaemonSet")
             if o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"one workload for {component}, found {len(found)}"
    return found[0]


def container(obj: dict) -> dict:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def config_path_of(obj: dict) -> str:
    args = container(obj).get("args", [])
    assert "--config" in args, f"{obj['metadata']['name']}: no --config in {args}"
    return args[args.index("--config") + 1]


def mounts_of(obj: dict) -> list[tuple[dict, dict]]:
    """(volumeMount, volume) pairs of the workload's container."""
    volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"].get("volumes", [])}
    return [(m, volumes[m["name"]]) for m in container(obj).get("volumeMounts", [])]


def config_text_of(obj: dict) -> str:
    """The otlpd config the workload runs: the ConfigMap key behind its --config path."""
    path = config_path_of(obj)
    for mount, volume in mounts_of(obj):
        if "configMap" in volume and path.startswith(mount["mountPath"].rstrip("/") + "/"):
            key = path[len(mount["mountPath"].rstrip("/")) + 1:]
            configmap = OBJECTS[("ConfigMap", volume["configMap"]["name"])]
            assert key in configmap["data"], f"ConfigMap {configmap['metadata']['name']} has no key {key}"
            return configmap["data"][key]
    raise AssertionError(f"{path} is not on a ConfigMap volume of {obj['metadata']['name']}")


def config_of(obj: dict) -> dict:
    return yaml.safe_load(config_text_of(obj))


def env_of(obj: dict) -> dict[str, str]:
    """The container's environment, downward-API fields given the test's values."""
    env = {}
    for item in container(obj).get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = AGENT_ENV.get(item["name"], f"from-{item['name']}")
    return env


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def host_of(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0]


def seconds(duration: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), f"not a duration: {duration}"
    return sum(float(n) * units[u] for n, u in parts)


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(quantity))
    assert match, f"not a binary quantity: {quantity}"
    return int(match.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2 ** 20}[match.group(2)]


def container_port(obj: dict, name_or_number) -> dict:
    for port in container(obj)["ports"]:
        if name_or_number in (port["name"], port["containerPort"]):
            return port
    raise AssertionError(f"{obj['metadata']['name']}: no container port {name_or_number}")


COMPONENTS = ["gateway", "agent"]


# --------------------------------------------------------------------------
# Schemas and kustomize


def kubernetes_validate(*paths: Path, version: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version,
                           *map(str, paths)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version):
    result = kubernetes_validate(*manifest_files(), version=version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_strict_validation_catches_an_unknown_field(tmp_path):
    """The check above would catch a misspelt key (it is not just parsing YAML)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((K8S_DIR / "gateway-deployment.yaml").read_text().replace(
        "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"))
    result = kubernetes_validate(bad, version=KUBERNETES_VERSIONS[0])
    assert result.returncode != 0 and "readOnlyRootFileSystem" in result.stdout + result.stderr


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]


def test_kustomize_renders_the_same_objects(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(OBJECTS)
    (tmp_path / "rendered.yaml").write_text(result.stdout)
    check = kubernetes_validate(tmp_path / "rendered.yaml", version=KUBERNETES_VERSIONS[-1])
    assert check.returncode == 0, check.stdout + check.stderr


# --------------------------------------------------------------------------
# The configs in the ConfigMaps, and the manifests around them


@pytest.mark.parametrize("component", COMPONENTS)
def test_configmap_config_passes_otlpd_validate(otlpd_binary, tmp_path, component):
    obj = workload(component)
    path = tmp_path / "otlpd.yaml"
    path.write_text(config_text_of(obj))
    env = env_of(obj)
    result = run_otlpd(otlpd_binary, "validate", "--config", str(path), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every ${env:NAME} the config uses is set by the container.
    used = set(re.findall(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)", config_text_of(obj)))
    assert used <= set(env), f"{component}: the config uses {sorted(used - set(env))}, which the container does not set"
    # Without them, validate says what is missing (so a missing env var cannot slip through).
    if used:
        bare = run_otlpd(otlpd_binary, "validate", "--config", str(path),
                         env={k: "" for k in used})
        assert bare.returncode == 1, bare.stdout + bare.stderr


@pytest.mark.parametrize("component", COMPONENTS)
def test_ports_agree_between_config_containers_and_services(component):
    obj = workload(component)
    config = config_of(obj)
    protocols = config["receivers"]["otlp"]["protocols"]
    expected = {"otlp-grpc": 4317, "otlp-http": 4318}
    for name, protocol in (("otlp-grpc", "grpc"), ("otlp-http", "http")):
        endpoint = protocols[protocol]["endpoint"]
        assert host_of(endpoint) == "0.0.0.0", f"{component}: {protocol} on {endpoint}, unreachable from outside the pod"
        assert port_of(endpoint) == expected[name] == container_port(obj, name)["containerPort"]
        if component == "agent":
            assert container_port(obj, name).get("hostPort") == expected[name]
    metrics = config["service"]["telemetry"]["metrics"]["address"]
    assert port_of(metrics) == container_port(obj, "metrics")["containerPort"]
    assert host_of(metrics) == "0.0.0.0"

    labels = obj["spec"]["template"]["metadata"]["labels"]
    services = [s for s in of_kind("Service")
                if s["spec"]["selector"].items() <= labels.items()]
    if component == "agent":
        assert services == [], "applications reach the agent by hostPort, not by a Service"
        return
    assert sorted(s["spec"].get("clusterIP", "") for s in services) == ["", "None"], \
        "a ClusterIP Service and a headless one select the gateways"
    for service in services:
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        assert set(ports) == set(expected)
        for name, port in ports.items():
            assert port["port"] == expected[name]
            target = container_port(obj, port["targetPort"])
            assert target["containerPort"] == port_of(protocols["grpc" if name == "otlp-grpc" else "http"]["endpoint"])
        assert ports["otlp-grpc"]["appProtocol"] == "grpc"


@pytest.mark.parametrize("component", COMPONENTS)
def test_probes_ask_the_health_check_extension(component):
    obj = workload(component)
    config = config_of(obj)
    health = config["extensions"]["health_check"]
    assert "health_check" in config["service"]["extensions"]
    assert host_of(health["endpoint"]) == "0.0.0.0", "the kubelet probes the pod's IP"
    spec = container(obj)
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = spec[kind]["httpGet"]
        assert container_port(obj, probe["port"])["containerPort"] == port_of(health["endpoint"]), kind
        assert probe["path"] == health.get("path", "/"), kind


@pytest.mark.parametrize("component", COMPONENTS)
def test_grace_period_covers_prestop_and_shutdown_timeout(component):
    obj = workload(component)
    config = config_of(obj)
    shutdown = seconds(config["service"].get("shutdown_timeout", "25s"))
    pre_stop = container(obj).get("lifecycle", {}).get("preStop")
    sleep = 0.0
    if pre_stop:
        if "sleep" in pre_stop:
            sleep = float(pre_stop["sleep"]["seconds"])
        else:
            command = pre_stop["exec"]["command"]
            sleep = float(command[-1]) if "sleep" in " ".join(command) else 0.0
    if component == "gateway":
        assert 1 <= sleep <= 10, "the gateway sleeps a few seconds while it leaves the Services' endpoints"
    grace = obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > shutdown + sleep, f"{component}: grace {grace}s <= shutdown_timeout {shutdown}s + preStop {sleep}s"


@pytest.mark.parametrize("component", COMPONENTS)
def test_memory_limit_leaves_room_above_limit_mib(component):
    obj = workload(component)
    config = config_of(obj)
    limiter = config["processors"]["memory_limiter"]
    for name, pipeline in config["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", f"{component}: {name} does not start with memory_limiter"
    resources = container(obj)["resources"]
    limit = mebibytes(resources["limits"]["memory"])
    assert mebibytes(resources["requests"]["memory"]) == limit, "memory request = limit"
    assert limiter["limit_mib"] < limit, f"{component}: limit_mib {limiter['limit_mib']} >= the pod's {limit} MiB"
    # Room for what the limiter does not count (otlpd alone is about 35 MiB), and not a waste.
    assert 0.6 <= limiter["limit_mib"] / limit <= 0.85, (limiter["limit_mib"], limit)
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_hardened_and_writes_only_to_its_volume(component):
    obj = workload(component)
    pod = obj["spec"]["template"]["spec"]
    spec = container(obj)
    security = spec["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
    assert security.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod.get("automountServiceAccountToken") is False
    assert spec["image"] == "otlpd:latest" and spec["imagePullPolicy"] == "IfNotPresent"
    # With a read-only root, the queue's directory must be on a writable volume.
    config = config_of(obj)
    directory = config["extensions"]["file_storage"]["directory"]
    writable = [m for m, v in mounts_of(obj) if not m.get("readOnly") and "emptyDir" in v
                and directory.startswith(m["mountPath"].rstrip("/") + "/")]
    assert writable, f"{component}: {directory} is not on a writable volume"
    volume = dict((m["name"], v) for m, v in mounts_of(obj))[writable[0]["name"]]
    max_size = config["extensions"]["file_storage"]["max_size"]
    assert mebibytes(max_size.replace("iB", "i")) < mebibytes(volume["emptyDir"]["sizeLimit"]), \
        "the queue fills up (clients told to retry) before the volume does (the pod evicted)"
    for exporter, settings in config["exporters"].items():
        assert "path" not in settings, f"{component}: {exporter} writes outside the queue's volume"
        if exporter.split("/")[0] in ("otlp", "otlp_grpc", "otlp_http", "otlphttp"):
            assert settings["sending_queue"]["storage"] == "file_storage", f"{component}: {exporter} has no persistent queue"


def test_agents_forward_round_robin_to_the_headless_service():
    agent = workload("agent")
    gateway = workload("gateway")
    config = config_of(agent)
    headless = [s for s in of_kind("Service") if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1
    headless = headless[0]
    assert headless["spec"]["selector"].items() <= gateway["spec"]["template"]["metadata"]["labels"].items()
    grpc_port = {p["name"]: p["port"] for p in headless["spec"]["ports"]}["otlp-grpc"]
    exporter = config["exporters"]["otlp_grpc"]
    assert exporter["endpoint"] == (f"{headless['metadata']['name']}.${{env:K8S_NAMESPACE_NAME}}"
                                    f".svc.cluster.local:{grpc_port}")
    assert exporter.get("balancer_name", "round_robin") == "round_robin"
    actions = {(a["key"], a["value"], a["action"]) for a in config["processors"]["resource"]["attributes"]}
    assert actions == {("k8s.pod.name", "${env:K8S_POD_NAME}", "upsert"),
                       ("k8s.namespace.name", "${env:K8S_NAMESPACE_NAME}", "upsert"),
                       ("k8s.node.name", "${env:K8S_NODE_NAME}", "upsert")}
    fields = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container(agent)["env"] if "valueFrom" in e}
    assert fields == {"K8S_POD_NAME": "metadata.name", "K8S_NAMESPACE_NAME": "metadata.namespace",
                      "K8S_NODE_NAME": "spec.nodeName"}


def test_pdb_and_hpa_point_at_the_gateway():
    gateway = workload("gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert gateway["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in gateway["spec"], "the HPA owns the replica count"
    (pdb,) = of_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]) == \
        ("Deployment", gateway["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "cpu" in container(gateway)["resources"]["requests"], "CPU utilization is measured against the request"


# --------------------------------------------------------------------------
# The scale-out demo: one agent, two gateways behind one name

GATEWAY_ADDRESSES = ["127.0.0.2", "127.0.0.3"]
RATE = 5_000          # spans/s from the SDK
PRE_STOP = 1.0        # the gateway's preStop sleep, shortened (the manifest's is 5 s)
# A request whose call to the stopped gateway failed to connect waits the exporter's retry backoff
# (initial_interval 5 s, randomized by 0.5: up to 7.5 s) before it goes again: everything the SDK
# exported is expected in a gateway's file within this much of the SDK's last answer (measured
# here with the address withdrawn: 3.6-6.6 s; with it still listed: 40-50 s).
DELIVERY_LIMIT = 15.0


def free_on_all(port: int, hosts: list[str]) -> bool:
    for host in hosts:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def port_free_on_all(preferred: int, hosts: list[str]) -> int:
    """`preferred` (the manifests' port) if it is free on every address, else one that is."""
    if free_on_all(preferred, hosts):
        return preferred
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if free_on_all(port, hosts):
            return port
    raise AssertionError(f"no port free on all of {hosts}")


@pytest.fixture
def headless_name():
    """The agent's upstream name (the headless Service's, in AGENT_ENV's namespace) resolving to both
    gateways as cluster DNS would, written to /etc/hosts for the test and restored after; the
    callable rewrites the addresses (the endpoints controller taking a stopping pod out)."""
    (service,) = [s for s in of_kind("Service") if s["spec"].get("clusterIP") == "None"]
    name = f"{service['metadata']['name']}.{AGENT_ENV['K8S_NAMESPACE_NAME']}.svc.cluster.local"
    original = open("/etc/hosts").read()

    def write(addresses):
        with open("/etc/hosts", "w") as hosts:
            hosts.write(original.rstrip("\n") + "\n" + "".join(f"{a} {name}\n" for a in addresses))

    write(GATEWAY_ADDRESSES)
    try:
        yield name, write
    finally:
        with open("/etc/hosts", "w") as hosts:
            hosts.write(original)


def gateway_config(tmp_path: Path, address: str, ports: dict[str, int]) -> tuple[dict, Path]:
    """The gateway ConfigMap's config on `address` with the manifests' ports (unless taken), a file
    exporter in place of the backend, its queue folder under tmp_path. Returns it and its traces file."""
    config = config_of(workload("gateway"))
    directory = tmp_path / f"gateway-{address}"
    directory.mkdir(exist_ok=True)
    protocols = config["receivers"]["otlp"]["protocols"]
    protocols["grpc"]["endpoint"] = f"{address}:{ports['grpc']}"
    protocols["http"]["endpoint"] = f"{address}:{ports['http']}"
    config["extensions"]["health_check"]["endpoint"] = f"{address}:{ports['health']}"
    config["extensions"]["file_storage"]["directory"] = str(directory / "queue")
    config["service"]["telemetry"]["metrics"]["address"] = f"{address}:{ports['metrics']}"
    config["service"]["telemetry"]["logs"]["encoding"] = "console"  # what the harness reads
    config["exporters"] = {"file": {"path": str(directory / "out.jsonl")}}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["exporters"] = ["file"]
    return config, directory / "out.traces.jsonl"


def agent_config(tmp_path: Path, gateway_grpc_port: int) -> dict:
    """The agent ConfigMap's config as it is (processors, exporter, queue, retries), on OS-chosen
    local ports, its queue under tmp_path (its upstream's port changed only if the gateways could
    not have 4317)."""
    config = config_of(workload("agent"))
    protocols = config["receivers"]["otlp"]["protocols"]
    protocols["grpc"]["endpoint"] = "127.0.0.1:0"
    protocols["http"]["endpoint"] = "localhost:0"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{s.getsockname()[1]}"
    config["extensions"]["file_storage"]["directory"] = str(tmp_path / "agent" / "queue")
    config["service"]["telemetry"]["metrics"]["address"] = "127.0.0.1:0"
    config["service"]["telemetry"]["logs"]["encoding"] = "console"
    exporter = config["exporters"]["otlp_grpc"]
    exporter["endpoint"] = f"{host_of(exporter['endpoint'])}:{gateway_grpc_port}"
    return config


def span_counts(path: Path) -> collections.Counter:
    return collections.Counter(span.get("spanId", "") for _, _, span in records(read_jsonl(path), "traces"))


@pytest.fixture
def sdk_defaults(monkeypatch):
    """The SDK reads OTEL_BSP_* and OTEL_EXPORTER_OTLP_*; this test uses its defaults."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


class SlowDelivery(AssertionError):
    """Every span arrived, but not within DELIVERY_LIMIT of the SDK's last answer."""


@pytest.mark.parametrize("dns", [
    "withdrawn",
    "still-listed",
])
def test_scale_out_one_agent_two_gateways_one_stopped_mid_run(otlpd, tmp_path, headless_name, sdk_defaults, dns):
    """The SDK at its defaults sends RATE spans/s to the agent; after STOP_AFTER s one gateway is
    stopped. `withdrawn`: as Kubernetes stops a pod (its address leaves the headless Service's DNS
    during the preStop sleep, then SIGTERM). `still-listed`: SIGTERM while the name still resolves
    to it (a pod deleted without the preStop sleep, or a gateway that crashed, until its readiness
    probe fails). Either way: every span the SDK exported arrives once, nothing is lost."""
    name, write_hosts = headless_name
    duration, stop_after = (4.0, 1.8) if dns == "withdrawn" else (2.0, 1.0)
    ports = {key: port_free_on_all(preferred, GATEWAY_ADDRESSES)
             for key, preferred in (("grpc", 4317), ("http", 4318), ("health", 13133), ("metrics", 8888))}
    gateways, files, configs = [], [], []
    for address in GATEWAY_ADDRESSES:
        config, out = gateway_config(tmp_path, address, ports)
        gateways.append(otlpd.start(config, workdir=out.parent))
        files.append(out)
        configs.append(config)
    agent = otlpd.start(agent_config(tmp_path, ports["grpc"]), env=AGENT_ENV)

    # The SDK runs in a thread; this one stops a gateway mid-run.
    report: dict = {}

    def run_sdk():
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        warnings_ = capture_sdk_warnings()
        try:
            exporter = sdk_exporter("grpc", agent.grpc_port)
            provider = new_provider("shop-k8s-demo", BatchSpanProcessor(exporter))  # every setting at its default
            ids, elapsed = generate(provider.get_tracer("shop.web", "1.4.2"), RATE, duration)
            report["flushed"] = provider.force_flush(30_000)
            provider.shutdown()
            report.update(created=[format(i, "016x") for i in ids], elapsed=elapsed, answered_at=time.monotonic(),
                          exported=[format(i, "016x") for i in exporter.exported_ids], failures=exporter.failures)
        finally:
            release_sdk_warnings(warnings_)
            report["drops"] = warnings_.drops()

    sdk = threading.Thread(target=run_sdk, name="sdk")
    started = time.monotonic()
    sdk.start()
    time.sleep(stop_after)
    before_stop = [sum(span_counts(f).values()) for f in files]
    if dns == "withdrawn":
        write_hosts(GATEWAY_ADDRESSES[:1])
        time.sleep(PRE_STOP)
    stopping = time.monotonic()
    exit_code = gateways[1].stop(signal.SIGTERM)
    stop_seconds = time.monotonic() - stopping
    in_stopped = sum(span_counts(files[1]).values())
    sdk.join(timeout=60)
    assert not sdk.is_alive(), "the SDK did not finish"
    assert report.get("created"), f"the SDK failed: {report}"
    exported = set(report["exported"])

    def delivered():
        return set(span_counts(files[0]) + span_counts(files[1])) >= exported

    delivered_after = None
    try:
        wait_until(delivered, max(0.0, report["answered_at"] + DELIVERY_LIMIT - time.monotonic()),
                   "every exported span in a gateway's file", interval=0.1)
        delivered_after = time.monotonic() - report["answered_at"]
    except AssertionError:
        # Not in time. Bring the stopped gateway back on its address (its pod's replacement), so
        # what the agent still holds is delivered and checked below.
        gateways[1] = otlpd.start(configs[1], workdir=files[1].parent)
        try:
            wait_until(delivered, 40, "every exported span in a gateway's file after the restart", interval=0.2)
        except AssertionError:
            pass
    per_gateway = [span_counts(f) for f in files]
    union = per_gateway[0] + per_gateway[1]
    missing = exported - set(union)
    duplicates = {i: n for i, n in union.items() if n > 1}
    figures = {
        "dns": dns, "created": len(report["created"]), "exported": len(exported),
        "sdk_rate": round(len(report["created"]) / report["elapsed"]), "sdk_failed_exports": report["failures"],
        "sdk_drop_logs": len(report["drops"]), "stopped_at_s": round(stopping - started, 2),
        "stop_took_s": round(stop_seconds, 2), "exit_code": exit_code,
        "before_stop": before_stop, "in_stopped_gateway": in_stopped,
        "final": [sum(c.values()) for c in per_gateway], "distinct": len(union), "duplicates": len(duplicates),
        "missing": len(missing),
        "delivered_after_last_answer_s": None if delivered_after is None else round(delivered_after, 2),
        "ports": ports,
    }
    print(f"\nscale-out demo: {json.dumps(figures)}")

    assert exit_code == 0, gateways[1].stderr()[-3000:]
    assert report["flushed"] and not report["drops"], f"the SDK dropped spans: {report['drops'][:3]}"
    assert len(exported) == len(report["created"]), f"the SDK could not export everything: {figures}"
    assert all(n > 0 for n in before_stop), f"each gateway had a share before the stop: {figures}"
    assert set(union) <= set(report["created"]), "spans in the files that the SDK never made"
    assert not missing, (f"{len(missing)} of {len(exported)} acknowledged spans never reached a gateway: "
                         f"{figures}\nagent stderr (tail):\n" + "\n".join(agent.stderr().splitlines()[-20:]))
    # A duplicate would be a request a gateway wrote whose answer never reached the agent (at least
    # once). A graceful stop answers everything it took in, so none are expected.
    assert not duplicates, f"{len(duplicates)} spans written twice: {figures}"
    # The agent's resource processor stamped every span with the downward API's values.
    stamps = set()
    for path in files:
        for resource, _, _ in records(read_jsonl(path), "traces"):
            a = attrs(resource.get("resource", {}).get("attributes"))
            stamps.add((a.get("k8s.pod.name"), a.get("k8s.namespace.name"), a.get("k8s.node.name")))
    assert stamps == {(AGENT_ENV["K8S_POD_NAME"], AGENT_ENV["K8S_NAMESPACE_NAME"], AGENT_ENV["K8S_NODE_NAME"])}
    assert agent.stop() == 0
    if delivered_after is None:
        raise SlowDelivery(f"every span arrived, but not within {DELIVERY_LIMIT}s of the SDK's last answer "
                           f"(a gateway restart had to bring it): {figures}")
